// libchai_cuda_probe_module.so: the run-time-loaded half of the build-path
// proof (see probe_module.h, docs/GPU.md). cudart is linked statically and its
// symbols hidden (-Xlinker --exclude-libs,ALL); libcublas stays dynamic, so a
// host without it fails at dlopen() and the loader falls back to the CPU.
// A library never exits the process: every failure is a status code + message.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "probe_module.h"
#include "rmsnorm_probe.cuh"

namespace {

int report(char* msg, size_t cap, int status, const char* fmt, ...) {
  if (msg && cap) {
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
  }
  return status;
}

#define MCK(call)                                                                                 \
  do {                                                                                            \
    cudaError_t e_ = (call);                                                                      \
    if (e_ != cudaSuccess)                                                                        \
      return report(msg, cap, CHAI_PROBE_ERROR, "%s failed: %s: %s", #call, cudaGetErrorName(e_), \
                    cudaGetErrorString(e_));                                                      \
  } while (0)

#define MCKB(call)                                                                                \
  do {                                                                                            \
    cublasStatus_t s_ = (call);                                                                   \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                              \
      return report(msg, cap, CHAI_PROBE_ERROR, "%s failed: %s", #call, cublasGetStatusName(s_)); \
  } while (0)

struct DevBuf {
  float* p = nullptr;
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

}  // namespace

extern "C" __attribute__((visibility("default"))) int chai_cuda_probe_module_abi(void) {
  return CHAI_CUDA_PROBE_MODULE_ABI;
}

extern "C" __attribute__((visibility("default"))) int chai_cuda_probe_module_run(char* msg,
                                                                                 size_t cap) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    if (e != cudaSuccess)
      return report(msg, cap, CHAI_PROBE_NO_DEVICE, "no CUDA device: cudaGetDeviceCount: %s (%s)",
                    cudaGetErrorName(e), cudaGetErrorString(e));
    return report(msg, cap, CHAI_PROBE_NO_DEVICE, "no CUDA device: cudaGetDeviceCount = 0");
  }
  MCK(cudaSetDevice(0));
  cudaDeviceProp prop{};
  MCK(cudaGetDeviceProperties(&prop, 0));

  // cuBLAS is what makes the module need libcublas: touch it like the backend will.
  cublasHandle_t h = nullptr;
  MCKB(cublasCreate(&h));
  int cublas_ver = 0;
  const cublasStatus_t vs = cublasGetVersion(h, &cublas_ver);
  cublasDestroy(h);
  if (vs != CUBLAS_STATUS_SUCCESS)
    return report(msg, cap, CHAI_PROBE_ERROR, "cublasGetVersion failed: %s",
                  cublasGetStatusName(vs));

  const int rows = 64, cols = 576;
  const size_t n = static_cast<size_t>(rows) * cols;
  std::vector<float> x(n), w(cols), y(n);
  uint32_t s = 12345u;  // fixed LCG: this is a load/run proof, cuda_probe does fresh inputs
  auto u = [&s] { return (s = s * 1664525u + 1013904223u) * (1.0f / 4294967296.0f); };
  for (auto& v : x) v = 4.f * u() - 2.f;
  for (auto& v : w) v = 0.5f + u();
  DevBuf dx, dw, dy;
  MCK(cudaMalloc(&dx.p, n * sizeof(float)));
  MCK(cudaMalloc(&dw.p, cols * sizeof(float)));
  MCK(cudaMalloc(&dy.p, n * sizeof(float)));
  MCK(cudaMemcpy(dx.p, x.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  MCK(cudaMemcpy(dw.p, w.data(), cols * sizeof(float), cudaMemcpyHostToDevice));
  MCK(cudaMemset(dy.p, 0xFF, n * sizeof(float)));  // NaN poison
  chai::cuda_probe::rmsnorm_f32_kernel<<<rows, chai::cuda_probe::kRmsThreads>>>(dx.p, dw.p, dy.p,
                                                                                cols, 1e-6f);
  MCK(cudaGetLastError());
  MCK(cudaMemcpy(y.data(), dy.p, n * sizeof(float), cudaMemcpyDeviceToHost));
  std::vector<double> ref(n);
  chai::cuda_probe::rmsnorm_ref(x.data(), w.data(), ref.data(), rows, cols, 1e-6);
  const double err = chai::cuda_probe::rel_err_l2(y.data(), ref.data(), n);
  const bool ok = err <= chai::cuda_probe::kRmsTol;
  return report(msg, cap, ok ? CHAI_PROBE_OK : CHAI_PROBE_ERROR,
                "%s (cc %d.%d, %d SMs), cuBLAS %d: rmsnorm %dx%d rel_err_l2=%.3e (bound %.0e) %s",
                prop.name, prop.major, prop.minor, prop.multiProcessorCount, cublas_ver, rows, cols,
                err, chai::cuda_probe::kRmsTol, ok ? "PASS" : "FAIL");
}
