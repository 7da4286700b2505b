#include "engine/chai/clustering.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

size_t Sz(int64_t v) { return static_cast<size_t>(v); }

absl::Status CheckDistanceInput(std::span<const double> distance, int32_t n) {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("n must be >= 1, got ", n));
  if (distance.size() != Sz(int64_t{n} * n)) {
    return absl::InvalidArgumentError(
        absl::StrCat("distance has ", distance.size(), " entries, want n * n = ", int64_t{n} * n));
  }
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = i + 1; j < n; ++j) {
      if (!std::isfinite(distance[Sz(int64_t{i} * n + j)])) {
        return absl::InvalidArgumentError(absl::StrCat("distance(", i, ", ", j, ") is not finite"));
      }
    }
  }
  return absl::OkStatus();
}

// scipy's LinkageUnionFind: `parent` over 2n - 1 cluster ids, path
// compression in Find, a merge creates the next id.
class LinkageUnionFind {
 public:
  explicit LinkageUnionFind(int32_t n) : parent_(Sz(2 * int64_t{n} - 1)), next_(n) {
    std::iota(parent_.begin(), parent_.end(), 0);
  }
  int32_t Find(int32_t x) {
    int32_t root = x;
    while (parent_[Sz(root)] != root) root = parent_[Sz(root)];
    while (parent_[Sz(x)] != root) x = std::exchange(parent_[Sz(x)], root);
    return root;
  }
  void Merge(int32_t x_root, int32_t y_root) {
    parent_[Sz(x_root)] = next_;
    parent_[Sz(y_root)] = next_;
    ++next_;
  }

 private:
  std::vector<int32_t> parent_;
  int32_t next_;
};

}  // namespace

absl::Status HeadFeatureOptions::Validate() const {
  if (n_heads < 1 || n_kv_heads < 1 || head_dim < 1 || n_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("head feature options need n_heads, n_kv_heads, head_dim, n_tokens >= 1; got ",
                     n_heads, ", ", n_kv_heads, ", ", head_dim, ", ", n_tokens));
  }
  if (n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_heads (", n_heads, ") must be a multiple of n_kv_heads (", n_kv_heads, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> ComputeHeadFeatures(std::span<const float> q,
                                                       std::span<const float> k,
                                                       const HeadFeatureOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  const int64_t t = options.n_tokens;
  const int64_t n_heads = options.n_heads;
  const int64_t n_kv = options.n_kv_heads;
  const int64_t d = options.head_dim;
  if (q.size() != Sz(t * n_heads * d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "q has ", q.size(), " floats, want [n_tokens, n_heads, head_dim] = ", t * n_heads * d));
  }
  if (k.size() != Sz(t * n_kv * d)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "k has ", k.size(), " floats, want [n_tokens, n_kv_heads, head_dim] = ", t * n_kv * d));
  }
  const int64_t group = n_heads / n_kv;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<float> features(Sz(n_heads * t * t), 0.0f);
  std::vector<double> row(Sz(t));
  for (int64_t h = 0; h < n_heads; ++h) {
    const int64_t kv = h / group;
    for (int64_t i = 0; i < t; ++i) {
      // Causal: query token i sees keys 0..i; the rest stay exactly 0.
      const int64_t n_keys = options.causal ? i + 1 : t;
      const float* qi = q.data() + (i * n_heads + h) * d;
      double max_score = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n_keys; ++j) {
        const float* kj = k.data() + (j * n_kv + kv) * d;
        double dot = 0.0;
        for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(qi[c]) * kj[c];
        row[Sz(j)] = dot * scale;
        max_score = std::max(max_score, row[Sz(j)]);
      }
      if (!std::isfinite(max_score)) {
        return absl::InvalidArgumentError(
            absl::StrCat("non-finite attention score for head ", h, ", token ", i));
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n_keys; ++j) {
        row[Sz(j)] = std::exp(row[Sz(j)] - max_score);
        sum += row[Sz(j)];
      }
      float* out = features.data() + (h * t + i) * t;
      for (int64_t j = 0; j < n_keys; ++j) out[j] = static_cast<float>(row[Sz(j)] / sum);
    }
  }
  return features;
}

absl::StatusOr<std::vector<double>> CosineDistanceMatrix(std::span<const float> features, int32_t n,
                                                         int32_t dim) {
  if (n < 1 || dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("features need n >= 1 and dim >= 1, got ", n, " and ", dim));
  }
  if (features.size() != Sz(int64_t{n} * dim)) {
    return absl::InvalidArgumentError(absl::StrCat("features has ", features.size(),
                                                   " floats, want [n, dim] = ", int64_t{n} * dim));
  }
  for (size_t i = 0; i < features.size(); ++i) {
    if (!std::isfinite(features[i])) {
      return absl::InvalidArgumentError(absl::StrCat("feature ", i, " is not finite"));
    }
  }
  auto dot = [&](int32_t a, int32_t b) {
    const float* fa = features.data() + Sz(int64_t{a} * dim);
    const float* fb = features.data() + Sz(int64_t{b} * dim);
    double s = 0.0;
    for (int32_t c = 0; c < dim; ++c) s += static_cast<double>(fa[c]) * fb[c];
    return s;
  };
  std::vector<double> sq(Sz(n));
  for (int32_t i = 0; i < n; ++i) sq[Sz(i)] = dot(i, i);
  std::vector<double> out(Sz(int64_t{n} * n), 0.0);
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = i + 1; j < n; ++j) {
      double dist;
      if (sq[Sz(i)] == 0.0 || sq[Sz(j)] == 0.0) {
        dist = (sq[Sz(i)] == 0.0 && sq[Sz(j)] == 0.0) ? 0.0 : 1.0;
      } else {
        // For identical rows dot == sq[i] == sq[j] and sqrt(x * x) == x in
        // IEEE arithmetic, so the distance is exactly 0 (scipy's is too):
        // duplicates tie exactly rather than by rounding luck.
        dist = 1.0 - dot(i, j) / std::sqrt(sq[Sz(i)] * sq[Sz(j)]);
        dist = std::clamp(dist, 0.0, 2.0);
      }
      out[Sz(int64_t{i} * n + j)] = dist;
      out[Sz(int64_t{j} * n + i)] = dist;
    }
  }
  return out;
}

absl::StatusOr<std::vector<LinkageMerge>> AverageLinkage(std::span<const double> distance,
                                                         int32_t n) {
  if (absl::Status s = CheckDistanceInput(distance, n); !s.ok()) return s;
  // A transcription of scipy's nn_chain (see the header): same loop order,
  // same comparisons, same Lance-Williams update, so the same floating-point
  // results and the same choices on ties. `dm` is a full symmetric copy of
  // the upper triangle; slot y holds the merged cluster, slot x retires.
  const size_t un = Sz(n);
  std::vector<double> dm(un * un, 0.0);
  for (size_t i = 0; i < un; ++i) {
    for (size_t j = i + 1; j < un; ++j) dm[i * un + j] = dm[j * un + i] = distance[i * un + j];
  }
  auto at = [&](int32_t a, int32_t b) -> double& { return dm[Sz(a) * un + Sz(b)]; };
  std::vector<int32_t> size(un, 1);
  std::vector<int32_t> chain(un);
  int32_t chain_length = 0;
  std::vector<LinkageMerge> z(un - 1);
  for (int32_t step = 0; step < n - 1; ++step) {
    if (chain_length == 0) {
      chain_length = 1;
      for (int32_t i = 0; i < n; ++i) {
        if (size[Sz(i)] > 0) {
          chain[0] = i;
          break;
        }
      }
    }
    int32_t x = 0;
    int32_t y = 0;
    double current_min = 0.0;
    // Grow the chain until its top two are mutual nearest neighbours.
    while (true) {
      x = chain[Sz(chain_length - 1)];
      // Preferring the previous element on ties keeps the chain from cycling.
      if (chain_length > 1) {
        y = chain[Sz(chain_length - 2)];
        current_min = at(x, y);
      } else {
        current_min = std::numeric_limits<double>::infinity();
      }
      for (int32_t i = 0; i < n; ++i) {
        if (size[Sz(i)] == 0 || i == x) continue;
        if (at(x, i) < current_min) {
          current_min = at(x, i);
          y = i;
        }
      }
      if (chain_length > 1 && y == chain[Sz(chain_length - 2)]) break;
      chain[Sz(chain_length)] = y;
      ++chain_length;
    }
    chain_length -= 2;
    if (x > y) std::swap(x, y);  // fastcluster's convention, kept by scipy
    const int32_t nx = size[Sz(x)];
    const int32_t ny = size[Sz(y)];
    z[Sz(step)] = LinkageMerge{x, y, current_min, nx + ny};
    size[Sz(x)] = 0;
    size[Sz(y)] = nx + ny;
    for (int32_t i = 0; i < n; ++i) {
      if (size[Sz(i)] == 0 || i == y) continue;
      const double updated = (nx * at(i, x) + ny * at(i, y)) / (nx + ny);
      at(i, y) = updated;
      at(y, i) = updated;
    }
  }
  std::stable_sort(z.begin(), z.end(), [](const LinkageMerge& a, const LinkageMerge& b) {
    return a.height < b.height;
  });
  // scipy's label(): the chain recorded slots (any head of a cluster); turn
  // them into cluster ids of the sorted order, the smaller id first.
  LinkageUnionFind uf(n);
  std::vector<int32_t> cluster_size(Sz(2 * int64_t{n} - 1), 1);
  for (int32_t i = 0; i < n - 1; ++i) {
    LinkageMerge& m = z[Sz(i)];
    const int32_t ra = uf.Find(m.a);
    const int32_t rb = uf.Find(m.b);
    m.a = std::min(ra, rb);
    m.b = std::max(ra, rb);
    m.size = cluster_size[Sz(ra)] + cluster_size[Sz(rb)];
    cluster_size[Sz(n + i)] = m.size;
    uf.Merge(ra, rb);
  }
  return z;
}

absl::StatusOr<std::vector<int32_t>> AverageLinkageClusters(std::span<const double> distance,
                                                            int32_t n, int32_t k) {
  if (absl::Status s = CheckDistanceInput(distance, n); !s.ok()) return s;
  if (k < 1 || k > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("number of clusters k must be in [1, ", n, "], got ", k));
  }
  absl::StatusOr<std::vector<LinkageMerge>> z = AverageLinkage(distance, n);
  if (!z.ok()) return z.status();
  // sklearn's _hc_cut undoes the last k - 1 merges, i.e. keeps the first n - k.
  LinkageUnionFind uf(n);
  for (int32_t i = 0; i < n - k; ++i) uf.Merge((*z)[Sz(i)].a, (*z)[Sz(i)].b);
  std::vector<int32_t> labels(Sz(n));
  std::vector<int32_t> label_of_root(Sz(2 * int64_t{n} - 1), -1);
  int32_t next_label = 0;
  for (int32_t h = 0; h < n; ++h) {
    int32_t& label = label_of_root[Sz(uf.Find(h))];
    if (label < 0) label = next_label++;
    labels[Sz(h)] = label;
  }
  return labels;
}

absl::StatusOr<ClusterMap> ClusterMap::FromLabels(std::span<const int32_t> labels) {
  if (labels.empty()) return absl::InvalidArgumentError("labels must not be empty");
  std::vector<std::pair<int32_t, int32_t>> first_head;  // (label, lowest head), small
  ClusterMap map;
  map.rep_of_.resize(labels.size());
  for (size_t h = 0; h < labels.size(); ++h) {
    if (labels[h] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("label of head ", h, " is negative: ", labels[h]));
    }
    auto it = std::find_if(first_head.begin(), first_head.end(),
                           [&](const auto& p) { return p.first == labels[h]; });
    if (it == first_head.end()) {
      // Heads are visited in ascending order, so the first one seen with a
      // label is its cluster's lowest index: the representative.
      first_head.emplace_back(labels[h], static_cast<int32_t>(h));
      map.representatives_.push_back(static_cast<int32_t>(h));
      map.rep_of_[h] = static_cast<int32_t>(h);
    } else {
      map.rep_of_[h] = it->second;
    }
  }
  return map;
}

ClusterMap ClusterMap::Identity(int32_t n_heads) {
  ClusterMap map;
  map.rep_of_.resize(Sz(std::max(n_heads, 0)));
  std::iota(map.rep_of_.begin(), map.rep_of_.end(), 0);
  map.representatives_ = map.rep_of_;
  return map;
}

absl::StatusOr<ClusterMap> ClusterHeads(std::span<const float> features, int32_t n_heads,
                                        int32_t dim, int32_t k) {
  absl::StatusOr<std::vector<double>> distance = CosineDistanceMatrix(features, n_heads, dim);
  if (!distance.ok()) return distance.status();
  absl::StatusOr<std::vector<int32_t>> labels = AverageLinkageClusters(*distance, n_heads, k);
  if (!labels.ok()) return labels.status();
  return ClusterMap::FromLabels(*labels);
}

}  // namespace chai::engine
