// Builds ModelWeights from a Hugging Face LLaMA checkpoint: config.json plus
// model.safetensors or a sharded model.safetensors.index.json.
//
// Tensor names (Hugging Face LlamaForCausalLM):
//   model.embed_tokens.weight                    [vocab, dim]
//   model.layers.N.self_attn.{q,k,v,o}_proj.weight
//   model.layers.N.mlp.{gate,up,down}_proj.weight
//   model.layers.N.{input,post_attention}_layernorm.weight   [dim]
//   model.norm.weight                            [dim]
//   lm_head.weight                               [vocab, dim]; absent or
//                                                ignored when tied
// A Linear weight is stored [out_features, in_features] row-major, which is
// exactly WeightView{rows = out, cols = in}: no transpose, no permutation (Q/K
// stay in the rotate-half layout, config.rope_interleaved = false).
//
// F32, F16 and BF16 matrices are used in place (zero copy) when their data is
// aligned to the element size; a misaligned one (the header length decides
// where the data section starts) is converted to an F32 copy. Norm vectors are
// always float32 (converted when stored as F16/BF16). Other dtypes, tensors
// of layers beyond num_hidden_layers and any shape that contradicts the config
// are INVALID_ARGUMENT.
//
// Ownership: the returned weights keep the checkpoint (all shard mappings)
// alive through ModelWeights::sources.
// Thread-safety: free functions; results immutable.
#ifndef CHAI_ENGINE_MODEL_SAFETENSORS_MODEL_H_
#define CHAI_ENGINE_MODEL_SAFETENSORS_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/llama_config.h"
#include "engine/model/model_weights.h"
#include "engine/model/safetensors.h"

namespace chai::engine {

// `path`: a directory holding config.json and model.safetensors (or
// model.safetensors.index.json), or a .safetensors file whose directory holds
// config.json.
absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromSafetensors(const std::string& path);

// The same over an opened checkpoint and an already-read config (tests).
// REQUIRES: config.Validate() is OK.
absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromSafetensorsCheckpoint(
    const LlamaConfig& config, std::shared_ptr<const SafetensorsCheckpoint> checkpoint);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_SAFETENSORS_MODEL_H_
