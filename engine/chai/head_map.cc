#include "engine/chai/head_map.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/chai/clustering.h"

namespace chai::engine {

int32_t HeadMap::num_representatives() const {
  int32_t n = 0;
  for (size_t h = 0; h < score_head.size(); ++h) n += score_head[h] == static_cast<int32_t>(h);
  return n;
}

HeadMap IdentityHeadMap(int32_t n_heads, int32_t n_kv_heads) {
  HeadMap m;
  const int32_t group = n_heads / n_kv_heads;
  m.score_head.resize(n_heads);
  m.k_slot.resize(n_heads);
  m.k_src.resize(n_kv_heads);
  for (int32_t h = 0; h < n_heads; ++h) {
    m.score_head[h] = h;
    m.k_slot[h] = h / group;
  }
  for (int32_t j = 0; j < n_kv_heads; ++j) m.k_src[j] = j;
  return m;
}

absl::StatusOr<HeadMap> AssignHeads(std::span<const int32_t> labels,
                                    std::span<const double> distance, int32_t n_heads,
                                    int32_t n_kv_heads, int32_t k_heads) {
  if (n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0 ||
      static_cast<int32_t>(labels.size()) != n_heads ||
      distance.size() != static_cast<size_t>(n_heads) * n_heads || k_heads < 1 ||
      k_heads > n_kv_heads) {
    return absl::InvalidArgumentError("AssignHeads: inconsistent sizes or counts");
  }
  const int32_t group = n_heads / n_kv_heads;
  // Canonical cluster ids in order of each cluster's lowest head.
  std::vector<int32_t> cluster(n_heads);
  std::vector<int32_t> seen_labels;
  for (int32_t h = 0; h < n_heads; ++h) {
    if (labels[h] < 0) return absl::InvalidArgumentError("AssignHeads: negative label");
    auto it = std::find(seen_labels.begin(), seen_labels.end(), labels[h]);
    if (it == seen_labels.end()) {
      cluster[h] = static_cast<int32_t>(seen_labels.size());
      seen_labels.push_back(labels[h]);
    } else {
      cluster[h] = static_cast<int32_t>(it - seen_labels.begin());
    }
  }
  const int32_t n_clusters = static_cast<int32_t>(seen_labels.size());

  // 1. Greedy choice of the kept KV heads.
  std::vector<bool> kept(n_kv_heads, false), covered(n_clusters, false);
  std::vector<int32_t> k_src;
  for (int32_t pick = 0; pick < k_heads; ++pick) {
    int32_t best = -1, best_gain = -1;
    for (int32_t g = 0; g < n_kv_heads; ++g) {
      if (kept[g]) continue;
      std::vector<bool> hit(n_clusters, false);
      int32_t gain = 0;
      for (int32_t h = g * group; h < (g + 1) * group; ++h) {
        const int32_t c = cluster[h];
        if (!covered[c] && !hit[c]) {
          hit[c] = true;
          ++gain;
        }
      }
      if (gain > best_gain) {
        best = g;
        best_gain = gain;
      }
    }
    kept[best] = true;
    for (int32_t h = best * group; h < (best + 1) * group; ++h) covered[cluster[h]] = true;
  }
  std::vector<int32_t> slot_of(n_kv_heads, -1);
  for (int32_t g = 0; g < n_kv_heads; ++g) {
    if (kept[g]) {
      slot_of[g] = static_cast<int32_t>(k_src.size());
      k_src.push_back(g);
    }
  }
  // 2. Representatives: lowest-index head on a kept KV head.
  std::vector<int32_t> rep(n_clusters, -1);
  for (int32_t h = 0; h < n_heads; ++h) {
    if (kept[h / group] && rep[cluster[h]] < 0) rep[cluster[h]] = h;
  }
  // 3. Fold uncovered clusters into the nearest covered one.
  std::vector<int32_t> target(n_clusters);
  for (int32_t c = 0; c < n_clusters; ++c) {
    target[c] = c;
    if (rep[c] >= 0) continue;
    double best = std::numeric_limits<double>::infinity();
    for (int32_t d = 0; d < n_clusters; ++d) {
      if (rep[d] < 0) continue;
      double sum = 0;
      int64_t pairs = 0;
      for (int32_t i = 0; i < n_heads; ++i) {
        if (cluster[i] != c) continue;
        for (int32_t j = 0; j < n_heads; ++j) {
          if (cluster[j] != d) continue;
          sum += distance[static_cast<size_t>(i) * n_heads + j];
          ++pairs;
        }
      }
      const double avg = sum / static_cast<double>(pairs);
      if (avg < best) {
        best = avg;
        target[c] = d;
      }
    }
  }
  HeadMap m;
  m.score_head.resize(n_heads);
  m.k_slot.assign(n_heads, 0);
  m.k_src.assign(n_kv_heads, -1);
  std::copy(k_src.begin(), k_src.end(), m.k_src.begin());
  for (int32_t h = 0; h < n_heads; ++h) {
    m.score_head[h] = rep[target[cluster[h]]];
    if (m.score_head[h] == h) m.k_slot[h] = slot_of[h / group];
  }
  return m;
}

absl::StatusOr<HeadMap> ClusterLayer(std::span<const float> q, std::span<const float> k,
                                     const LayerClusterOptions& o) {
  if (o.n_heads < 1 || o.n_kv_heads < 1 || o.clusters < 1 || o.clusters > o.n_heads ||
      o.k_heads < 1 || o.k_heads > o.n_kv_heads) {
    return absl::InvalidArgumentError(absl::StrCat("ClusterLayer: clusters must be in 1..",
                                                   o.n_heads, " and k_heads in 1..", o.n_kv_heads));
  }
  if (o.clusters == o.n_heads && o.k_heads == o.n_kv_heads) {
    return IdentityHeadMap(o.n_heads, o.n_kv_heads);
  }
  HeadFeatureOptions fo;
  fo.n_heads = o.n_heads;
  fo.n_kv_heads = o.n_kv_heads;
  fo.head_dim = o.head_dim;
  fo.n_tokens = o.n_tokens;
  absl::StatusOr<std::vector<float>> features = ComputeHeadFeatures(q, k, fo);
  if (!features.ok()) return features.status();
  const int32_t dim = o.n_tokens * o.n_tokens;
  absl::StatusOr<std::vector<double>> distance = CosineDistanceMatrix(*features, o.n_heads, dim);
  if (!distance.ok()) return distance.status();
  absl::StatusOr<std::vector<int32_t>> labels =
      AverageLinkageClusters(*distance, o.n_heads, o.clusters);
  if (!labels.ok()) return labels.status();
  return AssignHeads(*labels, *distance, o.n_heads, o.n_kv_heads, o.k_heads);
}

}  // namespace chai::engine
