// Turning task data into token-level log-likelihood requests, the way the
// reference tools tokenize:
//
// Multiple choice (lm-evaluation-harness, HFLM._encode_pair and
// loglikelihood()): the continuation is " " + choice (target_delimiter);
// trailing whitespace of the context moves to the front of the continuation;
// whole = encode(context + continuation), context_enc = encode(context), and
// the continuation's tokens are whole[len(context_enc):]. The model is fed
// context_enc + those tokens, so a BPE merge across the boundary is resolved
// as the harness resolves it. An empty context is replaced by the prefix
// token (BOS if the model has one, else EOS). No BOS is added otherwise
// unless the model's metadata asks for one (add_bos), in which case it
// prefixes both encodings (the harness's add_bos_token=True); for the
// default model (add_bos false) this is exactly the harness's default.
// Python's rstrip() strips Unicode whitespace; this strips ASCII whitespace.
//
// Perplexity (llama.cpp perplexity tool): the whole text is tokenized once
// (BOS first when add_bos), cut into n_chunk = n_tokens / n_ctx windows of
// n_ctx tokens (the tail is dropped); a window's first token is replaced by
// BOS when add_bos; positions first = n_ctx / 2 .. n_ctx - 2 are scored,
// each predicting the next token (n_ctx - 1 - first tokens per window).
// llama.cpp requires at least 2 * n_ctx tokens.
//
// Thread-safety: pure functions over an immutable tokenizer.
#ifndef CHAI_ENGINE_EVAL_REQUESTS_H_
#define CHAI_ENGINE_EVAL_REQUESTS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/eval/tasks.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::engine::eval {

// One shared context and the continuations scored after it.
struct LoglikelihoodRequest {
  std::vector<int32_t> context;                     // >= 1 token
  std::vector<std::vector<int32_t>> continuations;  // >= 1, each >= 1 token
};

struct EncodedPair {
  std::vector<int32_t> context;
  std::vector<int32_t> continuation;
};
// The harness's _encode_pair (plus the empty-context rule) for one pair.
EncodedPair EncodePair(const Tokenizer& tokenizer, absl::string_view context,
                       absl::string_view continuation);

// All choices of an item with continuation " " + choice. The context tokens
// are the same for every choice (they depend on the context only).
// INVALID_ARGUMENT when a choice encodes to no tokens.
absl::StatusOr<LoglikelihoodRequest> EncodeMcItem(const Tokenizer& tokenizer, const McItem& item);

// llama.cpp's tokenization of a perplexity text.
std::vector<int32_t> TokenizeForPerplexity(const Tokenizer& tokenizer, absl::string_view text);

// Windows as requests: context = window[0 .. first] (first + 1 tokens), one
// continuation = window[first + 1 .. n_ctx - 1], so the continuation's
// log-likelihoods are exactly the scored positions. max_windows <= 0: all.
// INVALID_ARGUMENT when n_ctx < 3 (no scored token) or there are fewer than
// 2 * n_ctx tokens (llama.cpp's rule).
absl::StatusOr<std::vector<LoglikelihoodRequest>> PerplexityWindows(std::span<const int32_t> tokens,
                                                                    int32_t n_ctx, int32_t bos_id,
                                                                    bool add_bos,
                                                                    int64_t max_windows);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_REQUESTS_H_
