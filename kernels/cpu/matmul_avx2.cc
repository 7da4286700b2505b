// AVX2+FMA(+F16C) matmul kernels, compiled for those extensions with target
// attributes and chosen at run time (CpuHasAvx2Fma), so the library still
// runs on any x86-64.
//
// Each kernel processes one weight row against NR activation rows. The weight
// block is loaded and unpacked once and reused for every activation row; each
// row has its own accumulators, updated by the same instruction sequence for
// every NR, so results do not depend on NR (see matmul_kernels.h).
//
// Integer block dot products are exact and equal to the scalar kernels';
// only the float accumulation order differs (8 lanes, two accumulators
// alternating over blocks to hide FMA latency at NR = 1).
#include <cpuid.h>

#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {

bool CpuHasAvx2Fma() {
  // F16C through cpuid: clang's __builtin_cpu_supports does not know "f16c".
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
    return f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
}

namespace {

// Sum over pairs of u8*s8 products, widened to 8 int32 lanes.
CHAI_AVX2_INLINE __m256i DotU8S8(__m256i u, __m256i s) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

// The 32 nibbles of a 16-byte legacy block as bytes: element i < 16 is the
// low nibble of qs[i], element 16 + i the high nibble.
CHAI_AVX2_INLINE __m256i Nibbles16(const uint8_t* qs) {
  const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

// ---- Q4_0 / Q4_1 / Q8_0 against 32-element 8-bit activation blocks ----

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock, int kKind>
struct LegacyKernel {
  template <int NR>
  CHAI_AVX2_INLINE static void Step(const WBlock& wb, const BlockQ8x32* const* x, int64_t b,
                                    __m256* acc, float* extra) {
    const float dw = Half(wb.d);
    __m256i q;
    if constexpr (kKind == 2) {
      q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.qs));
    } else {
      q = Nibbles16(wb.qs);
    }
    [[maybe_unused]] __m256i q_abs;
    if constexpr (kKind == 2) q_abs = _mm256_sign_epi8(q, q);
    [[maybe_unused]] float mw = 0.0f;
    if constexpr (kKind == 1) mw = Half(wb.m);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const BlockQ8x32& xb = x[r][b];
      const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
      __m256i isum;
      if constexpr (kKind == 2) {
        isum = DotU8S8(q_abs, _mm256_sign_epi8(xq, q));
      } else {
        isum = DotU8S8(q, xq);
      }
      acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(dw * xb.d), acc[r]);
      if constexpr (kKind == 0) extra[r] += dw * xb.s;
      if constexpr (kKind == 1) extra[r] += mw * xb.s;
    }
  }

  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const WBlock*>(w_row);
    const BlockQ8x32* x[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) x[r] = RowPtr<BlockQ8x32>(act, stride, r);
    // Two accumulator sets, even and odd blocks: independent FMA chains. The
    // sets are separate named arrays (not indexed by b & 1) so they stay in
    // registers.
    __m256 acc0[NR], acc1[NR];
    // Q4_0: sum dw*s (the -8 offset); Q4_1: sum m*s. One chain: a scalar add
    // is shorter than a block's work, and a second set would spill.
    float extra[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      acc0[r] = acc1[r] = _mm256_setzero_ps();
      extra[r] = 0.0f;
    }
    const int64_t nb = cols / kQK;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
      Step<NR>(w[b], x, b, acc0, extra);
      Step<NR>(w[b + 1], x, b + 1, acc1, extra);
    }
    if (b < nb) Step<NR>(w[b], x, b, acc0, extra);
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      const float dot = Hsum(_mm256_add_ps(acc0[r], acc1[r]));
      const float e = extra[r];
      float v = dot;
      if constexpr (kKind == 0) v = dot - 8.0f * e;
      if constexpr (kKind == 1) v = dot + e;
      out[r * out_stride] = v;
    }
  }
};

// ---- K-quants against 256-element 8-bit activation blocks ----

// Q4_K (kFiveBit = false) and Q5_K (true).
template <typename WBlock, bool kFiveBit>
struct Q45KKernel {
  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const WBlock*>(w_row);
    const BlockQ8xK* x[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) x[r] = RowPtr<BlockQ8xK>(act, stride, r);
    __m256 acc[NR];
    float mins[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      acc[r] = _mm256_setzero_ps();
      mins[r] = 0.0f;
    }
    const __m256i mask = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < cols / kQKK; ++b) {
      const WBlock& wb = w[b];
      uint8_t sc[8], m[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) KScaleMin(wb.scales, j, &sc[j], &m[j]);
      [[maybe_unused]] __m256i hbits;
      if constexpr (kFiveBit) hbits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.qh));
      __m256i isum[NR];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int g = 0; g < 4; ++g) {
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.qs + 32 * g));
        __m256i lo = _mm256_and_si256(raw, mask);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), mask);
        if constexpr (kFiveBit) {
          const __m256i one = _mm256_set1_epi8(1);
          const __m256i b0 =
              _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * g)), one);
          const __m256i b1 =
              _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(2 * g + 1)), one);
          lo = _mm256_or_si256(lo, _mm256_slli_epi16(b0, 4));
          hi = _mm256_or_si256(hi, _mm256_slli_epi16(b1, 4));
        }
        const __m256i s_lo = _mm256_set1_epi16(sc[2 * g]);
        const __m256i s_hi = _mm256_set1_epi16(sc[2 * g + 1]);
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
          const int8_t* a = x[r][b].qs + 64 * g;
          const __m256i a_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
          const __m256i a_hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 32));
          const __m256i p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, a_lo), s_lo);
          const __m256i p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, a_hi), s_hi);
          isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(p_lo, p_hi));
        }
      }
      const float d = Half(wb.d), dmin = Half(wb.dmin);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const BlockQ8xK& xb = x[r][b];
        int32_t summ = 0;
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) summ += m[j] * (xb.bsums[2 * j] + xb.bsums[2 * j + 1]);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * xb.d), acc[r]);
        mins[r] += (dmin * xb.d) * static_cast<float>(summ);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(acc[r]) - mins[r];
  }
};

struct Q6KKernel {
  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const BlockQ6_K*>(w_row);
    const BlockQ8xK* x[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) x[r] = RowPtr<BlockQ8xK>(act, stride, r);
    __m256 acc[NR];
    float offs[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      acc[r] = _mm256_setzero_ps();
      offs[r] = 0.0f;
    }
    const __m256i mask4 = _mm256_set1_epi8(0x0f), mask2 = _mm256_set1_epi8(0x03);
    for (int64_t b = 0; b < cols / kQKK; ++b) {
      const BlockQ6_K& wb = w[b];
      __m256i isum[NR];
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) isum[r] = _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int h = 0; h < 2; ++h) {
        const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.ql + 64 * h));
        const __m256i l1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.ql + 64 * h + 32));
        const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb.qh + 32 * h));
        // Unsigned 6-bit values (q + 32) of the four 32-element groups.
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(l0, mask4),
                            _mm256_slli_epi16(_mm256_and_si256(hb, mask2), 4)),
            _mm256_or_si256(
                _mm256_and_si256(l1, mask4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), mask2), 4)),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l0, 4), mask4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), mask2), 4)),
            _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(l1, 4), mask4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), mask2), 4)),
        };
#pragma GCC unroll 8
        for (int k = 0; k < 4; ++k) {
          // int16 lanes 0-7 hold group 2k's pair sums, lanes 8-15 group 2k+1's.
          const __m256i s = _mm256_set_m128i(_mm_set1_epi16(wb.scales[8 * h + 2 * k + 1]),
                                             _mm_set1_epi16(wb.scales[8 * h + 2 * k]));
#pragma GCC unroll 8
          for (int r = 0; r < NR; ++r) {
            const __m256i a =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r][b].qs + 128 * h + 32 * k));
            isum[r] =
                _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(q[k], a), s));
          }
        }
      }
      const float d = Half(wb.d);
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) {
        const BlockQ8xK& xb = x[r][b];
        int32_t off = 0;  // the +32 bias of the unsigned values
        for (int g = 0; g < 16; ++g) off += wb.scales[g] * xb.bsums[g];
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * xb.d), acc[r]);
        offs[r] += (d * xb.d) * static_cast<float>(32 * off);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(acc[r]) - offs[r];
  }
};

// ---- float weights ----

CHAI_AVX2_INLINE __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
CHAI_AVX2_INLINE __m256 Load8(const uint16_t* p, bool bf16) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

// kType: 0 = F32, 1 = F16, 2 = BF16. One 8-lane accumulator per row, as the
// scalar kernel's 8 partial sums, then the same tail and reduction tree.
template <int kType>
struct FloatKernel {
  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const float* x[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) x[r] = RowPtr<float>(act, stride, r);
    __m256 acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
      __m256 wv;
      if constexpr (kType == 0) {
        wv = Load8(static_cast<const float*>(w_row) + i);
      } else {
        wv = Load8(static_cast<const uint16_t*>(w_row) + i, kType == 2);
      }
#pragma GCC unroll 8
      for (int r = 0; r < NR; ++r) acc[r] = _mm256_fmadd_ps(wv, Load8(x[r] + i), acc[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      float tail = 0.0f;
      for (int64_t j = i; j < cols; ++j) {
        float wj;
        if constexpr (kType == 0) {
          wj = static_cast<const float*>(w_row)[j];
        } else if constexpr (kType == 1) {
          wj = Half(static_cast<const uint16_t*>(w_row)[j]);
        } else {
          wj = Bf16ToFp32(static_cast<const uint16_t*>(w_row)[j]);
        }
        tail += wj * x[r][j];
      }
      out[r * out_stride] = Hsum(acc[r]) + tail;
    }
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTile>;

}  // namespace

RowDotFn Avx2RowDot(DType t) {
  switch (t) {
    case DType::kF32:
      return Dispatch<FloatKernel<0>>;
    case DType::kF16:
      return Dispatch<FloatKernel<1>>;
    case DType::kBF16:
      return Dispatch<FloatKernel<2>>;
    case DType::kQ4_0:
      return Dispatch<LegacyKernel<BlockQ4_0, 0>>;
    case DType::kQ4_1:
      return Dispatch<LegacyKernel<BlockQ4_1, 1>>;
    case DType::kQ8_0:
      return Dispatch<LegacyKernel<BlockQ8_0, 2>>;
    case DType::kQ4_K:
      return Dispatch<Q45KKernel<BlockQ4_K, false>>;
    case DType::kQ5_K:
      return Dispatch<Q45KKernel<BlockQ5_K, true>>;
    case DType::kQ6_K:
      return Dispatch<Q6KKernel>;
  }
  return nullptr;
}

}  // namespace chai::kernels::cpu::internal
