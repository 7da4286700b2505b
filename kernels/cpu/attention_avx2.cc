// AVX2 Score and Mix kernels of paged attention (attention_kernels.h states
// the per-element operation order they share with the portable kernels).
//
// Score takes four positions of a K page at a time for up to three heads:
// each K row is widened once for all of them, twelve fma chains overlap,
// and four dot products are reduced together (Hsum4). Mix keeps 32 output
// elements of up to three heads in registers while it walks the positions,
// widening each V piece once for all of them; the portable loop adds into
// memory, so every position waits on a store-to-load round trip through the
// output row. It visits the positions in spans of ~64 so that a span's V
// rows stay in L1 for every piece and head. Widening and reductions were
// most of the work: one fp16 row serves every head of a GQA group.
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

// out[d0 .. d0 + 8 NC) of heads a.heads[j0 .. j0 + NH) over positions
// [start, end): per position each 8-element piece of the V row is widened
// once and multiply-added into all NH heads' accumulators (NC * NH of them,
// at most 12, plus the piece and NH weights: 16 registers).
template <int NC, int NH, typename T>
CHAI_AVX2_INLINE void MixHeads(const MixArgs& a, int32_t d0, int32_t j0, int32_t start,
                               int32_t end) {
  const int64_t row_stride = int64_t{a.n_kv_heads} * a.head_dim;
  const int32_t bs = a.block_size;
  const T* v = static_cast<const T*>(a.v);
  const float* w[NH];
  float* o[NH];
  __m256 acc[NH][NC];
#pragma GCC unroll 3
  for (int h = 0; h < NH; ++h) {
    const int32_t head = a.heads[j0 + h];
    w[h] = a.probs + int64_t{a.score_head[head]} * a.len;
    o[h] = a.out + int64_t{head} * a.head_dim + d0;
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) acc[h][c] = _mm256_loadu_ps(o[h] + 8 * c);
  }
  for (int32_t page = start; page < end; page += bs) {
    const int32_t n = std::min(bs, end - page);
    const T* vp =
        v + (int64_t{a.table[page / bs]} * bs * a.n_kv_heads + a.kv_head) * a.head_dim + d0;
    for (int32_t i = 0; i < n; ++i, vp += row_stride) {
      __m256 wv[NH];
#pragma GCC unroll 3
      for (int h = 0; h < NH; ++h) wv[h] = _mm256_broadcast_ss(w[h] + page + i);
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) {
        const __m256 piece = Load8(vp + 8 * c);
#pragma GCC unroll 3
        for (int h = 0; h < NH; ++h) acc[h][c] = _mm256_fmadd_ps(wv[h], piece, acc[h][c]);
      }
    }
  }
#pragma GCC unroll 3
  for (int h = 0; h < NH; ++h) {
#pragma GCC unroll 4
    for (int c = 0; c < NC; ++c) _mm256_storeu_ps(o[h] + 8 * c, acc[h][c]);
  }
}

template <int NC, typename T>
CHAI_AVX2_INLINE void MixPiece(const MixArgs& a, int32_t d0, int32_t start, int32_t end) {
  int32_t j = 0;
  for (; j + 3 <= a.n_heads; j += 3) MixHeads<NC, 3, T>(a, d0, j, start, end);
  if (a.n_heads - j == 2) MixHeads<NC, 2, T>(a, d0, j, start, end);
  if (a.n_heads - j == 1) MixHeads<NC, 1, T>(a, d0, j, start, end);
}

}  // namespace

bool Avx2AttentionSupports(int32_t head_dim) { return head_dim > 0 && head_dim % 8 == 0; }

namespace {

// The sums of four accumulators, each by Hsum's tree
// (((a0+a4)+(a2+a6))+((a1+a5)+(a3+a7)), the portable Reduce8), as lanes
// 0-3: the same bits as four Hsums in a third of the instructions.
CHAI_AVX2_INLINE __m128 Hsum4(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  // [x(v0) | x(v1)] with x = (a0+a4, a1+a5, a2+a6, a3+a7); same for v2, v3.
  const __m256 t01 =
      _mm256_add_ps(_mm256_permute2f128_ps(v0, v1, 0x20), _mm256_permute2f128_ps(v0, v1, 0x31));
  const __m256 t23 =
      _mm256_add_ps(_mm256_permute2f128_ps(v2, v3, 0x20), _mm256_permute2f128_ps(v2, v3, 0x31));
  // [y0 y1 (v0), y0 y1 (v2) | y0 y1 (v1), y0 y1 (v3)], y0 = x0+x2, y1 = x1+x3.
  const __m256 z = _mm256_add_ps(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0)),
                                 _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2)));
  // [s0 s2 s0 s2 | s1 s3 s1 s3], s = y0 + y1.
  const __m256 f = _mm256_add_ps(_mm256_shuffle_ps(z, z, _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm256_shuffle_ps(z, z, _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm_unpacklo_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
}

// Scores of heads a.heads[j0 .. j0 + NH) over the n (<= block_size)
// positions of one K page starting at position `start`. Four positions at a
// time, each K row widened once for all NH heads; per head and position the
// same fma chain, tree and rounding as the portable Dot, then * scale.
template <int NH, typename T>
CHAI_AVX2_INLINE void ScorePage(const ScoreArgs& a, const T* kp, int32_t n, int32_t start,
                                int32_t j0, float* max_s) {
  const int32_t hd = a.head_dim;
  const float* qh[NH];
  float* row[NH];
#pragma GCC unroll 3
  for (int h = 0; h < NH; ++h) {
    qh[h] = a.q + int64_t{a.heads[j0 + h]} * hd;
    row[h] = a.probs + int64_t{a.heads[j0 + h]} * a.len + start;
  }
  const __m128 scale = _mm_set1_ps(a.scale);
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const T* k0 = kp + int64_t{i} * hd;
    __m256 acc[NH][4];
#pragma GCC unroll 3
    for (int h = 0; h < NH; ++h) {
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) acc[h][r] = _mm256_setzero_ps();
    }
    for (int32_t d = 0; d < hd; d += 8) {
      __m256 kv[4];
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) kv[r] = Load8(k0 + r * hd + d);
#pragma GCC unroll 3
      for (int h = 0; h < NH; ++h) {
        const __m256 qv = _mm256_loadu_ps(qh[h] + d);
#pragma GCC unroll 4
        for (int r = 0; r < 4; ++r) acc[h][r] = _mm256_fmadd_ps(qv, kv[r], acc[h][r]);
      }
    }
#pragma GCC unroll 3
    for (int h = 0; h < NH; ++h) {
      // The portable Dot's tail: no elements left, so 0.0f is added.
      const __m128 s = _mm_mul_ps(
          _mm_add_ps(Hsum4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]), _mm_setzero_ps()), scale);
      _mm_storeu_ps(row[h] + i, s);
      float m = max_s[j0 + h];
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) m = std::max(m, row[h][i + r]);
      max_s[j0 + h] = m;
    }
  }
  for (; i < n; ++i) {
    const T* k0 = kp + int64_t{i} * hd;
#pragma GCC unroll 3
    for (int h = 0; h < NH; ++h) {
      __m256 acc = _mm256_setzero_ps();
      for (int32_t d = 0; d < hd; d += 8) {
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(qh[h] + d), Load8(k0 + d), acc);
      }
      row[h][i] = Finish(acc, a.scale);
      max_s[j0 + h] = std::max(max_s[j0 + h], row[h][i]);
    }
  }
}

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
    int32_t j = 0;
    for (; j + 3 <= a.n_heads; j += 3) ScorePage<3>(a, kp, n, start, j, max_s);
    if (a.n_heads - j == 2) ScorePage<2>(a, kp, n, start, j, max_s);
    if (a.n_heads - j == 1) ScorePage<1>(a, kp, n, start, j, max_s);
  }
  ExpNormalizeAvx2(a, max_s);
}

template <typename T>
CHAI_AVX2 void MixAvx2Of(const MixArgs& a) {
  for (int32_t j = 0; j < a.n_heads; ++j) {
    float* o = a.out + int64_t{a.heads[j]} * a.head_dim;
    std::fill(o, o + a.head_dim, 0.0f);
  }
  // Positions in spans of ~64 whole blocks: a span's V rows stay in L1 for
  // every 32-element piece and every head, and the next span's arrive
  // meanwhile.
  const int32_t bs = a.block_size;
  const int32_t span = bs * std::max(1, 64 / bs);
  const T* v = static_cast<const T*>(a.v);
  const int64_t row_bytes = int64_t{a.head_dim} * sizeof(T);
  auto v_row = [&](int32_t p) {
    return v + ((int64_t{a.table[p / bs]} * bs + p % bs) * a.n_kv_heads + a.kv_head) * a.head_dim;
  };
  for (int32_t p = 0; p < std::min(a.len, span); ++p) PrefetchBytes(v_row(p), row_bytes);
  for (int32_t start = 0; start < a.len; start += span) {
    const int32_t end = std::min(a.len, start + span);
    for (int32_t p = end; p < std::min(a.len, end + span); ++p) PrefetchBytes(v_row(p), row_bytes);
    for (int32_t d0 = 0; d0 < a.head_dim; d0 += 32) {
      switch (std::min(32, a.head_dim - d0) / 8) {
        case 4:
          MixPiece<4, T>(a, d0, start, end);
          break;
        case 3:
          MixPiece<3, T>(a, d0, start, end);
          break;
        case 2:
          MixPiece<2, T>(a, d0, start, end);
          break;
        default:
          MixPiece<1, T>(a, d0, start, end);
          break;
      }
    }
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
