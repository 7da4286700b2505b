// AVX-512 Score and Mix kernels of paged attention: the shared SIMD bodies
// (attention_simd.inc) in 512-bit registers, 16 positions (Score) or 16
// elements (Mix) per vector. Twice the AVX2 build's work per instruction
// and twice the registers, so Score keeps 8-12 fma chains in flight.
// Softmax numerators: ExpNormalizeAvx2 (a small share of the work).
#include <immintrin.h>

#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/matmul_kernels.h"

// GCC 12's _mm512_undefined_ps() false positive (matmul_vnni_int16x16.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace chai::kernels::cpu::internal {
namespace {

#define CHAI_ATTN_FN __attribute__((target("avx2,fma,f16c,avx512f")))
#define CHAI_ATTN_INLINE __attribute__((target("avx2,fma,f16c,avx512f"), always_inline)) inline

struct V {
  using F = __m512;
  static constexpr int kLanes = 16;
  // 32 registers: 3 heads x 3 vectors (9 chains), 2 x 4, 1 x 4.
  static constexpr int kScoreVectors[4] = {0, 4, 4, 3};
  CHAI_ATTN_INLINE static F Load(const float* p) { return _mm512_loadu_ps(p); }
  CHAI_ATTN_INLINE static F Load(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  CHAI_ATTN_INLINE static F Set1(float x) { return _mm512_set1_ps(x); }
  CHAI_ATTN_INLINE static F Zero() { return _mm512_setzero_ps(); }
  CHAI_ATTN_INLINE static F Fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  CHAI_ATTN_INLINE static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  CHAI_ATTN_INLINE static void Store(float* p, F v) { _mm512_storeu_ps(p, v); }
  // vmaxps returns its second operand when either is NaN or both are zeros.
  CHAI_ATTN_INLINE static F Max(F s, F m) { return _mm512_max_ps(s, m); }
  CHAI_ATTN_INLINE static __mmask16 Prefix(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  CHAI_ATTN_INLINE static void StorePrefix(float* p, F v, int n) {
    _mm512_mask_storeu_ps(p, Prefix(n), v);
  }
  CHAI_ATTN_INLINE static F MaxPrefix(F s, F m, int n) {
    return _mm512_mask_max_ps(m, Prefix(n), s, m);
  }
  CHAI_ATTN_INLINE static float HMax(F m) { return _mm512_reduce_max_ps(m); }
};

#include "kernels/cpu/attention_simd.inc"

#undef CHAI_ATTN_FN
#undef CHAI_ATTN_INLINE

}  // namespace

bool CpuHasAvx512F() {
  static const bool has = CpuHasAvx2Fma() && __builtin_cpu_supports("avx512f");
  return has;
}

bool Avx512ScoreSupports(int32_t block_size) { return block_size > 0 && block_size % 16 == 0; }
bool Avx512MixSupports(int32_t head_dim) { return head_dim > 0 && head_dim % 16 == 0; }

void ScoreAvx512(const ScoreArgs& a) {
  if (a.f16) {
    ScoreOf<uint16_t>(a);
  } else {
    ScoreOf<float>(a);
  }
}

void MixAvx512(const MixArgs& a) {
  if (a.f16) {
    MixOf<uint16_t>(a);
  } else {
    MixOf<float>(a);
  }
}

}  // namespace chai::kernels::cpu::internal
