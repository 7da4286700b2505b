#include "server/activations_flag.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace chai::server {

void DeclareActivationsFlag(FlagSet& flags) {
  flags.Value("activations",
              "CPU matmul numerics: int16 (fast, logits within ~1e-3) or float (exact weights)",
              "int16");
}

absl::StatusOr<kernels::cpu::ActivationMode> ActivationsFlag(const FlagSet& flags) {
  const std::string v = flags.Str("activations");
  if (v != "int16" && v != "float") {
    return absl::InvalidArgumentError(
        absl::StrCat("--activations must be int16 or float, got '", v, "'"));
  }
  return kernels::cpu::ParseActivationMode(v);
}

}  // namespace chai::server
