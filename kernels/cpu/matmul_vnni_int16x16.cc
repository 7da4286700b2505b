// AVX-512 VNNI kernels of ActivationMode::kInt16 that compute two adjacent
// row-interleaved groups (16 weight rows, interleave.h) per call in 512-bit
// registers: lanes 0-7 are the first group's rows, lanes 8-15 the second's.
// The layout is unchanged (the two groups' blocks are kInterleave rows'
// worth of bytes apart), so the weights PrepareWeight makes serve the 8-row
// kernels and these alike.
//
// Per output lane the work is the 8-row kernel's (matmul_int16x8_group.inc):
// exact integer block sums, then per block a = fma(float(isum), dw * d, a)
// and for Q4_1 a = fma(m, s, a), blocks in order. So the results are the
// same bits as the AVX2 and 256-bit VNNI builds (matmul_test.cc). What
// changes is the cost: one widening, mask, shift and vpdpwssd serves 16
// rows instead of 8, on an ISA whose 512-bit operations issue on two ports
// instead of three: ~1.3x fewer cycles per weight from L1 (PERFORMANCE.md,
// session 9).
//
// REQUIRES: CpuHasAvx512Vnni() (AVX512F, BW, VL and VNNI).
#include <cstring>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

#define CHAI_X16 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define CHAI_X16_INLINE                                                        \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"), \
                 always_inline)) inline

// GCC 12's _mm512_undefined_ps() initializes a variable from itself, which
// -Wmaybe-uninitialized reports wherever _mm512_cvtph_ps/_mm512_cvtepi32_ps
// are inlined (a false positive: the value is a don't-care source operand).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace chai::kernels::cpu::internal {
namespace {

// The int16 pair at p in every 32-bit lane.
CHAI_X16_INLINE __m512i BroadcastPair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock8, int kKind>
struct Group16Kernel {
  // Two independent integer sums per row: one would chain every vpdpwssd of
  // a block on the one before.
  static constexpr int kChains = 2;

  // Block b's exact integer products of the 16 rows (groups w0 and w1) with
  // tile row r, into isum[r].
  template <int NR>
  CHAI_X16_INLINE static void BlockSums(const WBlock8& w0, const WBlock8& w1,
                                        const int16_t* const* xq, int64_t b, __m512i* isum) {
    __m512i part[kChains][NR];
#pragma GCC unroll 2
    for (int c = 0; c < kChains; ++c) {
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) part[c][r] = _mm512_setzero_si512();
    }
    if constexpr (kKind == 2) {
#pragma GCC unroll 4
      for (int g0 = 0; g0 < kQK / 2; g0 += kChains) {
#pragma GCC unroll 2
        for (int c = 0; c < kChains; ++c) {
          const int g = g0 + c;
          const __m512i wv = _mm512_cvtepi8_epi16(Load2x128(w0.qs + 16 * g, w1.qs + 16 * g));
#pragma GCC unroll 8
          for (int r = 0; r < NR; ++r) {
            part[c][r] =
                _mm512_dpwssd_epi32(part[c][r], wv, BroadcastPair(xq[r] + b * kQK + 2 * g));
          }
        }
      }
    } else {
      const __m512i mask = _mm512_set1_epi16(0x0f);
#pragma GCC unroll 2
      for (int g0 = 0; g0 < kQK / 4; g0 += kChains) {
#pragma GCC unroll 2
        for (int c = 0; c < kChains; ++c) {
          const int g = g0 + c;
          const __m512i bytes = _mm512_cvtepu8_epi16(Load2x128(w0.qs + 16 * g, w1.qs + 16 * g));
          __m512i lo = _mm512_and_si512(bytes, mask);
          __m512i hi = _mm512_srli_epi16(bytes, 4);
          if constexpr (kKind == 0) {
            lo = _mm512_sub_epi16(lo, _mm512_set1_epi16(8));
            hi = _mm512_sub_epi16(hi, _mm512_set1_epi16(8));
          }
#pragma GCC unroll 8
          for (int r = 0; r < NR; ++r) {
            const int16_t* x = xq[r] + b * kQK + 4 * g;
            part[c][r] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(part[c][r], lo, BroadcastPair(x)),
                                             hi, BroadcastPair(x + 2));
          }
        }
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) isum[r] = _mm512_add_epi32(part[0][r], part[1][r]);
  }

  template <int NR>
  CHAI_X16 static void Run(const void* w_group, const void* act, int64_t stride, int64_t cols,
                           float* out, int64_t out_stride) {
    const int64_t nb = cols / kQK;
    const auto* w0 = static_cast<const WBlock8*>(w_group);
    const WBlock8* w1 = w0 + nb;  // the next group: kInterleave rows later
    const int16_t* xq[NR];
    const float* xd[NR];
    [[maybe_unused]] const float* xs[NR];
    __m512 acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const Q16RowConst x = Q16RowAt(RowPtr<int16_t>(act, stride, r), nb);
      xq[r] = x.qs;
      xd[r] = x.d;
      xs[r] = x.s;
      acc[r] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; ++b) {
      // Both groups stream from memory at batch 1 (kWeightPrefetchBytes).
      const char* ahead0 = reinterpret_cast<const char*>(w0 + b) + kWeightPrefetchBytes;
      const char* ahead1 = reinterpret_cast<const char*>(w1 + b) + kWeightPrefetchBytes;
#pragma GCC unroll 5
      for (int k = 0; k * 64 < static_cast<int>(sizeof(WBlock8)); ++k) {
        _mm_prefetch(ahead0 + 64 * k, _MM_HINT_T0);
        _mm_prefetch(ahead1 + 64 * k, _MM_HINT_T0);
      }
      __m512i isum[NR];
      BlockSums<NR>(w0[b], w1[b], xq, b, isum);
      const __m512 dw = _mm512_cvtph_ps(Load2x128(w0[b].d, w1[b].d));
      [[maybe_unused]] __m512 mw;
      if constexpr (kKind == 1) mw = _mm512_cvtph_ps(Load2x128(w0[b].m, w1[b].m));
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(xd[r][b]));
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), scale, acc[r]);
        if constexpr (kKind == 1) acc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs[r][b]), acc[r]);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) _mm512_storeu_ps(out + r * out_stride, acc[r]);
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTileGroup>;

}  // namespace

RowDotFn VnniInt16Group16Dot(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return Dispatch<Group16Kernel<BlockQ4_0x8, 0>>;
    case DType::kQ4_1:
      return Dispatch<Group16Kernel<BlockQ4_1x8, 1>>;
    case DType::kQ8_0:
      return Dispatch<Group16Kernel<BlockQ8_0x8, 2>>;
    default:
      return nullptr;
  }
}

}  // namespace chai::kernels::cpu::internal
