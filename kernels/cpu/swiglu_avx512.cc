#include <immintrin.h>

#include "kernels/cpu/swiglu.h"

// GCC 12's _mm512_undefined_ps() false positive (matmul_vnni_int16x16.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace chai::kernels::cpu::internal {

__attribute__((target("avx512f"))) int64_t SwiGluAvx512(const float* gate, const float* up,
                                                        int64_t n, float* out) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i sign = _mm512_set1_epi32(static_cast<int32_t>(0x80000000u));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    // exp(-g): flip the sign bit (AVX-512F has no float xor).
    const __m512 e = FastExp16(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(g), sign)));
    const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, e));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(silu, _mm512_loadu_ps(up + i)));
  }
  return i;
}

}  // namespace chai::kernels::cpu::internal
