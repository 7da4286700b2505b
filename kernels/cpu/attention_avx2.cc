// AVX2 Score and Mix kernels of paged attention: the shared SIMD bodies
// (attention_simd.inc) in 256-bit registers, 8 positions (Score) or 8
// elements (Mix) per vector, and the vector exp of Score's softmax
// numerators (attention_kernels.h states the operation order they share with
// the portable kernels).
#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/matmul_avx2_common.h"

namespace chai::kernels::cpu::internal {
namespace {

#define CHAI_ATTN_FN CHAI_AVX2
#define CHAI_ATTN_INLINE CHAI_AVX2_INLINE

struct V {
  using F = __m256;
  static constexpr int kLanes = 8;
  // 16 registers: at 3 heads 2 vectors (6 chains, 6 + 2 + 1 live); fewer
  // heads take more vectors so that 4-6 chains hide the FMA latency.
  static constexpr int kScoreVectors[4] = {0, 4, 3, 2};
  CHAI_AVX2_INLINE static F Load(const float* p) { return _mm256_loadu_ps(p); }
  CHAI_AVX2_INLINE static F Load(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  CHAI_AVX2_INLINE static F Set1(float x) { return _mm256_set1_ps(x); }
  CHAI_AVX2_INLINE static F Zero() { return _mm256_setzero_ps(); }
  CHAI_AVX2_INLINE static F Fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  CHAI_AVX2_INLINE static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  CHAI_AVX2_INLINE static void Store(float* p, F v) { _mm256_storeu_ps(p, v); }
  // vmaxps returns its second operand when either is NaN or both are zeros.
  CHAI_AVX2_INLINE static F Max(F s, F m) { return _mm256_max_ps(s, m); }
  CHAI_AVX2_INLINE static __m256i Prefix(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  CHAI_AVX2_INLINE static void StorePrefix(float* p, F v, int n) {
    _mm256_maskstore_ps(p, Prefix(n), v);
  }
  CHAI_AVX2_INLINE static F MaxPrefix(F s, F m, int n) {
    return _mm256_blendv_ps(m, _mm256_max_ps(s, m), _mm256_castsi256_ps(Prefix(n)));
  }
  CHAI_AVX2_INLINE static float HMax(F m) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
  }
};

#include "kernels/cpu/attention_simd.inc"

#undef CHAI_ATTN_FN
#undef CHAI_ATTN_INLINE

}  // namespace

bool Avx2ScoreSupports(int32_t block_size) { return block_size > 0 && block_size % 8 == 0; }
bool Avx2MixSupports(int32_t head_dim) { return head_dim > 0 && head_dim % 8 == 0; }

void ScoreAvx2(const ScoreArgs& a) {
  if (a.f16) {
    ScoreOf<uint16_t>(a);
  } else {
    ScoreOf<float>(a);
  }
}

void MixAvx2(const MixArgs& a) {
  if (a.f16) {
    MixOf<uint16_t>(a);
  } else {
    MixOf<float>(a);
  }
}

CHAI_AVX2 void ExpNormalizeAvx2(const ScoreArgs& a, const float* max_s) {
  for (int32_t j = 0; j < a.n_heads; ++j) {
    const int32_t h = a.heads[j];
    float* pj = a.probs + int64_t{h} * a.len;
    const __m256 m = _mm256_set1_ps(max_s[j]);
    __m256 acc = _mm256_setzero_ps();
    int32_t p = 0;
    for (; p + 8 <= a.len; p += 8) {
      const __m256 e = FastExp8(_mm256_sub_ps(_mm256_loadu_ps(pj + p), m));
      _mm256_storeu_ps(pj + p, e);
      acc = _mm256_add_ps(acc, e);
    }
    float tail = 0.0f;
    for (; p < a.len; ++p) {
      pj[p] = FastExp(pj[p] - max_s[j]);
      tail += pj[p];
    }
    a.max[h] = max_s[j];
    a.sum[h] = Hsum(acc) + tail;
  }
}

}  // namespace chai::kernels::cpu::internal
