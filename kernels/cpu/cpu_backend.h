// The CPU implementation of kernels/backend.h: host memory, a fixed thread
// pool, SIMD matmul (AVX2+FMA when the CPU has it, scalar otherwise).
//
// Ops run synchronously on the calling thread plus the pool; Synchronize() is
// a no-op. Weights are used in place: PrepareWeight returns a view of the
// caller's memory (zero copy), so an mmapped GGUF is read directly, except
// that in ActivationMode::kInt16 the Q4_0/Q4_1/Q8_0 MatMul weights are
// copied once into the row-interleaved layout their kernels read
// (kernels/cpu/interleave.h; the same number of bytes).
//
// Determinism: every op's value for a token row is bit-identical whatever the
// batch composition and the thread count (DESIGN.md section 3); see
// kernels/cpu/matmul.h for the matmul argument.
//
// Thread-safety: as Backend -- one engine thread at a time.
#ifndef CHAI_KERNELS_CPU_CPU_BACKEND_H_
#define CHAI_KERNELS_CPU_CPU_BACKEND_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cpu/matmul.h"

namespace chai::kernels {

struct CpuBackendOptions {
  int threads = 0;  // total threads including the caller; 0 = hardware concurrency
  // Kernel family; kAuto picks AVX2 when available. Tests force kScalar.
  cpu::MatMulImpl matmul_impl = cpu::MatMulImpl::kAuto;
  // How quantized weights meet activations (kernels/cpu/matmul.h): kInt16
  // (16-bit activation blocks, interleaved weights) is the fastest and
  // within DESIGN.md's tolerance of a float32 reference (logits move by
  // ~1e-3; docs/ENGINE.md); kFloat matches that reference to float rounding
  // (`--activations float`: the eval goldens and the fidelity tables); kInt8
  // is llama.cpp's scheme, outside the tolerance, kept for benchmarks.
  cpu::ActivationMode activation_mode = cpu::ActivationMode::kInt16;
  // KV cache element type (Backend::KvDtype()): kF16 halves the cache's
  // memory and attention's memory traffic; each K and V value is rounded to
  // fp16 once when stored and read back exactly (docs/ENGINE.md, "KV
  // cache"). kF32 keeps float32. Nothing else is allowed.
  DType kv_dtype = DType::kF16;

  absl::Status Validate() const;
};

// "f16" or "f32" (the `--kv-cache-dtype` flag's values) as the
// CpuBackendOptions::kv_dtype they name; INVALID_ARGUMENT otherwise.
absl::StatusOr<DType> ParseKvDtype(std::string_view name);

// Returns nullptr only if `options` fail Validate(); prefer
// CreateCpuBackendOrError to get the reason.
std::unique_ptr<Backend> CreateCpuBackend(const CpuBackendOptions& options = {});
absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackendOrError(const CpuBackendOptions& options);

}  // namespace chai::kernels

#endif  // CHAI_KERNELS_CPU_CPU_BACKEND_H_
