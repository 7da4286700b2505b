// AVX2 kernels of ActivationMode::kInt16 (see matmul.h): Q4_0, Q4_1 and
// Q8_0 weights against activations quantized to 16-bit blocks, and the AVX2
// activation quantizer.
//
// Per 32-weight block the weights are widened once to two registers of 16
// int16 (Q4_*: nibble bytes zero-extended, masked and shifted; Q8_0: sign
// extended) and reused by every activation row of the tile. Per row:
// two _mm256_madd_epi16 (16 exact products and pair sums each), one int32
// add, one conversion, then t = float(isum) * (dw * dx) (+ m * s in lane 0
// for Q4_1) added to one of two 8-lane accumulators (even and odd blocks, so
// the add chain does not bound batch 1). That is ~12 vector ops per block at
// batch 1 against ~20 for the float-activation kernel.
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

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock, int kKind>
struct Int16Kernel {
  template <int NR>
  CHAI_AVX2_INLINE static void Step(const WBlock& wb, const BlockQ16x32* const* x, int64_t b,
                                    __m256* acc) {
    // Weights 0-15 in lo, 16-31 in hi, as int16.
    __m256i lo, hi;
    if constexpr (kKind == 2) {
      lo = _mm256_cvtepi8_epi16(Load128(wb.qs));
      hi = _mm256_cvtepi8_epi16(Load128(wb.qs + 16));
    } else {
      const __m256i bytes = _mm256_cvtepu8_epi16(Load128(wb.qs));
      lo = _mm256_and_si256(bytes, _mm256_set1_epi16(0x0f));
      hi = _mm256_srli_epi16(bytes, 4);
      if constexpr (kKind == 0) {
        lo = _mm256_sub_epi16(lo, _mm256_set1_epi16(8));
        hi = _mm256_sub_epi16(hi, _mm256_set1_epi16(8));
      }
    }
    __m256 dw;
    [[maybe_unused]] __m128 mw;  // [m, 0, 0, 0]
    if constexpr (kKind == 1) {
      // d and m are adjacent halves: convert both at once.
      static_assert(offsetof(WBlock, d) == 0 && offsetof(WBlock, m) == 2);
      uint32_t dm;
      std::memcpy(&dm, &wb, sizeof(dm));
      const __m128 both = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dm)));
      dw = _mm256_broadcastss_ps(both);
      mw = _mm_insert_ps(both, both, 0x4e);  // lane 1 to lane 0, lanes 1-3 zeroed
    } else {
      dw = _mm256_set1_ps(Half(wb.d));
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const BlockQ16x32& xb = x[r][b];
      const __m256i isum = _mm256_add_epi32(_mm256_madd_epi16(lo, Load256(xb.qs)),
                                            _mm256_madd_epi16(hi, Load256(xb.qs + 16)));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_broadcast_ss(&xb.d));
      if constexpr (kKind == 1) {
        // m * s rides in lane 0 of the block's term (the upper lanes are 0).
        const __m256 ms = _mm256_zextps128_ps256(_mm_mul_ss(mw, _mm_load_ss(&xb.s)));
        acc[r] = _mm256_add_ps(acc[r], _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, ms));
      } else {
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
      }
    }
  }

  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const WBlock*>(w_row);
    const BlockQ16x32* x[NR];
    __m256 acc0[NR], acc1[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      x[r] = RowPtr<BlockQ16x32>(act, stride, r);
      acc0[r] = acc1[r] = _mm256_setzero_ps();
    }
    const int64_t nb = cols / kQK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      // Weight rows stream from DRAM at batch 1: ~1 KB ahead.
      _mm_prefetch(reinterpret_cast<const char*>(w + b) + 1024, _MM_HINT_T0);
      Step<NR>(w[b], x, b, acc0);
      Step<NR>(w[b + 1], x, b + 1, acc1);
    }
    if (b < nb) Step<NR>(w[b], x, b, acc0);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(_mm256_add_ps(acc0[r], acc1[r]));
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTile>;

// The portable quantizer's operations (matmul_scalar.cc) in 8 lanes: the
// same max, division, reciprocal, product and round-to-nearest-even
// conversion (saturating pack), so the bits are the same.
CHAI_AVX2 void QuantizeQ16Row(const float* x, int64_t cols, BlockQ16x32* out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float* xb = x + b * kQK;
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
    BlockQ16x32& blk = out[b];
    blk.d = amax / 32767.0f;
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 32767.0f / amax : 0.0f);
    __m256i q[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
    // packs works per 128-bit lane: [q0 0-3, q1 0-3, q0 4-7, q1 4-7]; the
    // permute restores element order.
    const __m256i p01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xd8);
    const __m256i p23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2], q[3]), 0xd8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs), p01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(blk.qs + 16), p23);
    // Sum of the stored (saturated) values, exactly.
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i s8 = _mm256_add_epi32(_mm256_madd_epi16(p01, ones), _mm256_madd_epi16(p23, ones));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
    blk.s = blk.d * static_cast<float>(_mm_cvtsi128_si32(s4));
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
  QuantizeQ16Row(x, cols, static_cast<BlockQ16x32*>(out));
}

}  // namespace chai::kernels::cpu::internal
