// CHAI cluster configs: what `chai calibrate` writes and what the engine
// loads to know how hard each layer clusters (DESIGN.md sections 3 and 4).
//
// A config records three things:
//   - model identity: name (GGUF general.name or config.json's
//     _name_or_path, for display only), architecture, layer/head/vocab shape,
//     and the weight fingerprint of model_fingerprint.h, which tells two
//     checkpoints of the same shape apart;
//   - calibration provenance (optional in hand-written configs): data file,
//     samples, tokens per sample, method, tool version;
//   - per layer l two numbers (the GQA design, docs/CHAI.md):
//       clusters  k_l in 1..n_heads: query heads are clustered into k_l
//                 groups at prefill; k_l == n_heads means the layer runs
//                 plain attention;
//       k_heads   s_l in 1..n_kv_heads: KV heads whose keys a CHAI sequence
//                 keeps per position; cluster representatives are chosen
//                 among query heads whose KV head is kept, so the layer's K
//                 memory is s_l / n_kv_heads of plain attention's.
//     Consistency: k_l <= s_l * (n_heads / n_kv_heads) (k_l representatives
//     must fit in the query heads of s_l KV heads). Hence k_l == n_heads
//     forces s_l == n_kv_heads. For multi-head attention (n_kv_heads ==
//     n_heads) calibration writes s_l == k_l; s_l > k_l is accepted (it
//     only keeps keys no representative reads).
//
// JSON layout (version 1; `chai calibrate` writes it, engine/chai/configs/
// ships one per model):
//   {"format": "chai-cluster-config", "version": 1,
//    "model": {"name": str, "architecture": str, "n_layers": int,
//              "n_heads": int, "n_kv_heads": int, "head_dim": int,
//              "vocab_size": int, "fingerprint": 64 lower-case hex},
//    "calibration": {"data": str, "samples": int, "tokens_per_sample": int,
//                    "method": str, "tool": str},          (optional)
//    "layers": [{"layer": 0, "clusters": int, "k_heads": int}, ...]}
// Parsing is strict: unknown or duplicate keys, wrong JSON types, integers
// given as fractions, counts out of range, a layer list whose length is not
// n_layers or whose "layer" fields are not 0, 1, 2, ... in order, and files
// over 1 MiB are all InvalidArgument with a message naming the field.
//
// Thread-safety: plain value type.
#ifndef CHAI_ENGINE_CHAI_CHAI_CONFIG_H_
#define CHAI_ENGINE_CHAI_CHAI_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/chai/chai_plan.h"
#include "engine/model/llama_config.h"

namespace chai::engine {

inline constexpr int64_t kMaxChaiConfigBytes = int64_t{1} << 20;

struct ChaiModelIdentity {
  std::string name;
  std::string architecture;
  int32_t n_layers = 0;
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t vocab_size = 0;
  std::string fingerprint;  // model_fingerprint.h

  // The identity of a loaded model (its LlamaConfig and fingerprint).
  static ChaiModelIdentity Of(const LlamaConfig& config, absl::string_view fingerprint);
};

struct ChaiCalibrationInfo {
  std::string data;  // calibration data file name (no directory)
  int32_t samples = 0;
  int32_t tokens_per_sample = 0;
  std::string method;  // how features, errors and knees were computed
  std::string tool;    // e.g. "chai calibrate 1"
};

struct ChaiLayerConfig {
  int32_t clusters = 0;  // k_l
  int32_t k_heads = 0;   // s_l
};

struct ChaiConfig {
  ChaiModelIdentity model;
  std::optional<ChaiCalibrationInfo> calibration;
  std::vector<ChaiLayerConfig> layers;  // [model.n_layers]

  // Every rule in the header comment; InvalidArgument naming the first
  // violation.
  absl::Status Validate() const;

  // The per-layer numbers the KV cache and forward pass take.
  // REQUIRES: Validate() is OK.
  ChaiPlan plan() const;

  // OK iff the config's shape (architecture, layers, heads, KV heads,
  // head_dim, vocab) is the model's; otherwise InvalidArgument saying what
  // differs. The name and fingerprint are not compared.
  absl::Status CheckShape(const LlamaConfig& config) const;

  // True iff the shape matches and the fingerprint is `fingerprint`: the
  // config was calibrated on exactly these weights.
  bool Matches(const LlamaConfig& config, absl::string_view fingerprint) const;

  // Parses and validates JSON text (see the header comment).
  static absl::StatusOr<ChaiConfig> FromJson(absl::string_view text);
  // Reads and parses a file. NotFound if it cannot be opened; InvalidArgument
  // (prefixed with the path) for bad content.
  static absl::StatusOr<ChaiConfig> Load(const std::string& path);

  // Pretty-printed JSON that FromJson reads back to an equal config.
  // REQUIRES: Validate() is OK.
  std::string ToJson() const;
  // Writes ToJson() to `path` (via a temporary file renamed into place).
  // InvalidArgument if the config is invalid; the errno's canonical code
  // (absl::ErrnoToStatus) with the path if the file cannot be written.
  absl::Status Save(const std::string& path) const;
};

bool operator==(const ChaiModelIdentity& a, const ChaiModelIdentity& b);
bool operator==(const ChaiCalibrationInfo& a, const ChaiCalibrationInfo& b);
bool operator==(const ChaiLayerConfig& a, const ChaiLayerConfig& b);
bool operator==(const ChaiConfig& a, const ChaiConfig& b);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CHAI_CONFIG_H_
