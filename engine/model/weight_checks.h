// Shape checks shared by the model loaders (GGUF, safetensors): every weight
// the forward pass reads must have exactly the shape the config implies, so a
// file whose hyper-parameters contradict its tensors is rejected at load.
//
// Thread-safety: stateless functions.
#ifndef CHAI_ENGINE_MODEL_WEIGHT_CHECKS_H_
#define CHAI_ENGINE_MODEL_WEIGHT_CHECKS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/model/model_weights.h"

namespace chai::engine {

// OK when `w` is [rows, cols]; else INVALID_ARGUMENT naming the tensor.
absl::Status CheckMatrix(absl::string_view name, const kernels::WeightView& w, int64_t rows,
                         int64_t cols);

// Checks every matrix and norm of `m` against m.config (which must already
// Validate()).
absl::Status CheckModelShapes(const ModelWeights& m);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_WEIGHT_CHECKS_H_
