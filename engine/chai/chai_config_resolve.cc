#include "engine/chai/chai_config_resolve.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::StatusOr<ResolvedChaiConfig> ResolveChaiConfig(absl::string_view flag,
                                                     const LlamaConfig& model,
                                                     absl::string_view fingerprint,
                                                     std::span<const ShippedChaiConfig> shipped) {
  ResolvedChaiConfig out;
  if (flag == "none") {
    out.source = "none";
    return out;
  }
  if (flag.empty() || flag == "auto") {
    for (const ShippedChaiConfig& s : shipped) {
      absl::StatusOr<ChaiConfig> c = ChaiConfig::FromJson(s.json);
      if (!c.ok()) {
        return absl::InternalError(absl::StrCat("shipped CHAI config ", s.file_name,
                                                " is invalid: ", c.status().message()));
      }
      if (c->Matches(model, fingerprint)) {
        out.config = *std::move(c);
        out.source = absl::StrCat("shipped:", s.file_name);
        return out;
      }
    }
    out.source = "auto: no shipped config matches";
    return out;
  }
  const std::string path(flag);
  absl::StatusOr<ChaiConfig> c = ChaiConfig::Load(path);
  if (!c.ok()) return c.status();
  if (absl::Status s = c->CheckShape(model); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  if (c->model.fingerprint != fingerprint) {
    out.warning = absl::StrCat("CHAI config ", path, " was calibrated on other weights ('",
                               c->model.name, "', fingerprint ", c->model.fingerprint.substr(0, 12),
                               "...) than the loaded model (", fingerprint.substr(0, 12),
                               "...); using it anyway");
  }
  out.config = *std::move(c);
  out.source = absl::StrCat("file:", path);
  return out;
}

}  // namespace chai::engine
