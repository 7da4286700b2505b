#include "server/kv_dtype_flag.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_backend.h"

namespace chai::server {

void DeclareKvDtypeFlag(FlagSet& flags) {
  flags.Value("kv-cache-dtype", "CPU KV cache elements: f16 (half the memory) or f32 (float32)",
              "f16");
}

absl::StatusOr<kernels::DType> KvDtypeFlag(const FlagSet& flags) {
  const std::string v = flags.Str("kv-cache-dtype");
  absl::StatusOr<kernels::DType> t = kernels::ParseKvDtype(v);
  if (!t.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--kv-cache-dtype must be f16 or f32, got '", v, "'"));
  }
  return t;
}

}  // namespace chai::server
