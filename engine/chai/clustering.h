// CHAI head clustering (DESIGN.md section 4): the pure-function part of
// Clustered Head Attention that runs once per request and per CHAI layer at
// prefill.
//
//   1. ComputeHeadFeatures: for every query head h, the attention
//      probabilities of the first n_tokens (5) prompt tokens,
//      softmax(q_h k_h^T / sqrt(head_dim)), flattened to n_tokens^2 numbers.
//   2. CosineDistanceMatrix: 1 - cos between the heads' feature vectors.
//   3. AverageLinkage / AverageLinkageClusters: agglomerative clustering with
//      average linkage (UPGMA), cut into k clusters.
//   4. ClusterMap: each head's representative, the lowest-index head of its
//      cluster; only representatives compute q k^T in a CHAI layer.
//
// Reference semantics: the clustering is the one the CHAI paper's code gets
// from sklearn AgglomerativeClustering(linkage="average",
// metric="precomputed", n_clusters=k) on scipy's pdist(features, 'cosine'),
// which builds scipy.cluster.hierarchy.linkage(method='average') and undoes
// its last k-1 merges. AverageLinkage is a transcription of scipy's
// nearest-neighbour-chain algorithm (scipy/cluster/_hierarchy.pyx, nn_chain),
// including its arithmetic and its tie-breaking, so on the same distance
// matrix it produces the same linkage matrix Z and the same partitions, even
// when distances tie (e.g. exact duplicate heads). Tie-breaking, precisely:
//   - a chain starts at the lowest-index active cluster slot;
//   - the nearest neighbour of the chain's top is the previous chain element
//     if no other active slot is strictly closer, otherwise the lowest-index
//     slot among the strictly closest ones;
//   - a merged cluster lives on in the higher of its two slots (the lower
//     one retires), and its distances follow the Lance-Williams update
//     (n_x d(x,i) + n_y d(y,i)) / (n_x + n_y) in double, as scipy computes;
//   - merges are then ordered by height with a stable sort (merge order
//     breaks equal heights), and cutting into k clusters keeps the first
//     n - k merges of that order.
// On inputs without ties any correct UPGMA gives the same tree. One caveat:
// our cosine distances differ from scipy's by rounding (<= 1e-15), so where
// distances tie only mathematically -- k exceeds the number of distinct
// heads, and a group of duplicates must be split -- which duplicates are
// split may differ from sklearn's choice; both are valid. tests/golden/chai/
// checks all of this against sklearn (make_clustering_golden.py).
//
// Cost: O(n^2) memory and time for n heads (the chain algorithm); the whole
// ClusterHeads step takes 20-60 us for 32 heads and ComputeHeadFeatures
// 65-100 us for 32 heads of dimension 128 (Release, one core of a shared
// machine; printed by chai_clustering_test). Both run once per request and
// CHAI layer, at prefill.
//
// Thread-safety: every function here is pure (no shared state); a ClusterMap
// is immutable after construction and safe to read from any thread.
#ifndef CHAI_ENGINE_CHAI_CLUSTERING_H_
#define CHAI_ENGINE_CHAI_CLUSTERING_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace chai::engine {

// The paper's feature window: the first 5 prompt tokens, 25 numbers per head.
inline constexpr int32_t kChaiFeatureTokens = 5;

struct HeadFeatureOptions {
  int32_t n_heads = 0;     // query heads of the layer
  int32_t n_kv_heads = 0;  // key/value heads; n_heads % n_kv_heads == 0
  int32_t head_dim = 0;
  // Tokens in the feature window. 5 is the paper's choice; a caller with a
  // shorter prompt may pass fewer (>= 1), giving n_tokens^2 features per head.
  int32_t n_tokens = kChaiFeatureTokens;
  // Whether the n_tokens x n_tokens block is masked causally. The reference
  // code skips the mask; we default to the mask because it is what the
  // model's own attention computes for those tokens, i.e. the distribution
  // heads actually share when a member reuses its representative's
  // probabilities (a head's scores on future tokens never influence
  // anything). With the mask, row 0 is [1, 0, ..., 0] for every head: it
  // carries no information, but it only adds the same 1 to every dot product
  // and squared norm, so it never makes distinct heads identical or identical
  // heads distinct, and cosine distance still ranks heads by the other rows.
  bool causal = true;

  // OK iff all counts are >= 1 and n_heads is a multiple of n_kv_heads.
  absl::Status Validate() const;
};

// Attention-score features of every query head.
//   q: [n_tokens, n_heads, head_dim], float32, already RoPE-rotated.
//   k: [n_tokens, n_kv_heads, head_dim], float32, already RoPE-rotated.
// Query head h attends with kv head h / (n_heads / n_kv_heads) (GQA).
// Returns [n_heads, n_tokens * n_tokens]: row h is head h's n_tokens x
// n_tokens probability matrix, row-major (query token major). Scores and the
// softmax are computed in double with max subtraction; masked entries are
// exactly 0.
// Errors: InvalidArgument for invalid options, wrong span sizes, or
// non-finite scores.
absl::StatusOr<std::vector<float>> ComputeHeadFeatures(std::span<const float> q,
                                                       std::span<const float> k,
                                                       const HeadFeatureOptions& options);

// Cosine distances between the rows of features [n, dim]: out[i * n + j] =
// 1 - <f_i, f_j> / (|f_i| |f_j|), computed in double, clamped to [0, 2],
// symmetric, with an exactly zero diagonal; identical rows are exactly 0
// apart. Zero vectors (never produced by ComputeHeadFeatures, whose rows
// sum to n_tokens) have no direction: two zero rows are 0 apart (identical),
// a zero row and a non-zero row 1 (as if orthogonal). scipy returns NaN there
// and its linkage then rejects the matrix; a finite answer keeps a degenerate
// head clusterable instead of failing the request.
// Returns [n, n]. Errors: InvalidArgument if n < 1, dim < 1, features.size()
// != n * dim, or a feature is not finite.
absl::StatusOr<std::vector<double>> CosineDistanceMatrix(std::span<const float> features, int32_t n,
                                                         int32_t dim);

// One row of scipy's linkage matrix Z: clusters `a` < `b` (ids < n are
// heads, id n + i is the cluster made by merge i) merge at `height` into a
// cluster of `size` heads.
struct LinkageMerge {
  int32_t a = 0;
  int32_t b = 0;
  double height = 0.0;
  int32_t size = 0;
};

// Average-linkage dendrogram of the distance matrix [n, n]; the n - 1 merges
// in scipy's order (sorted by height, stable), with scipy's cluster ids. Only
// the strict upper triangle is read (as sklearn does with a precomputed
// matrix). Errors: InvalidArgument if n < 1, distance.size() != n * n, or an
// upper-triangle entry is not finite.
absl::StatusOr<std::vector<LinkageMerge>> AverageLinkage(std::span<const double> distance,
                                                         int32_t n);

// The dendrogram of AverageLinkage cut into k clusters (its first n - k
// merges). Returns labels [n] in canonical form: clusters are numbered
// 0..k-1 in order of their lowest-index head, so labels[0] == 0 and a
// cluster's label is smaller than any later cluster's. Errors: those of
// AverageLinkage, and InvalidArgument unless 1 <= k <= n.
absl::StatusOr<std::vector<int32_t>> AverageLinkageClusters(std::span<const double> distance,
                                                            int32_t n, int32_t k);

// Head -> representative map of one layer for one sequence.
class ClusterMap {
 public:
  // From cluster labels [n_heads] (any non-negative integers; equal labels
  // mean the same cluster). Errors: InvalidArgument if labels is empty or a
  // label is negative.
  static absl::StatusOr<ClusterMap> FromLabels(std::span<const int32_t> labels);
  // Every head its own representative (a layer that does not cluster).
  // REQUIRES: n_heads >= 1 (a smaller count gives an empty map).
  static ClusterMap Identity(int32_t n_heads);

  int32_t num_heads() const { return static_cast<int32_t>(rep_of_.size()); }
  int32_t num_clusters() const { return static_cast<int32_t>(representatives_.size()); }
  // The lowest-index head of h's cluster. REQUIRES: 0 <= h < num_heads().
  int32_t rep_of(int32_t h) const { return rep_of_[static_cast<size_t>(h)]; }
  bool is_representative(int32_t h) const { return rep_of(h) == h; }
  // Representative heads, ascending; num_clusters() of them.
  const std::vector<int32_t>& representatives() const { return representatives_; }
  // rep_of(h) for every head, [n_heads].
  const std::vector<int32_t>& rep_of_all() const { return rep_of_; }

 private:
  ClusterMap() = default;

  std::vector<int32_t> rep_of_;
  std::vector<int32_t> representatives_;
};

// The whole online step on computed features [n_heads, dim]: cosine
// distances, average linkage, k clusters, representatives. Errors: those of
// CosineDistanceMatrix and AverageLinkageClusters (k must be in 1..n_heads).
absl::StatusOr<ClusterMap> ClusterHeads(std::span<const float> features, int32_t n_heads,
                                        int32_t dim, int32_t k);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CLUSTERING_H_
