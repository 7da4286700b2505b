// Internal to the CPU backend: rows of floats to IEEE fp16 (round to
// nearest even), the KV cache's store (ops.cc StoreKvRows). The F16C form
// (vcvtps2ph) gives the bits Fp32ToFp16 (dequantize.h) gives for every
// input, NaN included (both keep the sign and the top 10 payload bits and
// set the quiet bit); HalfRowTest checks that on every 4099th float bit
// pattern (~1M values: every exponent, sign and NaN class) plus the
// rounding edges.
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_HALF_ROW_H_
#define CHAI_KERNELS_CPU_HALF_ROW_H_

#include <cstdint>

namespace chai::kernels::cpu {

// dst[i] = Fp32ToFp16(src[i]) for i < n. allow_f16c = false forces the
// portable loop (tests).
void Fp32ToFp16Row(const float* src, int64_t n, uint16_t* dst, bool allow_f16c = true);

namespace internal {

// Elements [0, 8 * floor(n / 8)) with F16C; returns how many it did.
// REQUIRES: CpuHasAvx2Fma() (which includes F16C).
int64_t Fp32ToFp16RowF16c(const float* src, int64_t n, uint16_t* dst);

}  // namespace internal
}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_HALF_ROW_H_
