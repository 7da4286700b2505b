#include "engine/chai/kmeans.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

size_t Sz(int64_t v) { return static_cast<size_t>(v); }

// splitmix64: small, fast, and the same sequence on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  int32_t Below(int32_t n) { return static_cast<int32_t>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

double SqDist(const double* a, const double* b, int32_t dim) {
  double s = 0.0;
  for (int32_t j = 0; j < dim; ++j) {
    const double d = a[j] - b[j];
    s += d * d;
  }
  return s;
}

// Index i with prefix sum of weights first exceeding r (r in [0, total)).
int32_t SampleByWeight(const std::vector<double>& w, double r) {
  double acc = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    acc += w[i];
    if (r < acc) return static_cast<int32_t>(i);
  }
  // Rounding left r at the total: the last point with any weight.
  for (size_t i = w.size(); i-- > 0;) {
    if (w[i] > 0.0) return static_cast<int32_t>(i);
  }
  return static_cast<int32_t>(w.size()) - 1;
}

// Pairwise squared distances [n, n]: the only thing Lloyd needs, because a
// centre is always the mean of a set S of points and
//   |x_i - mean(S)|^2 = sum_{j in S} D_ij / |S| - sum_{j,l in S} D_jl / (2 |S|^2).
// With a handful of points (attention heads) of thousands of dimensions this
// makes every iteration O(n^2 k) instead of O(n k dim).
std::vector<double> PairwiseSqDist(const double* x, int32_t n, int32_t dim) {
  std::vector<double> d(Sz(int64_t{n} * n), 0.0);
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = i + 1; j < n; ++j) {
      const double v = SqDist(x + int64_t{i} * dim, x + int64_t{j} * dim, dim);
      d[Sz(int64_t{i} * n + j)] = v;
      d[Sz(int64_t{j} * n + i)] = v;
    }
  }
  return d;
}

// Greedy k-means++ (sklearn's _kmeans_plusplus) on distances D. Returns the
// indices of the k points chosen as initial centres.
std::vector<int32_t> PlusPlusInit(const std::vector<double>& d, int32_t n, int32_t k, Rng& rng) {
  std::vector<int32_t> chosen;
  chosen.reserve(Sz(k));
  const int32_t trials = 2 + static_cast<int32_t>(std::log(static_cast<double>(k)));
  chosen.push_back(rng.Below(n));
  std::vector<double> closest(Sz(n));
  double potential = 0.0;
  for (int32_t i = 0; i < n; ++i) {
    closest[Sz(i)] = d[Sz(int64_t{i} * n + chosen[0])];
    potential += closest[Sz(i)];
  }
  std::vector<double> cand_dist(Sz(n)), best_dist(Sz(n));
  for (int32_t c = 1; c < k; ++c) {
    int32_t best = -1;
    double best_potential = std::numeric_limits<double>::infinity();
    for (int32_t t = 0; t < trials; ++t) {
      // All remaining points coincide with a centre: any point will do.
      const int32_t cand =
          potential > 0.0 ? SampleByWeight(closest, rng.Uniform() * potential) : rng.Below(n);
      double p = 0.0;
      for (int32_t i = 0; i < n; ++i) {
        cand_dist[Sz(i)] = std::min(closest[Sz(i)], d[Sz(int64_t{i} * n + cand)]);
        p += cand_dist[Sz(i)];
      }
      if (p < best_potential) {
        best_potential = p;
        best = cand;
        best_dist.swap(cand_dist);
      }
    }
    chosen.push_back(best);
    closest.swap(best_dist);
    potential = best_potential;
  }
  return chosen;
}

struct Run {
  std::vector<int32_t> labels;
  double inertia = 0.0;
  int32_t n_iter = 0;
};

// dist[i, c] = squared distance of point i to the mean of cluster c's points
// (empty clusters: +inf).
void CentreDistances(const std::vector<double>& d, int32_t n, int32_t k,
                     const std::vector<int32_t>& labels, std::vector<double>& dist) {
  std::vector<int32_t> count(Sz(k), 0);
  for (int32_t l : labels) ++count[Sz(l)];
  // a[i, c] = sum_{j in c} D_ij; b[c] = sum_{j,l in c} D_jl.
  std::vector<double> a(Sz(int64_t{n} * k), 0.0), b(Sz(k), 0.0);
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = 0; j < n; ++j)
      a[Sz(int64_t{i} * k + labels[Sz(j)])] += d[Sz(int64_t{i} * n + j)];
  }
  for (int32_t j = 0; j < n; ++j) b[Sz(labels[Sz(j)])] += a[Sz(int64_t{j} * k + labels[Sz(j)])];
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t c = 0; c < k; ++c) {
      const double m = count[Sz(c)];
      dist[Sz(int64_t{i} * k + c)] =
          m == 0 ? std::numeric_limits<double>::infinity()
                 : std::max(0.0, a[Sz(int64_t{i} * k + c)] / m - b[Sz(c)] / (2.0 * m * m));
    }
  }
}

// Nearest centre of every point (lowest index on ties); whether any changed.
bool Assign(const std::vector<double>& dist, int32_t n, int32_t k, std::vector<int32_t>& labels,
            std::vector<double>& nearest) {
  bool changed = false;
  for (int32_t i = 0; i < n; ++i) {
    int32_t best = 0;
    double best_d = std::numeric_limits<double>::infinity();
    for (int32_t c = 0; c < k; ++c) {
      if (dist[Sz(int64_t{i} * k + c)] < best_d) {
        best_d = dist[Sz(int64_t{i} * k + c)];
        best = c;
      }
    }
    if (labels[Sz(i)] != best) changed = true;
    labels[Sz(i)] = best;
    nearest[Sz(i)] = best_d;
  }
  return changed;
}

// Exact within-cluster sum of squares of a labelling:
// sum_c sum_{j,l in c} D_jl / (2 |c|).
double Inertia(const std::vector<double>& d, int32_t n, int32_t k,
               const std::vector<int32_t>& labels) {
  std::vector<double> pair_sum(Sz(k), 0.0);
  std::vector<int32_t> count(Sz(k), 0);
  for (int32_t i = 0; i < n; ++i) {
    ++count[Sz(labels[Sz(i)])];
    for (int32_t j = i + 1; j < n; ++j) {
      if (labels[Sz(i)] == labels[Sz(j)]) pair_sum[Sz(labels[Sz(i)])] += d[Sz(int64_t{i} * n + j)];
    }
  }
  double total = 0.0;
  for (int32_t c = 0; c < k; ++c) {
    if (count[Sz(c)] > 0) total += pair_sum[Sz(c)] / count[Sz(c)];
  }
  return total;
}

// Hartigan's single-point moves from a Lloyd fixed point: moving point i
// from cluster a (|a| > 1) to b changes the inertia by
//   |b| / (|b| + 1) |x_i - m_b|^2 - |a| / (|a| - 1) |x_i - m_a|^2,
// which counts how both centres shift. Take the best move while it lowers
// the inertia by more than rounding; each move strictly lowers it, so this
// ends. A partition no move improves is also Lloyd-stable.
void Hartigan(const std::vector<double>& d, int32_t n, int32_t k, std::vector<int32_t>& labels) {
  if (k < 2 || k >= n) return;
  std::vector<double> dist(Sz(int64_t{n} * k));
  std::vector<int32_t> count(Sz(k));
  // Bounded for safety; a handful of moves is typical.
  for (int64_t moves = 0; moves < int64_t{n} * n * k; ++moves) {
    CentreDistances(d, n, k, labels, dist);
    std::fill(count.begin(), count.end(), 0);
    for (int32_t l : labels) ++count[Sz(l)];
    const double slack = 1e-12 * (Inertia(d, n, k, labels) + 1e-300);
    int32_t best_i = -1, best_c = -1;
    double best_delta = -slack;
    for (int32_t i = 0; i < n; ++i) {
      const int32_t a = labels[Sz(i)];
      const double na = count[Sz(a)];
      if (na < 2) continue;
      const double remove = na / (na - 1) * dist[Sz(int64_t{i} * k + a)];
      for (int32_t c = 0; c < k; ++c) {
        if (c == a) continue;
        const double nc = count[Sz(c)];
        const double add = nc == 0 ? 0.0 : nc / (nc + 1) * dist[Sz(int64_t{i} * k + c)];
        if (add - remove < best_delta) {
          best_delta = add - remove;
          best_i = i;
          best_c = c;
        }
      }
    }
    if (best_i < 0) return;
    labels[Sz(best_i)] = best_c;
  }
}

Run Lloyd(const std::vector<double>& d, int32_t n, int32_t k, int32_t max_iter, Rng& rng) {
  Run r;
  const std::vector<int32_t> init = PlusPlusInit(d, n, k, rng);
  std::vector<double> dist(Sz(int64_t{n} * k)), nearest(Sz(n));
  // The first assignment is to the chosen points themselves.
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t c = 0; c < k; ++c) {
      dist[Sz(int64_t{i} * k + c)] = d[Sz(int64_t{i} * n + init[Sz(c)])];
    }
  }
  r.labels.assign(Sz(n), -1);
  Assign(dist, n, k, r.labels, nearest);
  std::vector<int32_t> count(Sz(k));
  for (r.n_iter = 1; r.n_iter < max_iter; ++r.n_iter) {
    // Re-seed an empty cluster with the point farthest from its centre.
    std::fill(count.begin(), count.end(), 0);
    for (int32_t l : r.labels) ++count[Sz(l)];
    for (int32_t c = 0; c < k; ++c) {
      if (count[Sz(c)] > 0) continue;
      int32_t far = -1;
      double far_d = 0.0;
      for (int32_t i = 0; i < n; ++i) {
        if (count[Sz(r.labels[Sz(i)])] > 1 && nearest[Sz(i)] > far_d) {
          far_d = nearest[Sz(i)];
          far = i;
        }
      }
      if (far < 0) continue;  // every point sits on its centre already
      --count[Sz(r.labels[Sz(far)])];
      r.labels[Sz(far)] = c;
      count[Sz(c)] = 1;
      nearest[Sz(far)] = 0.0;
    }
    // Centres move to their clusters' means; points follow the nearest.
    CentreDistances(d, n, k, r.labels, dist);
    if (!Assign(dist, n, k, r.labels, nearest)) break;
  }
  Hartigan(d, n, k, r.labels);
  r.inertia = Inertia(d, n, k, r.labels);
  return r;
}

// Best of options.n_init restarts on distances d.
Run BestOfRestarts(const std::vector<double>& d, int32_t n, const KMeansOptions& options) {
  Rng seeder(options.seed);
  Run best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int32_t r = 0; r < options.n_init; ++r) {
    Rng rng(seeder.Next());
    Run run = Lloyd(d, n, options.k, options.max_iter, rng);
    if (run.inertia < best.inertia) best = std::move(run);
  }
  return best;
}

absl::Status CheckInput(std::span<const double> points, int32_t n, int32_t dim) {
  if (n < 1 || dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmeans: n (", n, ") and dim (", dim, ") must be >= 1"));
  }
  if (points.size() != Sz(int64_t{n} * dim)) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmeans: ", points.size(), " values, want n * dim = ", int64_t{n} * dim));
  }
  for (double v : points) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("kmeans: a value is not finite");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status KMeansOptions::Validate() const {
  if (k < 1 || n_init < 1 || max_iter < 1) {
    return absl::InvalidArgumentError(absl::StrCat("kmeans: k (", k, "), n_init (", n_init,
                                                   ") and max_iter (", max_iter, ") must be >= 1"));
  }
  return absl::OkStatus();
}

absl::StatusOr<KMeansResult> KMeans(std::span<const double> points, int32_t n, int32_t dim,
                                    const KMeansOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (absl::Status s = CheckInput(points, n, dim); !s.ok()) return s;
  if (options.k > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmeans: k = ", options.k, " exceeds the ", n, " points"));
  }
  const std::vector<double> d = PairwiseSqDist(points.data(), n, dim);
  Run best = BestOfRestarts(d, n, options);
  KMeansResult out;
  out.centers.assign(Sz(int64_t{options.k} * dim), 0.0);
  std::vector<int32_t> count(Sz(options.k), 0);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t c = best.labels[Sz(i)];
    ++count[Sz(c)];
    for (int32_t j = 0; j < dim; ++j) {
      out.centers[Sz(int64_t{c} * dim + j)] += points[Sz(int64_t{i} * dim + j)];
    }
  }
  for (int32_t c = 0; c < options.k; ++c) {
    if (count[Sz(c)] == 0) continue;
    for (int32_t j = 0; j < dim; ++j) out.centers[Sz(int64_t{c} * dim + j)] /= count[Sz(c)];
  }
  out.labels = std::move(best.labels);
  out.inertia = best.inertia;
  out.n_iter = best.n_iter;
  return out;
}

absl::StatusOr<std::vector<double>> KMeansErrorCurve(std::span<const double> points, int32_t n,
                                                     int32_t dim, int32_t max_k,
                                                     const KMeansOptions& options) {
  KMeansOptions o = options;
  o.k = 1;
  if (absl::Status s = o.Validate(); !s.ok()) return s;
  if (absl::Status s = CheckInput(points, n, dim); !s.ok()) return s;
  if (max_k < 1 || max_k > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmeans: max_k = ", max_k, " must be in [1, n = ", n, "]"));
  }
  const std::vector<double> d = PairwiseSqDist(points.data(), n, dim);
  std::vector<double> curve;
  curve.reserve(Sz(max_k));
  for (int32_t k = 1; k <= max_k; ++k) {
    o.k = k;
    o.seed = options.seed + static_cast<uint64_t>(k);
    curve.push_back(BestOfRestarts(d, n, o).inertia);
  }
  return curve;
}

}  // namespace chai::engine
