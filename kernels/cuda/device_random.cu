// Counter-based random fills for benchmarks and tests that need large random
// tensors made on the device (a 7B model's weights are 13 GB: generating them
// on the host and copying would dominate the run).
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace chai::kernels::cuda {
namespace {

// splitmix64 of (seed, index): independent, well mixed values per element.
__device__ __forceinline__ float Uniform(uint64_t seed, int64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  // 24 random bits -> [-1, 1).
  return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

__global__ void FillF16Kernel(__half* dst, int64_t n, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = __float2half_rn(scale * Uniform(seed, i));
  }
}

__global__ void FillF32Kernel(float* dst, int64_t n, float offset, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    dst[i] = offset + scale * Uniform(seed, i);
  }
}

unsigned Blocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 8192 ? 8192 : b));
}

}  // namespace

cudaError_t LaunchFillRandomF16(uint16_t* dst, int64_t n, float scale, uint64_t seed,
                                cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  FillF16Kernel<<<Blocks(n), 256, 0, stream>>>(reinterpret_cast<__half*>(dst), n, scale, seed);
  return cudaGetLastError();
}

cudaError_t LaunchFillRandomF32(float* dst, int64_t n, float offset, float scale, uint64_t seed,
                                cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  FillF32Kernel<<<Blocks(n), 256, 0, stream>>>(dst, n, offset, scale, seed);
  return cudaGetLastError();
}

}  // namespace chai::kernels::cuda
