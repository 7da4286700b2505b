// Hyper-parameters of a LLaMA-family decoder, read from GGUF metadata or a
// Hugging Face config.json, and checked against the tensors actually present.
//
// Thread-safety: plain value type.
#ifndef CHAI_ENGINE_MODEL_LLAMA_CONFIG_H_
#define CHAI_ENGINE_MODEL_LLAMA_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace chai::engine {

// Llama-3.1 style frequency scaling ("rope_type": "llama3"); factor == 0 means none.
struct RopeScaling {
  double factor = 0.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};

struct LlamaConfig {
  std::string name;          // general.name / _name_or_path, for display and CHAI config matching
  std::string architecture;  // "llama"
  int64_t n_layers = 0;
  int64_t dim = 0;         // hidden size
  int64_t ffn_dim = 0;     // intermediate size
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads (== n_heads for multi-head attention)
  int64_t head_dim = 0;    // dim / n_heads unless stated
  int64_t vocab_size = 0;
  int64_t context_length = 0;
  double rope_theta = 10000.0;
  double rms_eps = 1e-5;
  RopeScaling rope_scaling;
  // Linear position scaling (rope_scaling type "linear"): positions / factor. 0 = none.
  double rope_linear_factor = 0.0;
  // Per-frequency divisors stored by llama.cpp's converter as the tensor
  // rope_freqs.weight (its encoding of Llama-3.1 scaling); empty = none.
  std::vector<float> rope_freq_factors;
  bool tied_embeddings = false;  // output projection shares token_embd
  // True when Q/K projections are stored for interleaved-pair RoPE (GGUF from
  // llama.cpp's converter); false for rotate-half (Hugging Face checkpoints).
  bool rope_interleaved = true;

  // Rejects zero or negative sizes, heads that do not divide, absurd values.
  absl::Status Validate() const;

  // RoPE inverse frequencies, [head_dim / 2], including rope_scaling.
  std::vector<float> RopeInvFreq() const;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_LLAMA_CONFIG_H_
