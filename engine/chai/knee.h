// Choosing the number of clusters from a K-means error curve: where the
// curve stops falling steeply (the "elbow" the CHAI paper reads off its
// plots, DESIGN.md section 4), chosen automatically.
//
// Method (Kneedle, Satopaa et al. 2011, for a decreasing convex curve):
//   1. e'(k) = min_{j <= k} e(j): a best-of-restarts K-means curve may rise
//      by a local optimum, but the optimal error never grows with k.
//   2. Normalise: x(k) = (k - 1) / (K - 1), y(k) = (e'(k) - e'(K)) /
//      (e'(1) - e'(K)), so the curve runs from (0, 1) to (1, 0).
//   3. Difference to the chord: d(k) = (1 - x(k)) - y(k). The knee is the k
//      with the largest d (the smallest such k on ties); strength = d(knee).
//   4. If strength < min_strength, the curve is close to the straight
//      chord: every extra cluster removes about the same error, there is no
//      plateau, and the layer keeps all K (no clustering). This is what a
//      layer of dissimilar heads looks like (the paper's early layers).
//   5. Optional guard (max_residual < 1): if the knee leaves a normalised
//      error y(k) above max_residual, k grows to the smallest k with
//      y(k) <= max_residual ("stop only once at most this share of the
//      heads' spread is lost"); off by default.
//   6. Degenerate curves: K == 1 gives 1; e'(1) - e'(K) <= 1e-12 * e'(1)
//      (or e'(1) == 0: all points coincide) gives 1, since more clusters
//      remove no error. K == 2 has no interior point, so it keeps 2 unless
//      degenerate.
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_CHAI_KNEE_H_
#define CHAI_ENGINE_CHAI_KNEE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace chai::engine {

struct KneeOptions {
  // Minimum Kneedle difference (in units of the normalised axes, 0..1) for a
  // knee to count; below it the layer keeps every head.
  double min_strength = 0.1;
  // Largest normalised error the chosen k may leave; 1 = no limit.
  double max_residual = 1.0;

  // OK iff 0 <= min_strength <= 1 and 0 <= max_residual <= 1.
  absl::Status Validate() const;
};

struct KneeResult {
  int32_t k = 0;                   // chosen cluster count, 1..K
  bool found = false;              // a knee with strength >= min_strength
  bool raised = false;             // max_residual raised k above the knee
  double strength = 0.0;           // d(k) at the largest difference
  std::vector<double> normalized;  // [K] y(k) of step 2 (all 0 when degenerate)
};

// curve[k - 1] = error with k clusters, k = 1..K.
// Errors: InvalidArgument if the curve is empty or has a negative or
// non-finite value, or options are invalid.
absl::StatusOr<KneeResult> FindKnee(std::span<const double> curve, const KneeOptions& options);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_KNEE_H_
