// Picks and creates the compute backend: cpu, cuda, or auto (cuda when the
// CUDA module loads and finds a device, else cpu).
//
// The CUDA backend is a separate shared module, libchai_cuda_backend.so
// (kernels/cuda/, docs/GPU.md), loaded with dlopen() on first use, so that
// binaries linking this library need no CUDA library to start. The module is
// looked for, in order, at:
//   1. BackendOptions::cuda_module_path, when set;
//   2. $CHAI_CUDA_MODULE, when set;
//   3. the folder of the running executable;
//   4. where this build tree put it (when the build had CUDA).
// It is loaded once per process and never unloaded (it carries its own
// static CUDA runtime, which must not go away while CUDA state may exist).
//
// Thread-safety: all functions may be called from any thread.
#ifndef CHAI_KERNELS_BACKEND_REGISTRY_H_
#define CHAI_KERNELS_BACKEND_REGISTRY_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace chai::kernels {

enum class BackendKind { kAuto, kCpu, kCuda };

// "auto", "cpu" or "cuda"; INVALID_ARGUMENT otherwise.
absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name);
const char* BackendKindName(BackendKind kind);

struct BackendOptions {
  int cpu_threads = 0;  // CPU backend threads; 0 = all cores
  // CPU backend only: how quantized weights meet activations.
  cpu::ActivationMode cpu_activations = CpuBackendOptions{}.activation_mode;
  // CPU backend only: KV cache element type, kF16 or kF32 (the CUDA backend
  // keeps float32).
  DType cpu_kv_dtype = CpuBackendOptions{}.kv_dtype;
  int cuda_device = 0;           // CUDA device ordinal
  std::string cuda_module_path;  // empty: the search order above

  absl::Status Validate() const;
};

// Creates the backend `kind` asks for:
//   kCpu: the CPU backend.
//   kCuda: the CUDA backend, or the reason it cannot be had: NOT_FOUND (no
//     module file), FAILED_PRECONDITION (the module or a library it needs,
//     such as libcublas.so.13, does not load, or its ABI differs),
//     UNAVAILABLE (no driver, no device, or no device `cuda_device`),
//     RESOURCE_EXHAUSTED / INTERNAL (the device failed to start).
//   kAuto: CUDA when CudaAvailability() is OK, else the CPU backend; a CUDA
//     backend that is available but fails to start is an error, not a
//     fallback.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendKind kind,
                                                       const BackendOptions& options);

// OK when the CUDA module loads and device options.cuda_device exists; else
// why not (codes as for kCuda above). Cheap after the first call.
absl::Status CudaAvailability(const BackendOptions& options);

// One line naming the CUDA device (name, compute capability, SMs, memory,
// driver), or why there is none.
absl::StatusOr<std::string> CudaDeviceDescription(const BackendOptions& options);

struct DeviceMemory {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

// Free and total memory of CUDA device options.cuda_device, for sizing the
// KV cache (the engine's job). Errors as CudaAvailability.
absl::StatusOr<DeviceMemory> QueryDeviceMemory(const BackendOptions& options);

// The first error a backend met. Backend ops return void, so the CUDA
// backend records its first failure (a CUDA or cuBLAS error, an op it cannot
// run) and turns later ops into no-ops; callers check this after a forward
// pass. Always OK for the CPU backend.
absl::Status BackendStatus(const Backend& backend);

}  // namespace chai::kernels

#endif  // CHAI_KERNELS_BACKEND_REGISTRY_H_
