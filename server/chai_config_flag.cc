#include "server/chai_config_flag.h"

#include <cstdio>

#include "engine/chai/chai_config_resolve.h"
#include "engine/chai/model_fingerprint.h"

namespace chai::server {

absl::StatusOr<ResolvedChaiPlan> ResolveChaiPlan(const std::string& flag,
                                                 const engine::LoadedModel& model,
                                                 const char* command) {
  ResolvedChaiPlan out;
  if (flag == "none") {
    out.source = "none";
    return out;
  }
  // The fingerprint reads a few weight rows; only needed to match configs.
  absl::StatusOr<std::string> fingerprint = engine::ModelFingerprint(*model.weights);
  if (!fingerprint.ok()) return fingerprint.status();
  absl::StatusOr<engine::ResolvedChaiConfig> resolved =
      engine::ResolveChaiConfig(flag, model.weights->config, *fingerprint);
  if (!resolved.ok()) return resolved.status();
  if (!resolved->warning.empty()) {
    std::fprintf(stderr, "%s: warning: %s\n", command, resolved->warning.c_str());
  }
  if (resolved->config.has_value()) out.plan = resolved->config->plan();
  out.source = resolved->source;
  return out;
}

}  // namespace chai::server
