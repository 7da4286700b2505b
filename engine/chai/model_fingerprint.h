// A fingerprint of a model's weights, so that a CHAI cluster config
// calibrated on one checkpoint is not silently applied to another checkpoint
// of the same shape (chai_config.h).
//
// Definition (version 1): lower-case hex SHA-256 over the ASCII tag
// "chai-model-fingerprint-v1\n" followed by these rows, each dequantized to
// float32 and written as little-endian IEEE-754 bytes, in this order:
//   token_embd rows 0, 1, vocab/2, vocab-1   [dim] each
//   output     row vocab-1                   [dim] (token_embd's when tied)
//   output_norm                              [dim]
//   layer 0 attn_norm, layer L-1 ffn_norm    [dim] each
//   layer 0 wv row 0                         [dim]
//   layer L-1 w_down row 0                   [ffn_dim]
// Q and K projections are left out on purpose: llama.cpp's converter stores
// their rows permuted for interleaved RoPE, so they differ between a GGUF
// and the Hugging Face checkpoint it came from; every row above is stored
// identically in both. Hence a GGUF and a safetensors checkpoint holding the
// same values get the same fingerprint, while re-quantizing (Q4_1 vs F16)
// changes the values and so the fingerprint.
// tests/golden/make_calib_golden.py recomputes it with numpy + hashlib.
//
// Thread-safety: pure function over immutable weights.
#ifndef CHAI_ENGINE_CHAI_MODEL_FINGERPRINT_H_
#define CHAI_ENGINE_CHAI_MODEL_FINGERPRINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/model/model_weights.h"

namespace chai::engine {

// 64 hex characters. Errors: InvalidArgument when the weights lack a tensor
// the definition reads (no layers, null norm vectors, views of the wrong
// width).
absl::StatusOr<std::string> ModelFingerprint(const ModelWeights& weights);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_MODEL_FINGERPRINT_H_
