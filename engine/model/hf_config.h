// Reads a Hugging Face config.json of a LLaMA-family decoder
// (LlamaForCausalLM, MistralForCausalLM) into a LlamaConfig.
//
// Fields (Hugging Face names and defaults):
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
//   vocab_size                     required positive integers
//   num_key_value_heads            default num_attention_heads
//   head_dim                       default hidden_size / num_attention_heads
//   rms_norm_eps (1e-6), rope_theta (10000), max_position_embeddings (2048),
//   tie_word_embeddings (false)
//   rope_scaling                   null | {"rope_type"|"type": "default" |
//                                  "llama3" (factor, low_freq_factor,
//                                  high_freq_factor,
//                                  original_max_position_embeddings) |
//                                  "linear" (factor)}
//   rope_parameters                the transformers v5 spelling of the same
//                                  (it also carries rope_theta)
//   sliding_window (Mistral)       caps context_length: attention over at most
//                                  that many positions equals full attention
// Unsupported but valid settings (attention/MLP biases, an activation other
// than SiLU, other RoPE types) are UNIMPLEMENTED; wrong JSON types, missing
// required fields and values Validate() rejects are INVALID_ARGUMENT.
// The result has rope_interleaved = false (Hugging Face's rotate-half layout).
//
// Thread-safety: stateless functions.
#ifndef CHAI_ENGINE_MODEL_HF_CONFIG_H_
#define CHAI_ENGINE_MODEL_HF_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/model/llama_config.h"

namespace chai::engine {

absl::StatusOr<LlamaConfig> LlamaConfigFromHfJson(absl::string_view config_json);

// Reads `path` (at most 1 MiB) and parses it as above.
absl::StatusOr<LlamaConfig> LlamaConfigFromHfFile(const std::string& path);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_HF_CONFIG_H_
