#include "server/kv_dtype_flag.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace chai::server {

void DeclareKvDtypeFlag(FlagSet& flags) {
  flags.Value("kv-cache-dtype", "CPU KV cache elements: f16 (half the memory) or f32 (float32)",
              "f16");
}

absl::StatusOr<kernels::DType> KvDtypeFlag(const FlagSet& flags) {
  const std::string v = flags.Str("kv-cache-dtype");
  if (v == "f16") return kernels::DType::kF16;
  if (v == "f32") return kernels::DType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("--kv-cache-dtype must be f16 or f32, got '", v, "'"));
}

}  // namespace chai::server
