// Per-request sampling parameters (the knobs of vLLM's SamplingParams and
// llama.cpp's sampler chain) and their validation.
//
// Thread-safety: plain value type.
#ifndef CHAI_ENGINE_SAMPLING_SAMPLING_PARAMS_H_
#define CHAI_ENGINE_SAMPLING_SAMPLING_PARAMS_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"

namespace chai::engine {

// Most top-n logprobs a request may ask for (vLLM's default max_logprobs, and
// the OpenAI API's cap on top_logprobs).
inline constexpr int32_t kMaxTopLogprobs = 20;

// Each filter is off at its default value, so a default-constructed
// SamplingParams samples from the model's unmodified distribution.
struct SamplingParams {
  // Divides the (penalised) logits. 0 means greedy: take the argmax, ties to
  // the lowest token id.
  float temperature = 1.0f;
  // Keep the k most likely tokens; 0 = off. Values above the vocabulary size
  // keep the whole vocabulary.
  int32_t top_k = 0;
  // Nucleus sampling: keep the smallest set of most likely tokens whose mass
  // reaches top_p; 1 = off. Must lie in (0, 1].
  float top_p = 1.0f;
  // Drop tokens whose probability is below min_p times that of the most likely
  // token; 0 = off. Must lie in [0, 1].
  float min_p = 0.0f;
  // HF / llama.cpp repetition penalty over every token seen in the prompt or
  // the output: positive logits are divided by it, negative ones multiplied.
  // 1 = off; must be > 0.
  float repetition_penalty = 1.0f;
  // OpenAI semantics over generated tokens only:
  //   logit -= frequency_penalty * count + presence_penalty * (count > 0).
  // Each in [-2, 2] like the OpenAI API and vLLM; 0 = off.
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  // Seed of the per-sequence generator. When absent the Sampler draws one
  // from the OS and reports it, so any output can be reproduced afterwards.
  std::optional<uint64_t> seed;
  // Number of top alternatives (ids + logprobs) reported with each token;
  // 0 = none. At most min(kMaxTopLogprobs, vocab_size).
  int32_t top_logprobs = 0;

  // INVALID_ARGUMENT naming the field and the accepted range for any value
  // outside the ranges above (NaN and infinities included), or for a
  // vocab_size <= 0.
  absl::Status Validate(int64_t vocab_size) const;

  bool IsGreedy() const { return temperature == 0.0f; }
  bool HasPenalties() const {
    return repetition_penalty != 1.0f || presence_penalty != 0.0f || frequency_penalty != 0.0f;
  }
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SAMPLING_SAMPLING_PARAMS_H_
