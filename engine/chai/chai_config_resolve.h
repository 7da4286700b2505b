// Which CHAI config a run uses: the `--chai-config` contract of DESIGN.md
// section 3.
//
//   flag absent ("") or "auto"  the shipped config (shipped_configs.h) whose
//                               model identity matches the loaded model --
//                               same shape AND same weight fingerprint
//                               (ChaiConfig::Matches) -- turns CHAI on;
//                               none matching: plain attention.
//   "none"                      plain attention.
//   anything else               a config FILE: it must parse, validate and
//                               fit the model's shape (else an error); a
//                               different fingerprint (e.g. the config was
//                               calibrated on another quantization of the
//                               same model) is allowed with a warning, since
//                               the user named the file.
//
// Thread-safety: pure function (reads files).
#ifndef CHAI_ENGINE_CHAI_CHAI_CONFIG_RESOLVE_H_
#define CHAI_ENGINE_CHAI_CHAI_CONFIG_RESOLVE_H_

#include <optional>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/chai/chai_config.h"
#include "engine/chai/shipped_configs.h"
#include "engine/model/llama_config.h"

namespace chai::engine {

struct ResolvedChaiConfig {
  std::optional<ChaiConfig> config;  // nullopt: plain attention
  // Where it came from, for logs: "shipped:<file>", "file:<path>", "none",
  // or "auto: no shipped config matches".
  std::string source;
  std::string warning;  // non-empty: print it, the run goes on
};

// `shipped` defaults to the configs compiled into the binary; tests pass
// their own. Errors: NotFound (FILE missing), InvalidArgument (FILE invalid
// or not fitting the model's shape), Internal (a shipped config does not
// parse: a build defect).
absl::StatusOr<ResolvedChaiConfig> ResolveChaiConfig(
    absl::string_view flag, const LlamaConfig& model, absl::string_view fingerprint,
    std::span<const ShippedChaiConfig> shipped = ShippedChaiConfigs());

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CHAI_CONFIG_RESOLVE_H_
