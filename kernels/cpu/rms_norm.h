// Internal to the CPU backend: the AVX2 form of one RMSNorm row (ops.h's
// RmsNormRows picks it), which gives the portable form's bits.
//
// Why a vector form: the portable one's std::fma compiles to a libm call on
// the baseline ISA, ~1.5 ns per element: 0.9 us for a 576-wide row, 61 rows
// per batch-1 decode step of the default model (~3% of the step).
//
// Thread-safety: pure function.
#ifndef CHAI_KERNELS_CPU_RMS_NORM_H_
#define CHAI_KERNELS_CPU_RMS_NORM_H_

#include <cstdint>

namespace chai::kernels::cpu::internal {

// out[j] = (x[j] * s) * w[j] with s = 1 / sqrt(sum_sq / dim + eps), where
// sum_sq is ops.cc's Dot(x, x, dim): 8 lane-wise fused multiply-add sums
// over the first 8 * floor(dim / 8) elements, reduced by the Reduce8 tree,
// plus a fused tail. out may alias x. REQUIRES: CpuHasAvx2Fma().
void RmsNormRowAvx2(const float* x, const float* w, int32_t dim, float eps, float* out);

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_RMS_NORM_H_
