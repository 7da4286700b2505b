// AVX2 kernels of ActivationMode::kInt16 (see matmul.h): Q4_0, Q4_1 and
// Q8_0 weights against activations quantized to 16-bit blocks, and the AVX2
// activation quantizer.
//
// Per 32-weight block the weights are widened once to two registers of 16
// int16 (Q4_*: nibble bytes zero-extended, masked and shifted; Q8_0: sign
// extended) and reused by every activation row of the tile; per row two
// _mm256_madd_epi16 and one add give 8 int32 pair sums. Those of 8
// consecutive blocks are folded (a pairwise-add tree, exact integer sums) into one
// register holding the 8 block sums, so the float part (conversion, scales,
// FMA, Q4_1's min term) runs once per 8 blocks instead of once per block
// (docs/PERFORMANCE.md). The float order is the one matmul_kernels.h fixes,
// shared bit for bit with the scalar kernel.
//
// A row's instruction sequence is the same for every tile height, so its
// result does not depend on the batch (matmul_kernels.h).
#include <cstddef>
#include <cstring>

#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

CHAI_AVX2_INLINE __m256i Load256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
CHAI_AVX2_INLINE __m128i Load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// _mm256_hadd_epi32's result, [a0+a1, a2+a3, b0+b1, b2+b3 | same for lanes
// 4-7], from two single-uop shuffles and an add: vphaddd is several uops on
// Zen 3 and measurably slower here (docs/PERFORMANCE.md).
CHAI_AVX2_INLINE __m256i PairAdd(__m256i a, __m256i b) {
  const __m256 af = _mm256_castsi256_ps(a), bf = _mm256_castsi256_ps(b);
  const __m256i even = _mm256_castps_si256(_mm256_shuffle_ps(af, bf, 0x88));
  const __m256i odd = _mm256_castps_si256(_mm256_shuffle_ps(af, bf, 0xdd));
  return _mm256_add_epi32(even, odd);
}

// Sum of the 8 int32 lanes (exact).
CHAI_AVX2_INLINE int32_t HsumEpi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock, int kKind>
struct Int16Kernel {
  // Weights 0-15 in lo, 16-31 in hi, as int16.
  CHAI_AVX2_INLINE static void Widen(const WBlock& wb, __m256i* lo, __m256i* hi) {
    if constexpr (kKind == 2) {
      *lo = _mm256_cvtepi8_epi16(Load128(wb.qs));
      *hi = _mm256_cvtepi8_epi16(Load128(wb.qs + 16));
    } else {
      const __m256i bytes = _mm256_cvtepu8_epi16(Load128(wb.qs));
      *lo = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0f));
      *hi = _mm256_srli_epi16(bytes, 4);
      if constexpr (kKind == 0) {
        *lo = _mm256_sub_epi16(*lo, _mm256_set1_epi16(8));
        *hi = _mm256_sub_epi16(*hi, _mm256_set1_epi16(8));
      }
    }
  }

  // The 8 int32 pair sums of block b against every row.
  template <int NR>
  CHAI_AVX2_INLINE static void BlockSums(const WBlock* w, const Q16RowConst* x, int64_t b,
                                         __m256i* v) {
    __m256i lo, hi;
    Widen(w[b], &lo, &hi);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const int16_t* q = x[r].qs + b * kQK;
      v[r] = _mm256_add_epi32(_mm256_madd_epi16(lo, Load256(q)),
                              _mm256_madd_epi16(hi, Load256(q + 16)));
    }
  }

  // Blocks b, b + 1 folded by one PairAdd: [b: 0+1, 2+3, b+1: 0+1, 2+3 | b: 4+5,
  // 6+7, b+1: 4+5, 6+7].
  template <int NR>
  CHAI_AVX2_INLINE static void PairSums(const WBlock* w, const Q16RowConst* x, int64_t b,
                                        __m256i* t) {
    __m256i v[NR], u[NR];
    BlockSums<NR>(w, x, b, v);
    BlockSums<NR>(w, x, b + 1, u);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) t[r] = PairAdd(v[r], u[r]);
  }

  // The weight scales (and Q4_1 mins) of blocks g..g+7 as floats.
  CHAI_AVX2_INLINE static void Scales(const WBlock* w, int64_t g, __m256* dw,
                                      [[maybe_unused]] __m256* mw) {
    // One 32-bit load per block start: d (and Q4_1's m, the next half;
    // otherwise the first qs bytes, still inside the block). Inserts beat
    // vpgatherdd here (docs/PERFORMANCE.md).
    constexpr int kStride = static_cast<int>(sizeof(WBlock));
    const char* p = reinterpret_cast<const char*>(w + g);
    auto at = [p](int k) {
      int v;
      std::memcpy(&v, p + k * kStride, sizeof(v));
      return v;
    };
    __m128i r0 = _mm_cvtsi32_si128(at(0));
    __m128i r1 = _mm_cvtsi32_si128(at(4));
    r0 = _mm_insert_epi32(r0, at(1), 1);
    r1 = _mm_insert_epi32(r1, at(5), 1);
    r0 = _mm_insert_epi32(r0, at(2), 2);
    r1 = _mm_insert_epi32(r1, at(6), 2);
    r0 = _mm_insert_epi32(r0, at(3), 3);
    r1 = _mm_insert_epi32(r1, at(7), 3);
    const __m256i raw = _mm256_inserti128_si256(_mm256_castsi128_si256(r0), r1, 1);
    // Per 128-bit lane [d0 d1 d2 d3 m0 m1 m2 m3] (as halves), then d0-7 | m0-7.
    const __m256i split = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0,
                                           1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    const __m256i t = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(raw, split), 0xd8);
    *dw = _mm256_cvtph_ps(_mm256_castsi256_si128(t));
    if constexpr (kKind == 1) {
      static_assert(offsetof(WBlock, d) == 0 && offsetof(WBlock, m) == 2);
      *mw = _mm256_cvtph_ps(_mm256_extracti128_si256(t, 1));
    }
  }

  // Blocks g..g+7 of every row into the row's 8-lane accumulator.
  template <int NR>
  CHAI_AVX2_INLINE static void Group(const WBlock* w, const Q16RowConst* x, int64_t g,
                                     __m256* acc) {
    // Weight rows stream from memory at batch 1: kWeightPrefetchBytes ahead,
    // every line of the group's 160 (Q4_0: 144, Q8_0: 272) bytes.
    const char* ahead = reinterpret_cast<const char*>(w + g) + kWeightPrefetchBytes;
#pragma GCC unroll 5
    for (int k = 0; k * 64 < static_cast<int>(kQ16Lanes * sizeof(WBlock)); ++k) {
      _mm_prefetch(ahead + 64 * k, _MM_HINT_T0);
    }
    __m256i half[2][NR];  // blocks g..g+3 and g+4..g+7: [lanes 0-3 | lanes 4-7] sums
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      __m256i t0[NR], t1[NR];
      PairSums<NR>(w, x, g + 4 * h, t0);
      PairSums<NR>(w, x, g + 4 * h + 2, t1);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) half[h][r] = PairAdd(t0[r], t1[r]);
    }
    __m256 dw, mw;
    Scales(w, g, &dw, &mw);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const __m256i isum =
          _mm256_add_epi32(_mm256_permute2x128_si256(half[0][r], half[1][r], 0x20),
                           _mm256_permute2x128_si256(half[0][r], half[1][r], 0x31));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_loadu_ps(x[r].d + g));
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
      if constexpr (kKind == 1) acc[r] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(x[r].s + g), acc[r]);
    }
  }

  // A block past the last full group, into the rows' scalar tails.
  template <int NR>
  CHAI_AVX2_INLINE static void TailBlock(const WBlock* w, const Q16RowConst* x, int64_t b,
                                         __m128* tail) {
    __m256i v[NR];
    BlockSums<NR>(w, x, b, v);
    const __m128 dw = _mm_set_ss(Half(w[b].d));
    [[maybe_unused]] __m128 mw;
    if constexpr (kKind == 1) mw = _mm_set_ss(Half(w[b].m));
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const __m128 isum = _mm_cvtsi32_ss(_mm_setzero_ps(), HsumEpi32(v[r]));
      const __m128 scale = _mm_mul_ss(dw, _mm_load_ss(x[r].d + b));
      tail[r] = _mm_fmadd_ss(isum, scale, tail[r]);
      if constexpr (kKind == 1) tail[r] = _mm_fmadd_ss(mw, _mm_load_ss(x[r].s + b), tail[r]);
    }
  }

  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const WBlock*>(w_row);
    const int64_t nb = cols / kQK;
    Q16RowConst x[NR];
    __m256 acc[NR];
    __m128 tail[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      x[r] = Q16RowAt(RowPtr<int16_t>(act, stride, r), nb);
      acc[r] = _mm256_setzero_ps();
      tail[r] = _mm_setzero_ps();
    }
    int64_t b = 0;
    for (; b + kQ16Lanes <= nb; b += kQ16Lanes) Group<NR>(w, x, b, acc);
    for (; b < nb; ++b) TailBlock<NR>(w, x, b, tail);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(acc[r]) + _mm_cvtss_f32(tail[r]);
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTile>;

// The portable quantizer's operations (matmul_scalar.cc) in 8 lanes: the
// same max, division, reciprocal, product and round-to-nearest-even
// conversion (saturating pack), so the bits are the same.
CHAI_AVX2 void QuantizeQ16Row(const float* x, int64_t cols, void* out) {
  const int64_t nb = cols / kQK;
  const Q16Row row = Q16RowAt(out, nb);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    int16_t* qs = row.qs + b * kQK;
    __m256 v[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(xb + 8 * k);
    const __m256 m01 = _mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask));
    const __m256 m23 = _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask));
    const __m256 m8 = _mm256_max_ps(m01, m23);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const float d = amax / 32767.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 32767.0f / amax : 0.0f);
    __m256i q[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
    // packs works per 128-bit lane: [q0 0-3, q1 0-3, q0 4-7, q1 4-7]; the
    // permute restores element order.
    const __m256i p01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xd8);
    const __m256i p23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2], q[3]), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), p01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + 16), p23);
    // Sum of the stored (saturated) values, exactly.
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i s8 = _mm256_add_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones));
    row.d[b] = d;
    row.s[b] = d * static_cast<float>(HsumEpi32(s8));
  }
}

}  // namespace

RowDotFn Avx2Int16RowDot(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return Dispatch<Int16Kernel<BlockQ4_0, 0>>;
    case DType::kQ4_1:
      return Dispatch<Int16Kernel<BlockQ4_1, 1>>;
    case DType::kQ8_0:
      return Dispatch<Int16Kernel<BlockQ8_0, 2>>;
    default:
      return nullptr;
  }
}

void Avx2QuantizeActRow(ActFormat f, const float* x, int64_t cols, void* out) {
  if (f != ActFormat::kQ16x32) {
    QuantizeActRow(f, x, cols, out);
    return;
  }
  QuantizeQ16Row(x, cols, out);
}

}  // namespace chai::kernels::cpu::internal
