// Matrix products of a few rows (decode steps): y[m, n] = x[m, k] W^T with W
// fp16 [n, k] row-major and x, y float32, for m <= kGemvMaxRows.
//
// Why: at batch 1 the step reads every weight once, so MatMul should stream
// W at the memory's speed. cuBLAS's fp16 GemmEx at m = 1 moved weights at
// about 59% of the copy bandwidth on an H100, and needed a separate
// fp32-to-fp16 conversion launch first (docs/PERFORMANCE.md). Here a block of
// four warps streams two rows of W with 16-byte loads, the warps splitting
// the row's columns, while reading x in fp32 from L1 (x is at most
// kGemvMaxRows x k floats), so nothing is converted and nothing else is
// launched. (Two rows per warp and 512 blocks for a 4096-row matrix was the
// first version: Nsight Compute showed 0.39 waves, 23% achieved occupancy
// and 61% of DRAM bandwidth; splitting k gives n / 2 blocks of 4 warps.)
//
// Determinism: a row's value is computed the same way for every m (threads
// take columns in the same stride, then the same butterfly and the same
// warp order), so a row's bits do not depend on which other rows share the
// call.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/warp_reduce.cuh"

namespace chai::kernels::cuda {
namespace {

constexpr int kGemvThreads = 128;  // 4 warps share each block's rows, splitting k
constexpr int kGemvWarps = kGemvThreads / 32;
constexpr int kRowsPerBlock = 2;

// Streaming read: the weights are read once per step and do not fit in L1.
__device__ __forceinline__ uint4 LoadStream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ float Dot8(const uint4& w, const float4& a, const float4& b) {
  const __half2* h = reinterpret_cast<const __half2*>(&w);
  const float2 w0 = __half22float2(h[0]), w1 = __half22float2(h[1]);
  const float2 w2 = __half22float2(h[2]), w3 = __half22float2(h[3]);
  float s = w0.x * a.x;
  s = fmaf(w0.y, a.y, s);
  s = fmaf(w1.x, a.z, s);
  s = fmaf(w1.y, a.w, s);
  s = fmaf(w2.x, b.x, s);
  s = fmaf(w2.y, b.y, s);
  s = fmaf(w3.x, b.z, s);
  s = fmaf(w3.y, b.w, s);
  return s;
}

template <int M>
__global__ void __launch_bounds__(kGemvThreads)
    GemvKernel(const __half* __restrict__ w, const float* __restrict__ x, int32_t n, int32_t k,
               float* __restrict__ y) {
  __shared__ float partial[kGemvWarps][M][kRowsPerBlock];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row = blockIdx.x * kRowsPerBlock;
  const int rows = min(kRowsPerBlock, n - row);
  const int k8 = k / 8;
  const uint4* w0 = reinterpret_cast<const uint4*>(w + int64_t{row} * k);
  const uint4* w1 = reinterpret_cast<const uint4*>(w + int64_t{row + (rows > 1 ? 1 : 0)} * k);
  float acc[M][kRowsPerBlock];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m][0] = acc[m][1] = 0.0f;
    // Thread t takes 8-column groups t, t + 128, ... in ascending order.
#pragma unroll 4
  for (int c = threadIdx.x; c < k8; c += kGemvThreads) {
    const uint4 a = LoadStream(w0 + c);
    const uint4 b = LoadStream(w1 + c);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4* xm = reinterpret_cast<const float4*>(x + int64_t{m} * k) + 2 * c;
      const float4 x0 = __ldg(xm), x1 = __ldg(xm + 1);
      acc[m][0] += Dot8(a, x0, x1);
      acc[m][1] += Dot8(b, x0, x1);
    }
  }
  // Butterfly within each warp, then the warps' partials in warp order.
#pragma unroll
  for (int m = 0; m < M; ++m) {
#pragma unroll
    for (int r = 0; r < kRowsPerBlock; ++r) {
      const float v = WarpSum(acc[m][r]);
      if (lane == 0) partial[warp][m][r] = v;
    }
  }
  __syncthreads();
  if (threadIdx.x < M * kRowsPerBlock) {
    const int m = threadIdx.x / kRowsPerBlock, r = threadIdx.x % kRowsPerBlock;
    if (r < rows) {
      float v = partial[0][m][r];
#pragma unroll
      for (int wi = 1; wi < kGemvWarps; ++wi) v += partial[wi][m][r];
      y[int64_t{m} * n + row + r] = v;
    }
  }
}

template <int M>
cudaError_t Launch(const uint16_t* w, const float* x, int32_t n, int32_t k, float* y,
                   cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock);
  GemvKernel<M>
      <<<blocks, kGemvThreads, 0, stream>>>(reinterpret_cast<const __half*>(w), x, n, k, y);
  return cudaGetLastError();
}

}  // namespace

bool GemvApplies(int32_t m, int64_t n, int64_t k, const void* w, const float* x) {
  return m >= 1 && m <= kGemvMaxRows && n > 0 && k > 0 && k % 8 == 0 &&
         reinterpret_cast<uintptr_t>(w) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

cudaError_t LaunchGemv(const uint16_t* w, const float* x, int32_t m, int32_t n, int32_t k, float* y,
                       cudaStream_t stream) {
  switch (m) {
    case 1:
      return Launch<1>(w, x, n, k, y, stream);
    case 2:
      return Launch<2>(w, x, n, k, y, stream);
    case 3:
      return Launch<3>(w, x, n, k, y, stream);
    case 4:
      return Launch<4>(w, x, n, k, y, stream);
    case 5:
      return Launch<5>(w, x, n, k, y, stream);
    case 6:
      return Launch<6>(w, x, n, k, y, stream);
    case 7:
      return Launch<7>(w, x, n, k, y, stream);
    case 8:
      return Launch<8>(w, x, n, k, y, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace chai::kernels::cuda
