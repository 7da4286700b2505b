// Internal to the CPU backend: the SwiGLU element operation in its portable,
// AVX2 and AVX-512 forms (ops.h's SwiGluValues picks one), which give the
// same bits: the same operations per element, only more lanes at a time.
// The exp and the division make it compute-bound: batch 32 spends ~0.6 ms
// per step in it with AVX2 on the Xeon VM of docs/PERFORMANCE.md.
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_SWIGLU_H_
#define CHAI_KERNELS_CPU_SWIGLU_H_

#include <cstdint>

#include "kernels/cpu/fast_exp.h"

namespace chai::kernels::cpu::internal {

// silu(g) * u = (g / (1 + exp(-g))) * u, in this order.
inline float SwiGluOne(float g, float u) { return (g / (1.0f + FastExp(-g))) * u; }

// SwiGluOne for elements [0, 8 * floor(n / 8)); returns how many it did.
// out may alias gate or up. REQUIRES: CpuHasAvx2Fma().
int64_t SwiGluAvx2(const float* gate, const float* up, int64_t n, float* out);
// The same for elements [0, 16 * floor(n / 16)).
// REQUIRES: CpuHasAvx512F() (attention_kernels.h).
int64_t SwiGluAvx512(const float* gate, const float* up, int64_t n, float* out);

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_SWIGLU_H_
