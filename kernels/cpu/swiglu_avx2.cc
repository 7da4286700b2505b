#include <immintrin.h>

#include "kernels/cpu/swiglu.h"

namespace chai::kernels::cpu::internal {

__attribute__((target("avx2,fma"))) int64_t SwiGluAvx2(const float* gate, const float* up,
                                                       int64_t n, float* out) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = FastExp8(_mm256_xor_ps(g, sign));  // exp(-g)
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(one, e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  return i;
}

}  // namespace chai::kernels::cpu::internal
