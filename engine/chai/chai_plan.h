// What CHAI does in each layer of a model: the numbers a cluster config
// (engine/chai/chai_config.h) boils down to, and all the KV cache and the
// forward pass need to know.
//
// Per layer l (docs/CHAI.md):
//   clusters[l]  k_l: query heads are clustered into k_l groups at prefill
//                (1..n_heads; n_heads means the layer does not cluster).
//   k_heads[l]   s_l: KV heads whose keys a CHAI sequence keeps per position
//                (1..n_kv_heads); representatives are chosen among heads whose
//                KV head is kept, so the layer's K memory is s_l / n_kv_heads
//                of plain attention's.
// Empty vectors: no CHAI (plain attention everywhere).
//
// Thread-safety: a plain value type.
#ifndef CHAI_ENGINE_CHAI_CHAI_PLAN_H_
#define CHAI_ENGINE_CHAI_CHAI_PLAN_H_

#include <cstdint>
#include <vector>

namespace chai::engine {

struct ChaiPlan {
  std::vector<int32_t> clusters;
  std::vector<int32_t> k_heads;

  bool enabled() const { return !clusters.empty(); }
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CHAI_PLAN_H_
