// Seeded random LLaMA weights held in memory (no model file), for tests that
// compare backends on a whole forward pass in a real model's shape.
//
// Values are scaled so activations stay O(1) through the layers: matrices
// ~ N(0, 1/cols), norm weights ~ 1 + N(0, 0.05^2), embeddings ~ N(0, 1).
// Thread-safety: the result is an immutable value like a loaded model.
#ifndef CHAI_TESTS_GPU_RANDOM_MODEL_H_
#define CHAI_TESTS_GPU_RANDOM_MODEL_H_

#include <cstdint>

#include "engine/model/llama_config.h"
#include "engine/model/model_weights.h"
#include "kernels/dtype.h"

namespace chai::testing {

// The default model's shape (SmolLM2-135M: 30 layers, 9 query / 3 KV heads,
// head_dim 64, dim 576, ffn 1536, vocab 49152).
engine::LlamaConfig SmolLm2Config();

// Matrices are stored in `matrix_dtype` (kF32 or kF16) except that every
// third layer uses the other of the two, so both conversion paths run.
// REQUIRES: config.Validate() is OK.
engine::ModelWeights MakeRandomModel(const engine::LlamaConfig& config, uint32_t seed,
                                     kernels::DType matrix_dtype);

}  // namespace chai::testing

#endif  // CHAI_TESTS_GPU_RANDOM_MODEL_H_
