// `--chai-config` for every subcommand (DESIGN.md section 3): resolves the
// flag into the CHAI plan the engine runs. "none" forces plain attention; a
// FILE is a cluster config that must fit the model's shape; absent (or
// "auto") picks the shipped config whose identity (shape and weight
// fingerprint) matches the loaded model, else plain attention.
//
// Thread-safety: free function (reads files, prints warnings to stderr).
#ifndef CHAI_SERVER_CHAI_CONFIG_FLAG_H_
#define CHAI_SERVER_CHAI_CONFIG_FLAG_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/loaded_model.h"

namespace chai::server {

struct ResolvedChaiPlan {
  engine::ChaiPlan plan;  // empty: plain attention
  // Where it came from, for logs and GetModelInfo: "file:<path>",
  // "shipped:<file>", "none" or "auto: no shipped config matches".
  std::string source;
};

// Delegates to engine::ResolveChaiConfig (engine/chai/chai_config_resolve.h);
// a warning it returns is printed as "<command>: warning: ...".
// NOT_FOUND / INVALID_ARGUMENT for an unreadable or mismatched FILE.
absl::StatusOr<ResolvedChaiPlan> ResolveChaiPlan(const std::string& flag,
                                                 const engine::LoadedModel& model,
                                                 const char* command = "chai");

}  // namespace chai::server

#endif  // CHAI_SERVER_CHAI_CONFIG_FLAG_H_
