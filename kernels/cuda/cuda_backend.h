// The CUDA implementation of kernels/backend.h: device memory, fp16 weights,
// cuBLAS for MatMul, our kernels (cuda_kernels.h) for everything else. Built
// into libchai_cuda_backend.so (module.cc) and loaded at run time by
// kernels/backend_registry; the GPU benchmark links it directly.
//
// Memory and ordering: every op, copy and allocation uses one CUDA stream per
// backend, so ops run in issue order and asynchronously to the host.
// CopyToDevice returns once the host bytes are staged (pageable memory) or
// copied; CopyToHost and Synchronize wait for all queued work. Buffers are
// cudaMalloc'd; freeing one synchronises the device (cudaFree), so a buffer
// may be dropped while ops that use it are still queued.
//
// Weights: PrepareWeight stores every weight as fp16 [rows, cols] on the
// device. Quantized GGUF types and BF16 are dequantized on the host with the
// CPU dequantizer (kernels/cpu/dequantize.h), then rounded to fp16; F32 is
// rounded; F16 is copied. A value beyond fp16's range is INVALID_ARGUMENT.
// Embed and MatMul accept only such prepared views (F16, or F32 for Embed).
// PrepareWeight also accepts an F16 view whose data is already device memory
// (the benchmark's random weights) and copies it.
//
// MatMul of up to 8 rows (decode) streams the fp16 weights through our GEMV
// kernel (fp32 activations, fp32 accumulation; kernels/cuda/gemv.cu); larger
// products convert the float32 activations to fp16 (a kernel) and multiply
// with cublasGemmEx (fp16 inputs, fp32 accumulation and output). Attention over
// batches of more than 64 rows with head_dim 64 or 128 runs on tensor cores
// (fp16 Q/K/V/P, fp32 accumulation; kernels/cuda/attention_mma.cu); other
// attention and every other op compute in float32. The KV cache is float32.
//
// Recording (Backend::BeginCapture/EndCapture): stream capture into a CUDA
// graph. cuBLAS gets its own 32 MiB workspace at creation so that it never
// allocates during a capture. Scratch that would have to grow during a
// capture fails the capture instead (run the same shapes once uncaptured
// first), and any later growth makes existing graphs refuse to replay.
//
// Errors: ops return void (kernels/backend.h), so the first failing CUDA or
// cuBLAS call, or an op given something it cannot run (a weight not prepared
// here, an unsupported head size), is recorded as a sticky status(); later
// ops do nothing, CopyToHost fills its destination with NaN, and Allocate and
// PrepareWeight return the error. backend_registry.h's BackendStatus() reads
// it through the module.
//
// Determinism: each op computes a row the same way on every run (no atomics),
// but unlike the CPU backend the bits may depend on the batch: cuBLAS picks
// its algorithm by matrix shape, and Attention's tiling and context split by
// batch size. Across backends, expect the tolerances of DESIGN.md section 3.
//
// Thread-safety: as Backend; one engine thread at a time.
#ifndef CHAI_KERNELS_CUDA_CUDA_BACKEND_H_
#define CHAI_KERNELS_CUDA_CUDA_BACKEND_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace chai::kernels::cuda {

struct CudaBackendOptions {
  int device = 0;
};

// The CUDA backend's own interface beyond Backend (used by the module's C
// entry points and the benchmark, which link the backend directly).
class CudaBackend : public Backend {
 public:
  // UNAVAILABLE when the device does not exist or CUDA/cuBLAS cannot start.
  static absl::StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options);

  // The first error any op met (OK if none).
  virtual absl::Status status() const = 0;
  // The stream every op runs on (a cudaStream_t).
  virtual void* stream() const = 0;
  virtual int device() const = 0;
  virtual int sm_count() const = 0;
};

// Whether `device` exists and the driver works; UNAVAILABLE with the CUDA
// error otherwise. On success, `description` (if not null) names the device.
absl::Status ProbeDevice(int device, std::string* description);

// Free and total bytes of device memory.
absl::Status DeviceMemoryInfo(int device, size_t* free_bytes, size_t* total_bytes);

}  // namespace chai::kernels::cuda

#endif  // CHAI_KERNELS_CUDA_CUDA_BACKEND_H_
