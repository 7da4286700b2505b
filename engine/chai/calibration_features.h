// The attention-score vectors CHAI calibration clusters (DESIGN.md section 4).
//
// The paper clusters a layer's heads by their attention scores on
// calibration text; its offline script (facebookresearch/chai,
// perform_offline_clustering.py) runs K-means per sample on a [heads, scores]
// matrix and sums the error over samples. Our exact choice: for one sample of
// T tokens, head h's vector is its whole causal attention-probability matrix
//   P_h[i, j] = softmax_{j <= i}(q_h[i] . k_{g(h)}[j] / sqrt(head_dim)),
// flattened row by row over the lower triangle (j <= i), T (T + 1) / 2
// numbers. Every query token counts equally (each row sums to 1), and the
// masked upper triangle is left out because it is 0 for every head and adds
// nothing to a distance. Row 0 is [1] for every head; it is kept (it never
// changes a distance either). This is the distribution a member head would
// borrow from its representative for every token of the sample, so the
// K-means error measures what sharing the scores would change.
//
// GQA: query head h reads KV head g(h) = h / (n_heads / n_kv_heads). The
// vector of KV group g (used to choose how many KV heads' keys to keep) is
// its query heads' vectors concatenated; with heads row-major that is the
// same memory read as [n_kv_heads, group * T (T + 1) / 2].
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_CHAI_CALIBRATION_FEATURES_H_
#define CHAI_ENGINE_CHAI_CALIBRATION_FEATURES_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace chai::engine {

struct AttentionShape {
  int32_t n_tokens = 0;  // T
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;

  // T (T + 1) / 2: values per head.
  int64_t features_per_head() const { return int64_t{n_tokens} * (n_tokens + 1) / 2; }
};

// q: [T, n_heads, head_dim], k: [T, n_kv_heads, head_dim] (RoPE applied, one
// sequence, positions 0..T-1). Returns [n_heads, T (T + 1) / 2] in double:
// scores and softmax in double with max subtraction.
// Errors: InvalidArgument for non-positive sizes, n_heads not a multiple of
// n_kv_heads, span sizes that do not match, or non-finite inputs.
absl::StatusOr<std::vector<double>> CausalAttentionFeatures(std::span<const float> q,
                                                            std::span<const float> k,
                                                            const AttentionShape& shape);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CALIBRATION_FEATURES_H_
