#include "engine/model/llama_config.h"

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

// Sizes beyond these are not a model we can run; rejecting them early keeps a
// hostile header from driving huge allocations later.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxDim = 1 << 16;
constexpr int64_t kMaxFfn = 1 << 18;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxVocab = 1 << 22;
constexpr int64_t kMaxContext = 1 << 24;

absl::Status CheckRange(const char* what, int64_t v, int64_t max) {
  if (v <= 0 || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("model ", what, " = ", v, " is outside 1..", max));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LlamaConfig::Validate() const {
  for (auto [what, v, max] :
       {std::tuple<const char*, int64_t, int64_t>{"n_layers", n_layers, kMaxLayers},
        {"dim", dim, kMaxDim},
        {"ffn_dim", ffn_dim, kMaxFfn},
        {"n_heads", n_heads, kMaxHeads},
        {"n_kv_heads", n_kv_heads, kMaxHeads},
        {"head_dim", head_dim, kMaxHeadDim},
        {"vocab_size", vocab_size, kMaxVocab},
        {"context_length", context_length, kMaxContext}}) {
    if (absl::Status s = CheckRange(what, v, max); !s.ok()) return s;
  }
  if (n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("model n_heads ", n_heads, " is not a multiple of n_kv_heads ", n_kv_heads));
  }
  if (head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("model head_dim ", head_dim, " is odd"));
  }
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) {
    return absl::InvalidArgumentError("model rope_theta must be a positive number");
  }
  if (!(rms_eps > 0) || !(rms_eps < 1)) {
    return absl::InvalidArgumentError("model rms_norm_eps must be in (0, 1)");
  }
  if (rope_scaling.factor < 0 || !std::isfinite(rope_scaling.factor) ||
      (rope_scaling.factor > 0 &&
       (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor) ||
        !(rope_scaling.low_freq_factor > 0) || rope_scaling.original_max_position <= 0))) {
    return absl::InvalidArgumentError("model rope_scaling parameters are inconsistent");
  }
  if (rope_linear_factor < 0 || !std::isfinite(rope_linear_factor)) {
    return absl::InvalidArgumentError("model linear rope factor must be >= 0");
  }
  if (!rope_freq_factors.empty() &&
      static_cast<int64_t>(rope_freq_factors.size()) != head_dim / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model rope_freqs has ", rope_freq_factors.size(), " entries, expected ", head_dim / 2));
  }
  for (float f : rope_freq_factors) {
    if (!(f > 0) || !std::isfinite(f)) {
      return absl::InvalidArgumentError("model rope_freqs entries must be positive");
    }
  }
  return absl::OkStatus();
}

std::vector<float> LlamaConfig::RopeInvFreq() const {
  const int64_t half = head_dim / 2;
  std::vector<float> out(half);
  for (int64_t i = 0; i < half; ++i) {
    // Same expression as Hugging Face's default RoPE init (exponent 2i/d).
    double inv = 1.0 / std::pow(rope_theta, static_cast<double>(2 * i) / head_dim);
    if (!rope_freq_factors.empty()) {
      inv /= rope_freq_factors[i];
    } else if (rope_scaling.factor > 0) {
      // Llama-3.1: long wavelengths are slowed by `factor`, short ones kept,
      // and the band between interpolates smoothly.
      const double old_ctx = static_cast<double>(rope_scaling.original_max_position);
      const double low_wavelen = old_ctx / rope_scaling.low_freq_factor;
      const double high_wavelen = old_ctx / rope_scaling.high_freq_factor;
      const double wavelen = 2.0 * std::numbers::pi / inv;
      if (wavelen > low_wavelen) {
        inv /= rope_scaling.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_ctx / wavelen - rope_scaling.low_freq_factor) /
                              (rope_scaling.high_freq_factor - rope_scaling.low_freq_factor);
        inv = (1.0 - smooth) * inv / rope_scaling.factor + smooth * inv;
      }
    }
    if (rope_linear_factor > 0) inv /= rope_linear_factor;
    out[i] = static_cast<float>(inv);
  }
  return out;
}

}  // namespace chai::engine
