// F16C form of Fp32ToFp16Row (half_row.h).
#include "kernels/cpu/half_row.h"
#include "kernels/cpu/matmul_avx2_common.h"

namespace chai::kernels::cpu::internal {

CHAI_AVX2 int64_t Fp32ToFp16RowF16c(const float* src, int64_t n, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  return i;
}

}  // namespace chai::kernels::cpu::internal
