// `--kv-cache-dtype f16|f32` for the subcommands that run the CPU engine: the
// element type of the CPU backend's KV cache (kernels/cpu/cpu_backend.h,
// docs/ENGINE.md "KV cache"). f16, the default, halves the cache's memory
// (twice the sequences or context per byte) and attention's memory traffic;
// each cached key and value is rounded to fp16 once. f32 keeps float32 (the
// mode the fidelity tables were made in). The CUDA backend ignores it and
// keeps float32.
//
// Thread-safety: free functions, start-up only.
#ifndef CHAI_SERVER_KV_DTYPE_FLAG_H_
#define CHAI_SERVER_KV_DTYPE_FLAG_H_

#include "absl/status/statusor.h"
#include "kernels/dtype.h"
#include "server/cli_flags.h"

namespace chai::server {

void DeclareKvDtypeFlag(FlagSet& flags);

// The parsed flag: DType::kF16 or DType::kF32; INVALID_ARGUMENT naming the
// flag for anything else.
absl::StatusOr<kernels::DType> KvDtypeFlag(const FlagSet& flags);

}  // namespace chai::server

#endif  // CHAI_SERVER_KV_DTYPE_FLAG_H_
