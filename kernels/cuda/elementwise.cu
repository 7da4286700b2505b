// Row-wise and elementwise kernels of the CUDA backend (see cuda_kernels.h).
//
// Products and sums that the CPU reference (kernels/cpu/ops.cc, built with
// -ffp-contract=off) evaluates as separate roundings use the __f*_rn
// intrinsics here, which nvcc never fuses into FMAs: RoPE, SwiGLU, Add and
// GatherRows then give the CPU's bits whenever the transcendental functions
// agree. RmsNorm's sum of squares runs in a different order than the CPU's.
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace chai::kernels::cuda {
namespace {

constexpr int kThreads = 256;

// Grid for a grid-stride loop over n elements: enough blocks to fill any
// current GPU, never more than the elements need.
unsigned GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

__global__ void F32ToF16Kernel(const float* __restrict__ src, __half* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = __float2half_rn(src[i]);
  }
}

template <typename T>
__device__ __forceinline__ float ToFloat(T v);
template <>
__device__ __forceinline__ float ToFloat<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float ToFloat<float>(float v) {
  return v;
}

// One block row per token.
template <typename T>
__global__ void EmbedKernel(const T* __restrict__ table, int64_t rows, int64_t cols,
                            const int32_t* __restrict__ ids, float* __restrict__ out) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  float* o = out + i * cols;
  if (id < 0 || id >= rows) {
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = 0.0f;
    return;
  }
  const T* r = table + id * cols;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) o[c] = ToFloat(r[c]);
}

// One block per row: sum of squares by a strided loop + tree reduction.
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const float* x, const float* __restrict__ w, int32_t dim, float eps, float* out) {
  const float* xr = x + int64_t{blockIdx.x} * dim;
  float* orow = out + int64_t{blockIdx.x} * dim;
  float ss = 0.0f;
  for (int32_t c = threadIdx.x; c < dim; c += blockDim.x)
    ss = __fadd_rn(ss, __fmul_rn(xr[c], xr[c]));
  for (int off = 16; off > 0; off >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, off);
  __shared__ float warp_sums[kThreads / 32];
  __shared__ float scale;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = ss;
  __syncthreads();
  if (warp == 0) {
    float v = lane < static_cast<int>(blockDim.x >> 5) ? warp_sums[lane] : 0.0f;
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    // As the CPU: mean = sum / dim; scale = 1 / sqrt(mean + eps), each rounded.
    if (lane == 0) scale = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(__fdiv_rn(v, dim), eps)));
  }
  __syncthreads();
  const float s = scale;
  // All reads of the row happened before the barrier above, so out may alias x.
  for (int32_t c = threadIdx.x; c < dim; c += blockDim.x)
    orow[c] = __fmul_rn(__fmul_rn(xr[c], s), w[c]);
}

// One thread per (token, frequency): the angle's cos/sin once, then every head.
__global__ void RopeKernel(float* x, const int32_t* __restrict__ pos, int32_t n, int32_t heads,
                           int32_t head_dim, bool rotate_half, const float* __restrict__ inv_freq) {
  const int32_t half = head_dim / 2;
  const int64_t total = int64_t{n} * half;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int32_t t = static_cast<int32_t>(e / half);
    const int32_t i = static_cast<int32_t>(e % half);
    // As the CPU: the angle rounded to float, its cos/sin in double, rounded once.
    const float theta = __fmul_rn(static_cast<float>(pos[t]), inv_freq[i]);
    const float c = static_cast<float>(cos(static_cast<double>(theta)));
    const float s = static_cast<float>(sin(static_cast<double>(theta)));
    const int32_t a = rotate_half ? i : 2 * i;
    const int32_t b = rotate_half ? i + half : 2 * i + 1;
    for (int32_t h = 0; h < heads; ++h) {
      float* v = x + (int64_t{t} * heads + h) * head_dim;
      const float x0 = v[a], x1 = v[b];
      v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      v[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    }
  }
}

__global__ void SwiGluKernel(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float g = gate[i];
    out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    x[i] = __fadd_rn(x[i], y[i]);
  }
}

__global__ void GatherRowsKernel(const float* __restrict__ src, const int32_t* __restrict__ rows,
                                 int32_t dim, float* __restrict__ dst) {
  const float* s = src + int64_t{rows[blockIdx.x]} * dim;
  float* d = dst + int64_t{blockIdx.x} * dim;
  for (int32_t c = threadIdx.x; c < dim; c += blockDim.x) d[c] = s[c];
}

}  // namespace

cudaError_t LaunchF32ToF16(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  F32ToF16Kernel<<<GridFor(n), kThreads, 0, stream>>>(src, reinterpret_cast<__half*>(dst), n);
  return cudaGetLastError();
}

cudaError_t LaunchEmbed(const void* table, bool table_is_f32, int64_t rows, int64_t cols,
                        const int32_t* ids, int32_t n, float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (table_is_f32) {
    EmbedKernel<float>
        <<<n, kThreads, 0, stream>>>(static_cast<const float*>(table), rows, cols, ids, out);
  } else {
    EmbedKernel<__half>
        <<<n, kThreads, 0, stream>>>(static_cast<const __half*>(table), rows, cols, ids, out);
  }
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
                          float* out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  RmsNormKernel<<<n, kThreads, 0, stream>>>(x, w, dim, eps, out);
  return cudaGetLastError();
}

cudaError_t LaunchRope(float* x, const int32_t* pos, int32_t n, int32_t heads, int32_t head_dim,
                       bool rotate_half, const float* inv_freq, cudaStream_t stream) {
  if (n <= 0 || heads <= 0 || head_dim < 2) return cudaSuccess;
  RopeKernel<<<GridFor(int64_t{n} * (head_dim / 2)), kThreads, 0, stream>>>(
      x, pos, n, heads, head_dim, rotate_half, inv_freq);
  return cudaGetLastError();
}

cudaError_t LaunchSwiGlu(const float* gate, const float* up, int64_t n, float* out,
                         cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  SwiGluKernel<<<GridFor(n), kThreads, 0, stream>>>(gate, up, n, out);
  return cudaGetLastError();
}

cudaError_t LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  AddKernel<<<GridFor(n), kThreads, 0, stream>>>(x, y, n);
  return cudaGetLastError();
}

cudaError_t LaunchGatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                             float* dst, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  GatherRowsKernel<<<n, kThreads, 0, stream>>>(src, rows, dim, dst);
  return cudaGetLastError();
}

}  // namespace chai::kernels::cuda
