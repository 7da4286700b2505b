// A float32 copy of a model's weights (every matrix dequantized). Used as the
// float reference in tests (it isolates the effect of activation quantization
// in the integer matmul paths) and by backends that keep dense weights.
//
// Ownership: the copy owns its float buffers and keeps the source's sources
// alive (norm vectors still point into them).
#ifndef CHAI_ENGINE_MODEL_DEQUANTIZED_COPY_H_
#define CHAI_ENGINE_MODEL_DEQUANTIZED_COPY_H_

#include <memory>

#include "engine/model/model_weights.h"

namespace chai::engine {

std::unique_ptr<ModelWeights> DequantizedCopy(const ModelWeights& src);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_DEQUANTIZED_COPY_H_
