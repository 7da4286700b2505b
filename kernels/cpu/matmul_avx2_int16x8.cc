// AVX2 kernels of ActivationMode::kInt16 over row-interleaved weights
// (interleave.h): each call computes 8 weight rows against up to kMaxTile
// activation rows.
//
// Per 32-column block and per 4 columns (Q4_*) the 16 quant bytes of the 8
// rows are widened to int16 and split into low and high nibbles, giving two
// registers whose lane r holds row r's weights (k, k+1) and (k+2, k+3). One
// `_mm256_madd_epi16` against the activation pair (x[k], x[k+1]) broadcast
// to every lane then adds both products into row r's lane: 8 rows' exact
// integer block sums build up with no horizontal reduction. Per block the
// float part (conversion, scales, FMA, Q4_1's min term) is one vector
// operation each for all 8 rows. Cost per 32 weights of one row at batch 1:
// 2 madd, 2 add, 3/8 of the widening, ~1 of float work (about 7 vector
// operations), against ~11 for the row-major kernel (matmul_avx2_int16.cc).
//
// The float order is matmul_kernels.h's (ScalarInt16GroupDot): per row one
// accumulator, blocks in order. A row's instruction sequence is the same for
// every tile height, so results do not depend on the batch.
#include <cstring>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

CHAI_AVX2_INLINE __m128i Load128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// The int16 pair at p in every 32-bit lane (one vpbroadcastd).
CHAI_AVX2_INLINE __m256i BroadcastPair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock8, int kKind>
struct GroupKernel {
  // Adds block b's integer products of the 8 rows to isum[r], r < NR.
  template <int NR>
  CHAI_AVX2_INLINE static void BlockSums(const WBlock8& w, const int16_t* const* xq, int64_t b,
                                         __m256i* isum) {
    if constexpr (kKind == 2) {
#pragma GCC unroll 4
      for (int g = 0; g < kQK / 2; ++g) {
        const __m256i wv = _mm256_cvtepi8_epi16(Load128(w.qs + 16 * g));
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          isum[r] = _mm256_add_epi32(isum[r],
                                     _mm256_madd_epi16(wv, BroadcastPair(xq[r] + b * kQK + 2 * g)));
        }
      }
    } else {
      const __m256i mask = _mm256_set1_epi16(0x0f);
#pragma GCC unroll 2
      for (int g = 0; g < kQK / 4; ++g) {
        const __m256i bytes = _mm256_cvtepu8_epi16(Load128(w.qs + 16 * g));
        __m256i lo = _mm256_and_si256(bytes, mask);
        __m256i hi = _mm256_srli_epi16(bytes, 4);
        if constexpr (kKind == 0) {
          lo = _mm256_sub_epi16(lo, _mm256_set1_epi16(8));
          hi = _mm256_sub_epi16(hi, _mm256_set1_epi16(8));
        }
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          const int16_t* x = xq[r] + b * kQK + 4 * g;
          const __m256i p = _mm256_add_epi32(_mm256_madd_epi16(lo, BroadcastPair(x)),
                                             _mm256_madd_epi16(hi, BroadcastPair(x + 2)));
          isum[r] = _mm256_add_epi32(isum[r], p);
        }
      }
    }
  }

  template <int NR>
  CHAI_AVX2 static void Run(const void* w_group, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const WBlock8*>(w_group);
    const int64_t nb = cols / kQK;
    const int16_t* xq[NR];
    const float* xd[NR];
    [[maybe_unused]] const float* xs[NR];
    __m256 acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const Q16RowConst x = Q16RowAt(RowPtr<int16_t>(act, stride, r), nb);
      xq[r] = x.qs;
      xd[r] = x.d;
      xs[r] = x.s;
      acc[r] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
      // Weights stream from DRAM at batch 1: ~1 KB ahead, every line of the
      // x8 block (144-272 bytes).
      const char* ahead = reinterpret_cast<const char*>(w + b) + 1024;
#pragma GCC unroll 5
      for (int k = 0; k * 64 < static_cast<int>(sizeof(WBlock8)); ++k) {
        _mm_prefetch(ahead + 64 * k, _MM_HINT_T0);
      }
      __m256i isum[NR];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) isum[r] = _mm256_setzero_si256();
      BlockSums<NR>(w[b], xq, b, isum);
      const __m256 dw = _mm256_cvtph_ps(Load128(w[b].d));
      [[maybe_unused]] __m256 mw;
      if constexpr (kKind == 1) mw = _mm256_cvtph_ps(Load128(w[b].m));
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(xd[r][b]));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), scale, acc[r]);
        if constexpr (kKind == 1) acc[r] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xs[r][b]), acc[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) _mm256_storeu_ps(out + r * out_stride, acc[r]);
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTileGroup>;

}  // namespace

RowDotFn Avx2Int16GroupDot(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return Dispatch<GroupKernel<BlockQ4_0x8, 0>>;
    case DType::kQ4_1:
      return Dispatch<GroupKernel<BlockQ4_1x8, 1>>;
    case DType::kQ8_0:
      return Dispatch<GroupKernel<BlockQ8_0x8, 2>>;
    default:
      return nullptr;
  }
}

}  // namespace chai::kernels::cpu::internal
