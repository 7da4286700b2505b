// Single-sequence generation: prefill a prompt, then sample token by token.
// The building block of `chai generate` (the server uses the scheduler).
//
// Thread-safety: Generate() uses the runner and cache exclusively while it
// runs.
#ifndef CHAI_ENGINE_GENERATE_H_
#define CHAI_ENGINE_GENERATE_H_

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"
#include "engine/sampling/sampling_params.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::engine {

struct GenerateOptions {
  int32_t max_tokens = 128;
  bool ignore_eos = false;
  SamplingParams sampling;
  // CHAI per layer (empty: plain attention). Prompts shorter than
  // kChaiFeatureTokens run plain attention whatever the plan says.
  ChaiPlan chai;
};

struct GeneratedToken {
  int32_t id;
  std::string text;  // whole UTF-8 characters (may be empty while one is incomplete)
  float logprob;
};

struct GenerateResult {
  std::string finish_reason;  // "length" | "eos"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double prefill_s = 0;
  double decode_s = 0;
  uint64_t seed = 0;               // the sampler's seed, to reproduce the run
  bool chai = false;               // whether CHAI was in force
  int64_t k_cache_bytes = 0;       // K cache the sequence's positions occupy at the end
  int64_t k_cache_bytes_full = 0;  // ... and would occupy with plain attention
  int64_t v_cache_bytes = 0;
  double clustering_s = 0;  // CHAI's online clustering, inside prefill_s
};

// Creates a one-sequence cache sized for prompt + max_tokens (INVALID_ARGUMENT
// when that exceeds the model's context) and generates, calling `on_token`
// for each new token. REQUIRES: prompt non-empty.
absl::StatusOr<GenerateResult> Generate(ModelRunner& runner, kernels::Backend& backend,
                                        const Tokenizer& tokenizer, std::span<const int32_t> prompt,
                                        const GenerateOptions& options,
                                        const std::function<void(const GeneratedToken&)>& on_token);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_GENERATE_H_
