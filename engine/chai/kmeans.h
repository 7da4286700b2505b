// K-means for CHAI calibration (DESIGN.md section 4): the error curve of
// clustering a layer's attention heads into k = 1..H groups.
//
// Algorithm (scikit-learn's KMeans with algorithm="lloyd", in float64):
//   - init: greedy k-means++ (Arthur & Vassilvitskii 2007, with sklearn's
//     2 + floor(ln k) local trials per centre: of the sampled candidates the
//     one that lowers the potential most is kept);
//   - Lloyd iterations until no point changes cluster (exact convergence;
//     sklearn also stops when centres move less than a tolerance, which can
//     only end earlier), or max_iter;
//   - an empty cluster is re-seeded with the point farthest from its centre;
//   - then Hartigan's single-point moves (a point changes cluster whenever
//     that lowers the inertia, counting how both centres move) until none
//     helps: Lloyd stops at partitions where such a move still pays, which
//     with few points (a layer's heads) is common; the result is still a
//     Lloyd fixed point;
//   - n_init restarts from independent seeds; the lowest inertia wins.
// Inertia is the sum of squared Euclidean distances of points to their
// centre, computed in double. The implementation works on the n x n matrix
// of squared distances between points (a centre is a mean of points, so
// |x - mean(S)|^2 follows from the distances): with a handful of heads of
// thousands of dimensions, each Lloyd step is O(n^2 k) after one O(n^2 dim)
// pass, the same iterations as the direct form up to rounding. tests/golden/make_kmeans_golden.py
// records sklearn's inertia on the same data; ours must be <= it * (1 + 1e-6).
//
// Determinism: the same seed and input give the same result on every
// platform (own 64-bit generator, no std distributions).
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_CHAI_KMEANS_H_
#define CHAI_ENGINE_CHAI_KMEANS_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace chai::engine {

struct KMeansOptions {
  int32_t k = 1;
  int32_t n_init = 10;     // restarts (each with its own k-means++ init)
  int32_t max_iter = 300;  // Lloyd iterations per restart
  uint64_t seed = 0;

  // OK iff k >= 1, n_init >= 1, max_iter >= 1.
  absl::Status Validate() const;
};

struct KMeansResult {
  std::vector<int32_t> labels;  // [n] cluster of each point, 0..k-1
  std::vector<double> centers;  // [k, dim]
  double inertia = 0.0;         // sum of squared distances to the centres
  int32_t n_iter = 0;           // Lloyd iterations of the winning restart
};

// Clusters the rows of points [n, dim] into options.k groups.
// Errors: InvalidArgument if options are invalid, n < 1, dim < 1,
// points.size() != n * dim, k > n, or a value is not finite.
absl::StatusOr<KMeansResult> KMeans(std::span<const double> points, int32_t n, int32_t dim,
                                    const KMeansOptions& options);

// Inertia of KMeans for k = 1..max_k (options.k is ignored), [max_k]. Each k
// uses seed options.seed + k, so curves are reproducible.
// Errors: those of KMeans, and InvalidArgument unless 1 <= max_k <= n.
absl::StatusOr<std::vector<double>> KMeansErrorCurve(std::span<const double> points, int32_t n,
                                                     int32_t dim, int32_t max_k,
                                                     const KMeansOptions& options);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_KMEANS_H_
