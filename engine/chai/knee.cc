#include "engine/chai/knee.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::Status KneeOptions::Validate() const {
  if (!(min_strength >= 0.0 && min_strength <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("knee: min_strength must be in [0, 1], got ", min_strength));
  }
  if (!(max_residual >= 0.0 && max_residual <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("knee: max_residual must be in [0, 1], got ", max_residual));
  }
  return absl::OkStatus();
}

absl::StatusOr<KneeResult> FindKnee(std::span<const double> curve, const KneeOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (curve.empty()) return absl::InvalidArgumentError("knee: empty error curve");
  for (double e : curve) {
    if (!std::isfinite(e) || e < 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat("knee: error value ", e, " is not a finite non-negative number"));
    }
  }
  const int32_t n = static_cast<int32_t>(curve.size());
  std::vector<double> mono(curve.begin(), curve.end());
  for (int32_t i = 1; i < n; ++i) mono[i] = std::min(mono[i], mono[i - 1]);

  KneeResult r;
  r.normalized.assign(mono.size(), 0.0);
  const double range = mono.front() - mono.back();
  if (n == 1 || mono.front() == 0.0 || range <= 1e-12 * mono.front()) {
    r.k = 1;
    r.found = n > 1;
    return r;
  }
  for (int32_t i = 0; i < n; ++i) r.normalized[i] = (mono[i] - mono.back()) / range;
  int32_t best = 0;
  double best_d = -1.0;
  for (int32_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i) / (n - 1);
    const double d = (1.0 - x) - r.normalized[i];
    if (d > best_d) {
      best_d = d;
      best = i;
    }
  }
  r.strength = best_d;
  r.found = n > 2 && best_d >= options.min_strength && best_d > 0.0;
  r.k = r.found ? best + 1 : n;
  while (r.k < n && r.normalized[r.k - 1] > options.max_residual) {
    ++r.k;
    r.raised = true;
  }
  return r;
}

}  // namespace chai::engine
