// AVX2 Score and Mix kernels of paged attention (attention_kernels.h states
// the per-element operation order they share with the portable kernels).
//
// Score takes four positions of a K page at a time, each with its own
// 8-lane partial, so four dot products' add chains overlap instead of one
// (the portable loop waits ~3 cycles per 8 elements on its single chain).
// Mix keeps up to 64 output elements of a head in eight registers while it
// walks the positions; the portable loop adds into memory, so every position
// waits on a store-to-load round trip through the output row. It visits the
// positions in spans of ~64 (the head's outputs reloaded per span) so that a
// span's V rows stay in L1 for every head of the group.
#include <algorithm>
#include <limits>

#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/matmul_avx2_common.h"

namespace chai::kernels::cpu::internal {
namespace {

// The cache lines of [p, p + bytes) into L1. A decode step's K and V come
// from DRAM (30 layers of a batch's caches are far larger than the LLC) in
// scattered 4-12 KB pages, each of which the hardware prefetcher picks up
// only after a few misses. kernels_bench BM_PagedAttention: the same calls
// on one layer's (cache-resident) K/V run 2-3x faster; these prefetches win
// back 7-13% at batches 8 and 32 (docs/PERFORMANCE.md, session 8).
CHAI_AVX2_INLINE void PrefetchBytes(const void* p, int64_t bytes) {
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// 8 cache elements as floats (fp16 widens exactly).
CHAI_AVX2_INLINE __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
CHAI_AVX2_INLINE __m256 Load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The portable Dot's tail: no elements left, so tail = 0.0f is added.
CHAI_AVX2_INLINE float Finish(__m256 acc, float scale) { return (Hsum(acc) + 0.0f) * scale; }

// acc[c] += w * v[8c..8c+7] for c < NC: one position of a head's output span.
template <int NC, typename T>
CHAI_AVX2_INLINE void Axpy(__m256 w, const T* v, __m256* acc) {
#pragma GCC unroll 8
  for (int c = 0; c < NC; ++c) acc[c] = _mm256_add_ps(acc[c], _mm256_mul_ps(w, Load8(v + 8 * c)));
}

// out[d0 .. d0 + 8 NC) of every head of the call, over positions [0, len).
template <int NC, typename T>
CHAI_AVX2 void MixSpan(const MixArgs& a, int32_t d0) {
  const int64_t row_stride = int64_t{a.n_kv_heads} * a.head_dim;
  const int32_t bs = a.block_size;
  const int32_t span = bs * std::max(1, 64 / bs);
  const int64_t row_bytes = int64_t{8 * NC} * sizeof(T);
  const T* v = static_cast<const T*>(a.v);
  auto v_row = [&](int32_t p) {
    return v + ((int64_t{a.table[p / bs]} * bs + p % bs) * a.n_kv_heads + a.kv_head) * a.head_dim +
           d0;
  };
  for (int32_t p = 0; p < std::min(a.len, span); ++p) PrefetchBytes(v_row(p), row_bytes);
  for (int32_t start = 0; start < a.len; start += span) {
    const int32_t end = std::min(a.len, start + span);
    // The next span's rows arrive while this span's heads are mixed.
    for (int32_t p = end; p < std::min(a.len, end + span); ++p) PrefetchBytes(v_row(p), row_bytes);
    for (int32_t j = 0; j < a.n_heads; ++j) {
      const int32_t h = a.heads[j];
      const float* w = a.probs + int64_t{a.score_head[h]} * a.len;
      float* o = a.out + int64_t{h} * a.head_dim + d0;
      __m256 acc[NC];
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) acc[c] = _mm256_loadu_ps(o + 8 * c);
      for (int32_t page = start; page < end; page += bs) {
        const int32_t n = std::min(bs, end - page);
        const T* vp =
            v + (int64_t{a.table[page / bs]} * bs * a.n_kv_heads + a.kv_head) * a.head_dim + d0;
        for (int32_t i = 0; i < n; ++i, vp += row_stride) {
          Axpy<NC>(_mm256_broadcast_ss(w + page + i), vp, acc);
        }
      }
#pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) _mm256_storeu_ps(o + 8 * c, acc[c]);
    }
  }
}

}  // namespace

bool Avx2AttentionSupports(int32_t head_dim) { return head_dim > 0 && head_dim % 8 == 0; }

namespace {

template <typename T>
CHAI_AVX2 void ScoreAvx2Of(const ScoreArgs& a) {
  const int32_t hd = a.head_dim;
  float max_s[kMaxGroup];
  for (int32_t j = 0; j < a.n_heads; ++j) max_s[j] = -std::numeric_limits<float>::infinity();
  const int64_t page_bytes = int64_t{a.block_size} * hd * sizeof(T);
  const int32_t n_pages = (a.len + a.block_size - 1) / a.block_size;
  const T* k = static_cast<const T*>(a.k);
  auto page_at = [&](int32_t i) {
    return k + int64_t{a.pages[i * a.page_stride]} * a.block_size * hd;
  };
  // Two pages ahead: one page's work (a few hundred ns) is only a few DRAM
  // latencies.
  for (int32_t i = 0; i < std::min(n_pages, 2); ++i) PrefetchBytes(page_at(i), page_bytes);
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const int32_t page = start / a.block_size;
    if (page + 2 < n_pages) PrefetchBytes(page_at(page + 2), page_bytes);
    const T* kp = page_at(page);
    for (int32_t j = 0; j < a.n_heads; ++j) {
      const int32_t h = a.heads[j];
      const float* qh = a.q + int64_t{h} * hd;
      float* row = a.probs + int64_t{h} * a.len + start;
      float m = max_s[j];
      int32_t i = 0;
      for (; i + 4 <= n; i += 4) {
        const T* k0 = kp + int64_t{i} * hd;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
        for (int32_t d = 0; d < hd; d += 8) {
          const __m256 qv = _mm256_loadu_ps(qh + d);
          acc0 = _mm256_add_ps(acc0, _mm256_mul_ps(qv, Load8(k0 + d)));
          acc1 = _mm256_add_ps(acc1, _mm256_mul_ps(qv, Load8(k0 + hd + d)));
          acc2 = _mm256_add_ps(acc2, _mm256_mul_ps(qv, Load8(k0 + 2 * hd + d)));
          acc3 = _mm256_add_ps(acc3, _mm256_mul_ps(qv, Load8(k0 + 3 * hd + d)));
        }
        const float s[4] = {Finish(acc0, a.scale), Finish(acc1, a.scale), Finish(acc2, a.scale),
                            Finish(acc3, a.scale)};
        for (int r = 0; r < 4; ++r) {
          row[i + r] = s[r];
          m = std::max(m, s[r]);
        }
      }
      for (; i < n; ++i) {
        const T* k0 = kp + int64_t{i} * hd;
        __m256 acc = _mm256_setzero_ps();
        for (int32_t d = 0; d < hd; d += 8) {
          acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(qh + d), Load8(k0 + d)));
        }
        row[i] = Finish(acc, a.scale);
        m = std::max(m, row[i]);
      }
      max_s[j] = m;
    }
  }
  ExpNormalizeAvx2(a, max_s);
}

template <typename T>
CHAI_AVX2 void MixAvx2Of(const MixArgs& a) {
  for (int32_t j = 0; j < a.n_heads; ++j) {
    float* o = a.out + int64_t{a.heads[j]} * a.head_dim;
    std::fill(o, o + a.head_dim, 0.0f);
  }
  // MixSpan<n> for a span of 8n output elements.
  static constexpr void (*kSpan[])(const MixArgs&, int32_t) = {
      MixSpan<1, T>, MixSpan<2, T>, MixSpan<3, T>, MixSpan<4, T>,
      MixSpan<5, T>, MixSpan<6, T>, MixSpan<7, T>, MixSpan<8, T>};
  for (int32_t d0 = 0; d0 < a.head_dim; d0 += 64) {
    kSpan[std::min(64, a.head_dim - d0) / 8 - 1](a, d0);
  }
  ScaleByInvSum(a);
}

}  // namespace

void ScoreAvx2(const ScoreArgs& a) {
  if (a.f16) {
    ScoreAvx2Of<uint16_t>(a);
  } else {
    ScoreAvx2Of<float>(a);
  }
}

void MixAvx2(const MixArgs& a) {
  if (a.f16) {
    MixAvx2Of<uint16_t>(a);
  } else {
    MixAvx2Of<float>(a);
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
