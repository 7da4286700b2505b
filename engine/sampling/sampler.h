// Per-sequence token sampler: penalties -> temperature -> top-k -> top-p ->
// min-p -> draw, the order of Hugging Face's logits warpers and vLLM.
//
// Reported logprobs are the log-softmax of the ORIGINAL logits handed to
// Sample(), i.e. the model's own distribution before penalties, temperature
// and truncation (vLLM's default "raw_logprobs", and what OpenAI-style
// clients expect when they score text). They therefore do not depend on the
// sampling parameters, and a token the filters could never pick still gets its
// true model logprob in the top-n list.
//
// Ordering: wherever tokens are ranked (greedy argmax, top-k boundary, top-p
// prefix, top-n logprobs) the key is (logit descending, token id ascending),
// so ties always resolve to the lowest id and results do not depend on the
// standard library's sort implementation.
//
// Reproducibility: the generator is std::mt19937_64, whose output sequence the
// C++ standard fixes exactly; uniforms are built from its top 53 bits by hand
// (no std distributions, whose output is implementation-defined). Same seed,
// same parameters, same logits and history -> same tokens on every platform.
//
// Cost per step for vocabulary V: O(V) for the log-softmax and the candidate
// scan. Top-k keeps a heap of k while scanning (nth_element for k > 512) and
// sorts only the k survivors; top-p without top-k buckets the weights by
// log-magnitude and sorts only the bucket where the nucleus ends; no step
// sorts the whole vocabulary. Scratch buffers are thread_local (about
// 24 bytes * V per calling thread), so a Sampler itself is small and one
// engine thread serving many sequences allocates them once.
//
// Thread-safety: a Sampler is not thread-safe (it owns mutable RNG state);
// distinct Samplers may be used from distinct threads concurrently.
#ifndef CHAI_ENGINE_SAMPLING_SAMPLER_H_
#define CHAI_ENGINE_SAMPLING_SAMPLER_H_

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/sampling/penalty_state.h"
#include "engine/sampling/sampling_params.h"

namespace chai::engine {

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

struct TokenProb {
  int32_t token = 0;
  double prob = 0.0;
};

struct SampleResult {
  int32_t token = -1;
  // log_softmax(original logits)[token].
  float logprob = 0.0f;
  // params.top_logprobs entries of log_softmax(original logits), most likely
  // first (ties: lower id first). Empty when top_logprobs == 0.
  std::vector<TokenLogprob> top_logprobs;
};

// Applies repetition (prompt + output tokens), then frequency and presence
// (output tokens) penalties in place, as vLLM's apply_penalties does:
//   l = l > 0 ? l / repetition_penalty : l * repetition_penalty   (if seen)
//   l -= frequency_penalty * count + presence_penalty * (count > 0)
// INVALID_ARGUMENT if logits.size() != history.vocab_size().
absl::Status ApplyPenalties(std::span<float> logits, const SamplingParams& params,
                            const PenaltyState& history);

// The distribution Sampler::Sample() draws from: the surviving candidates
// with renormalised probabilities (summing to 1), in the order the draw walks
// them (deterministic: most likely first after top-k, otherwise by id, with
// top-p's boundary tokens last). Exposed for tests and debugging tools. REQUIRES
// params.Validate(logits.size()) is OK. INVALID_ARGUMENT on a size mismatch; INTERNAL if the logits
// contain NaN or +inf, or no token has a finite logit.
absl::StatusOr<std::vector<TokenProb>> CandidateDistribution(std::span<const float> logits,
                                                             const SamplingParams& params,
                                                             const PenaltyState& history);

class Sampler {
 public:
  // Validates params against vocab_size; draws a seed from std::random_device
  // when params.seed is absent (see seed()).
  static absl::StatusOr<Sampler> Create(const SamplingParams& params, int64_t vocab_size);

  // Picks the next token from logits [vocab_size] given the sequence's
  // history. Greedy sampling consumes no randomness; any other draw consumes
  // exactly one 64-bit word. Errors as for CandidateDistribution(); on error
  // the RNG state is unchanged.
  absl::StatusOr<SampleResult> Sample(std::span<const float> logits, const PenaltyState& history);

  // The seed in force (the request's, or the drawn one), to report to clients.
  uint64_t seed() const { return seed_; }
  const SamplingParams& params() const { return params_; }

 private:
  Sampler(const SamplingParams& params, int64_t vocab_size, uint64_t seed)
      : params_(params), vocab_size_(vocab_size), seed_(seed), rng_(seed) {}

  // Uniform in [0, 1) from the top 53 bits of one 64-bit draw.
  double NextUniform();

  SamplingParams params_;
  int64_t vocab_size_;
  uint64_t seed_;
  std::mt19937_64 rng_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SAMPLING_SAMPLER_H_
