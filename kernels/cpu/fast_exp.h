// exp(x) in float32 as a fixed sequence of IEEE operations, in a scalar and
// an 8-lane AVX2 form that give the same bits for every input (both use
// correctly rounded operations in the same order, FMAs where the AVX2 form
// has them).
//
// Why not std::exp: libm's expf cannot be vectorized bit-identically, and at
// ~6 ns per call it made SwiGLU (1536 per token per layer) and the softmax
// numerators a tenth of a batch-1 decode step (docs/PERFORMANCE.md, session
// 7). This one is Cephes' expf: x clamped to [-87, 88], n = round(x log2 e),
// r = x - n ln 2 (ln 2 split in two, FMAs), exp(r) by a degree-6
// polynomial, times 2^n built in the exponent bits. Error: within 2 ulp of
// exp over the clamp range (tested against std::exp); below -87 it returns
// exp(-87) ~ 1.6e-38 instead of a smaller number (softmax and SiLU only add
// it to larger terms). NaN inputs give a finite value.
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_FAST_EXP_H_
#define CHAI_KERNELS_CPU_FAST_EXP_H_

#include <immintrin.h>

#include <bit>
#include <cmath>
#include <cstdint>

namespace chai::kernels::cpu {

namespace fast_exp {
inline constexpr float kLo = -87.0f;  // 2^n stays a normal float
inline constexpr float kHi = 88.0f;
inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693359375f;  // exact in 9 bits: n * kLn2Hi is exact
inline constexpr float kLn2Lo = -2.12194440e-4f;
inline constexpr float kP0 = 1.9875691500e-4f;
inline constexpr float kP1 = 1.3981999507e-3f;
inline constexpr float kP2 = 8.3334519073e-3f;
inline constexpr float kP3 = 4.1665795894e-2f;
inline constexpr float kP4 = 1.6666665459e-1f;
inline constexpr float kP5 = 5.0000001201e-1f;
}  // namespace fast_exp

// Scalar form. REQUIRES: the default rounding mode (round to nearest even).
inline float FastExp(float x) {
  using namespace fast_exp;
  // The AVX2 max/min semantics: the second operand unless the first wins.
  x = x > kLo ? x : kLo;
  x = x < kHi ? x : kHi;
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(-n, kLn2Hi, x);
  r = std::fma(-n, kLn2Lo, r);
  float y = std::fma(kP0, r, kP1);
  y = std::fma(y, r, kP2);
  y = std::fma(y, r, kP3);
  y = std::fma(y, r, kP4);
  y = std::fma(y, r, kP5);
  y = std::fma(y, r * r, r);
  y = y + 1.0f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return y * scale;
}

// The same, 8 lanes. REQUIRES: the CPU supports AVX2 and FMA.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 FastExp8(__m256 x) {
  using namespace fast_exp;
  x = _mm256_max_ps(x, _mm256_set1_ps(kLo));
  x = _mm256_min_ps(x, _mm256_set1_ps(kHi));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 y = _mm256_fmadd_ps(_mm256_set1_ps(kP0), r, _mm256_set1_ps(kP1));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kP2));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kP3));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kP4));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(kP5));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
}

// The same, 16 lanes. REQUIRES: the CPU supports AVX-512F.
__attribute__((target("avx512f"), always_inline)) inline __m512 FastExp16(__m512 x) {
  using namespace fast_exp;
  x = _mm512_max_ps(x, _mm512_set1_ps(kLo));
  x = _mm512_min_ps(x, _mm512_set1_ps(kHi));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 y = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kP2));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kP3));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kP4));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(kP5));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
  const __m512i bits =
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
}

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_FAST_EXP_H_
