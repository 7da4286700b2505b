// Log-likelihoods of continuations after shared contexts, computed with each
// context prefilled ONCE (DESIGN.md section 5).
//
// How: a request's sequence slot first gets context + continuation 0 (one
// prefill; positions 0..). Continuation c > 0 is then fed at positions
// len(context).. of the SAME slot in a later step, overwriting the previous
// continuation's K/V: attention at position p reads positions 0..p only, and
// a step stores its tokens' K/V before attending, so continuation c sees
// exactly context + its own earlier tokens, with no copying. The log-prob of
// every continuation's first token comes from the context's last logit row,
// computed once. Steps pack the next piece of many requests (continuous
// batching, up to max_batch_tokens), so a long context may be split over
// steps and short continuations of many items share one Forward.
// Because the CPU kernels are batch-invariant, every sum is bit-identical to
// scoring context + continuation alone in a fresh sequence.
//
// With a CHAI engine, every step runs on both caches; a request runs CHAI
// there when its context has >= 5 tokens (the clustering window; it is
// clustered from its context alone), plain attention otherwise. Each
// distinct predicting position contributes one KL / top-1 comparison (the
// context's last row once per request, not once per continuation).
//
// Thread-safety: not thread-safe (drives the engine).
#ifndef CHAI_ENGINE_EVAL_LOGLIKELIHOOD_H_
#define CHAI_ENGINE_EVAL_LOGLIKELIHOOD_H_

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/eval/eval_engine.h"
#include "engine/eval/metrics.h"
#include "engine/eval/requests.h"

namespace chai::engine::eval {

struct LoglikelihoodScores {
  // [request][continuation]: sum of log p(token | everything before it).
  std::vector<std::vector<double>> sums;
  // [request][continuation][token], only with keep_token_logprobs.
  std::vector<std::vector<std::vector<double>>> token_logprobs;
};

struct LoglikelihoodResult {
  LoglikelihoodScores plain;
  LoglikelihoodScores chai;  // empty without CHAI
  KlAccumulator kl;          // CHAI vs plain; n() == 0 without CHAI
  int64_t tokens_fed = 0;    // tokens run through the model (per cache)
};

struct LoglikelihoodOptions {
  bool keep_token_logprobs = false;
};

// Called after each step: requests finished so far, total, tokens fed.
using ProgressFn = std::function<void(int64_t done, int64_t total, int64_t tokens_fed)>;

// Errors: INVALID_ARGUMENT for an empty context or continuation, a token
// outside the vocabulary, or a request longer than the engine's
// max_seq_len; RESOURCE_EXHAUSTED when one request alone does not fit the
// caches; engine errors as they come.
absl::StatusOr<LoglikelihoodResult> ScoreLoglikelihoods(
    EvalEngine& engine, std::span<const LoglikelihoodRequest> requests,
    const LoglikelihoodOptions& options, const ProgressFn& progress);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_LOGLIKELIHOOD_H_
