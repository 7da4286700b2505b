// Warp-wide max and sum by butterfly shuffles (every lane gets the result),
// shared by the attention kernels. Header-only device code.
#ifndef CHAI_KERNELS_CUDA_WARP_REDUCE_CUH_
#define CHAI_KERNELS_CUDA_WARP_REDUCE_CUH_

namespace chai::kernels::cuda {

__device__ __forceinline__ float WarpMax(float v) {
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float WarpSum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

}  // namespace chai::kernels::cuda

#endif  // CHAI_KERNELS_CUDA_WARP_REDUCE_CUH_
