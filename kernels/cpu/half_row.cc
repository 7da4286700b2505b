// Fp32ToFp16Row (half_row.h): the F16C loop and the portable one. Kept out
// of dequantize.cc, which the CUDA module compiles on its own (load-time
// dequantization) without the CPU kernels' dispatch.
#include "kernels/cpu/half_row.h"

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu {

namespace internal {

CHAI_AVX2 int64_t Fp32ToFp16RowF16c(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  return i;
}

}  // namespace internal

void Fp32ToFp16Row(const float* src, int64_t n, uint16_t* dst, bool allow_f16c) {
  int64_t i = 0;
  if (allow_f16c && internal::CpuHasAvx2Fma()) i = internal::Fp32ToFp16RowF16c(src, n, dst);
  for (; i < n; ++i) dst[i] = Fp32ToFp16(src[i]);
}

}  // namespace chai::kernels::cpu
