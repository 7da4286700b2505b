// A loaded LLaMA model: configuration plus host-memory views of every weight,
// whatever file format they came from (GGUF or safetensors).
//
// Layout contract (what the forward pass assumes):
//   token_embd  [vocab, dim]        any supported DType (rows = vocab)
//   output      [vocab, dim]        == token_embd when config.tied_embeddings
//   output_norm [dim]               F32
//   per layer:
//     attn_norm [dim] F32, ffn_norm [dim] F32
//     wq [n_heads*head_dim, dim], wk [n_kv_heads*head_dim, dim],
//     wv [n_kv_heads*head_dim, dim], wo [dim, n_heads*head_dim]
//     w_gate [ffn_dim, dim], w_up [ffn_dim, dim], w_down [dim, ffn_dim]
// All matrices are kernels::WeightView (rows = output dim). Norm vectors are
// float32 (converted at load when the file stores F16/BF16).
//
// Ownership: ModelWeights owns the file mapping (`source`) and any converted
// buffers (`owned`); views point into them and live as long as this object.
// Thread-safety: immutable after load.
#ifndef CHAI_ENGINE_MODEL_MODEL_WEIGHTS_H_
#define CHAI_ENGINE_MODEL_MODEL_WEIGHTS_H_

#include <memory>
#include <string>
#include <vector>

#include "engine/model/llama_config.h"
#include "kernels/backend.h"

namespace chai::engine {

struct LayerWeights {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  kernels::WeightView wq, wk, wv, wo;
  kernels::WeightView w_gate, w_up, w_down;
};

struct ModelWeights {
  LlamaConfig config;
  kernels::WeightView token_embd;
  kernels::WeightView output;
  const float* output_norm = nullptr;
  std::vector<LayerWeights> layers;

  // Whatever keeps the weight bytes alive (a parsed GgufFile, mapped shards).
  std::vector<std::shared_ptr<const void>> sources;
  // Converted buffers (norm vectors, dequantized copies); shared so that a
  // copy of ModelWeights keeps its views valid.
  std::vector<std::shared_ptr<std::vector<float>>> owned;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_MODEL_WEIGHTS_H_
