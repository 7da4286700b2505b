#include "engine/chai/calibration_features.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::StatusOr<std::vector<double>> CausalAttentionFeatures(std::span<const float> q,
                                                            std::span<const float> k,
                                                            const AttentionShape& s) {
  if (s.n_tokens < 1 || s.n_heads < 1 || s.n_kv_heads < 1 || s.head_dim < 1) {
    return absl::InvalidArgumentError("attention features: sizes must be >= 1");
  }
  if (s.n_heads % s.n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("attention features: n_heads ", s.n_heads,
                                                   " is not a multiple of n_kv_heads ",
                                                   s.n_kv_heads));
  }
  const int64_t t = s.n_tokens, d = s.head_dim;
  const int64_t q_size = t * s.n_heads * d, k_size = t * s.n_kv_heads * d;
  if (static_cast<int64_t>(q.size()) != q_size || static_cast<int64_t>(k.size()) != k_size) {
    return absl::InvalidArgumentError(absl::StrCat("attention features: q has ", q.size(),
                                                   " values (want ", q_size, "), k has ", k.size(),
                                                   " (want ", k_size, ")"));
  }
  for (float v : q) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("attention features: q not finite");
  }
  for (float v : k) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("attention features: k not finite");
  }
  const int32_t group = s.n_heads / s.n_kv_heads;
  const int64_t per_head = s.features_per_head();
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> out(static_cast<size_t>(per_head * s.n_heads));
  std::vector<double> qrow(static_cast<size_t>(d));
  for (int32_t h = 0; h < s.n_heads; ++h) {
    const int32_t g = h / group;
    double* dst = out.data() + h * per_head;
    for (int64_t i = 0; i < t; ++i) {
      const float* qi = q.data() + (i * s.n_heads + h) * d;
      for (int64_t x = 0; x < d; ++x) qrow[static_cast<size_t>(x)] = qi[x];
      double* row = dst + i * (i + 1) / 2;  // row i holds i + 1 values
      double max = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j <= i; ++j) {
        const float* kj = k.data() + (j * s.n_kv_heads + g) * d;
        double dot = 0.0;
        for (int64_t x = 0; x < d; ++x) dot += qrow[static_cast<size_t>(x)] * kj[x];
        row[j] = dot * scale;
        max = std::max(max, row[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j <= i; ++j) {
        row[j] = std::exp(row[j] - max);
        sum += row[j];
      }
      const double inv = 1.0 / sum;
      for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
    }
  }
  return out;
}

}  // namespace chai::engine
