#include "engine/sampling/sampling_params.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

// Penalty bound shared with the OpenAI API and vLLM.
constexpr float kMaxAbsPenalty = 2.0f;

// Comparisons below are written so that NaN fails them (every comparison with
// NaN is false), hence the "!(x in range)" shape.
absl::Status OutOfRange(const char* field, float value, const char* range) {
  return absl::InvalidArgumentError(absl::StrCat(field, " must be ", range, ", got ", value));
}

}  // namespace

absl::Status SamplingParams::Validate(int64_t vocab_size) const {
  if (vocab_size <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size must be > 0, got ", vocab_size));
  }
  if (!(std::isfinite(temperature) && temperature >= 0.0f)) {
    return OutOfRange("temperature", temperature, "a finite number >= 0 (0 = greedy)");
  }
  if (top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0 (0 = off), got ", top_k));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return OutOfRange("top_p", top_p, "in (0, 1] (1 = off)");
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return OutOfRange("min_p", min_p, "in [0, 1] (0 = off)");
  }
  if (!(std::isfinite(repetition_penalty) && repetition_penalty > 0.0f)) {
    return OutOfRange("repetition_penalty", repetition_penalty, "a finite number > 0 (1 = off)");
  }
  if (!(presence_penalty >= -kMaxAbsPenalty && presence_penalty <= kMaxAbsPenalty)) {
    return OutOfRange("presence_penalty", presence_penalty, "in [-2, 2] (0 = off)");
  }
  if (!(frequency_penalty >= -kMaxAbsPenalty && frequency_penalty <= kMaxAbsPenalty)) {
    return OutOfRange("frequency_penalty", frequency_penalty, "in [-2, 2] (0 = off)");
  }
  const int64_t max_top = std::min<int64_t>(kMaxTopLogprobs, vocab_size);
  if (top_logprobs < 0 || top_logprobs > max_top) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_logprobs must be in [0, ", max_top, "], got ", top_logprobs));
  }
  return absl::OkStatus();
}

}  // namespace chai::engine
