// RMSNorm kernel shared by the standalone probe (cuda_probe.cu) and the
// run-time-loaded probe module (probe_module.cu). Build-path proof only: it is
// not the CUDA backend's RMSNorm.
//
//   y[r, c] = x[r, c] / sqrt(mean_c(x[r, :]^2) + eps) * w[c]
//
// One block per row, fp32 throughout; the host reference is in double.
#pragma once

#include <cmath>
#include <cstddef>

namespace chai::cuda_probe {

constexpr int kRmsThreads = 256;  // multiple of 32, <= 1024

__global__ void __launch_bounds__(kRmsThreads)
    rmsnorm_f32_kernel(const float* __restrict__ x, const float* __restrict__ w,
                       float* __restrict__ y, int cols, float eps) {
  const int row = blockIdx.x;
  const float* xr = x + static_cast<size_t>(row) * cols;
  float* yr = y + static_cast<size_t>(row) * cols;

  float ss = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += xr[c] * xr[c];
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);

  __shared__ float warp_sums[kRmsThreads / 32];
  __shared__ float inv_rms;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    const int nwarps = blockDim.x >> 5;
    float v = lane < nwarps ? warp_sums[lane] : 0.f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) inv_rms = rsqrtf(v / static_cast<float>(cols) + eps);
  }
  __syncthreads();
  const float s = inv_rms;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * s * w[c];
}

// Host reference in double.
inline void rmsnorm_ref(const float* x, const float* w, double* y, int rows, int cols, double eps) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * cols;
    double ss = 0;
    for (int c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const double s = 1.0 / std::sqrt(ss / cols + eps);
    for (int c = 0; c < cols; ++c) y[static_cast<size_t>(r) * cols + c] = xr[c] * s * w[c];
  }
}

// Norm-wise relative error ||out - ref|| / ||ref||; returns +inf if any output
// is NaN/inf (the output buffer is poisoned with NaN before the launch, so an
// unwritten element fails too).
inline double rel_err_l2(const float* out, const double* ref, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) return INFINITY;
    const double d = out[i] - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// fp32 RMSNorm over <= a few thousand columns: far under 1e-5 in practice
// (a handful of roundings per element); 1e-5 leaves margin for rsqrtf (<= 2 ulp).
constexpr double kRmsTol = 1e-5;

}  // namespace chai::cuda_probe
