// CHAI for grouped-query attention: turning one sequence's head clusters in
// one layer into the maps attention runs on (docs/CHAI.md, "GQA").
//
// A query head h reads KV head kv(h) = h / (n_heads / n_kv_heads). A
// representative r scores with its own query against kv(r)'s keys, so the
// keys a layer must keep are those of the representatives' KV heads. The
// paper's rule (representative = lowest-index head of its cluster) keeps up
// to min(k_l, n_kv_heads) key heads, which for SmolLM2 (9 query heads, 3 KV
// heads) saves K only when k_l <= 2. To make K shrink by design, a layer also
// has a key budget s_l (ChaiPlan::k_heads) and AssignHeads:
//   1. keeps s_l KV heads, greedily: each pick is the KV head whose query
//      heads fall into the most clusters not yet covered (ties: lowest KV
//      head), until s_l are kept;
//   2. makes each cluster's representative its lowest-index head whose KV
//      head is kept (with s_l = n_kv_heads: the paper's rule exactly);
//   3. folds a cluster with no head on a kept KV head into the covered
//      cluster at the smallest average cosine distance (ties: lowest
//      cluster), whose representative its heads then share.
// Members always multiply the probabilities with their own values (out_h =
// P_rep V_kv(h)), so V is whole and K holds s_l heads per position.
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_CHAI_HEAD_MAP_H_
#define CHAI_ENGINE_CHAI_HEAD_MAP_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace chai::engine {

// One sequence's maps in one layer (see kernels::KvLayer for how attention
// reads them).
struct HeadMap {
  std::vector<int32_t> score_head;  // [n_heads] head whose probabilities h uses
  std::vector<int32_t> k_slot;      // [n_heads] K slot of h's keys (representatives)
  std::vector<int32_t> k_src;       // [n_kv_heads] KV head kept in K slot j; -1 = none

  int32_t num_representatives() const;
};

// Plain attention: every head its own representative, K slot j = KV head j.
HeadMap IdentityHeadMap(int32_t n_heads, int32_t n_kv_heads);

// The assignment above. labels: [n_heads] cluster labels (any non-negative
// ints); distance: [n_heads, n_heads] cosine distances between the heads'
// features; k_heads in 1..n_kv_heads. Errors: InvalidArgument on
// inconsistent sizes or counts.
absl::StatusOr<HeadMap> AssignHeads(std::span<const int32_t> labels,
                                    std::span<const double> distance, int32_t n_heads,
                                    int32_t n_kv_heads, int32_t k_heads);

struct LayerClusterOptions {
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t n_tokens = 0;  // feature window, 1..5 (the first prompt tokens)
  int32_t clusters = 0;  // k_l
  int32_t k_heads = 0;   // s_l
};

// The whole online step of one layer for one sequence: features of the first
// n_tokens tokens (causal 5x5 attention probabilities per head), cosine
// distances, average-linkage clusters, AssignHeads.
//   q: [n_tokens, n_heads, head_dim]; k: [n_tokens, n_kv_heads, head_dim]
// (rotated). When clusters == n_heads and k_heads == n_kv_heads this is the
// identity map without any work.
absl::StatusOr<HeadMap> ClusterLayer(std::span<const float> q, std::span<const float> k,
                                     const LayerClusterOptions& options);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_HEAD_MAP_H_
