// AVX2+FMA(+F16C) float-activation kernels for the quantized weight types
// (ActivationMode::kFloat; see matmul.h for the trade-off against kInt8).
//
// A kernel computes one weight row against NR (1..kMaxTileDequant) float
// activation rows. Each 32-element chunk of the weight row is dequantized
// once into four 8-float registers -- exactly DequantizeRow's values: the
// arithmetic below is the same float operations (or an FMA whose product is
// exact, for Q4_0/Q4_1) -- and reused by every activation row. Per row and
// chunk: p = w0*x0, then p = w_g*x_g + p for g = 1..3 (FMA), then acc += p;
// one 8-lane accumulator per row, one horizontal sum at the end (the order
// stated in matmul_kernels.h). A row's instruction sequence is the same for
// every NR, so its result does not depend on the batch.
//
// Latency: the only loop-carried dependency per row is one add per chunk;
// the four-FMA partial of a chunk does not depend on earlier chunks, so the
// out-of-order core overlaps chunks even at NR = 1.
#include <cstddef>
#include <cstring>

#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

// 8 bytes -> 8 int32 lanes.
CHAI_AVX2_INLINE __m256i Load8U8(const uint8_t* p) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
CHAI_AVX2_INLINE __m256i Load8S8(const int8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
CHAI_AVX2_INLINE __m256 ToFloat(__m256i v) { return _mm256_cvtepi32_ps(v); }

// acc[r] += sum over the chunk's four 8-element groups, for every row.
template <int NR>
CHAI_AVX2_INLINE void AccumulateChunk(const __m256* w, const float* const* x, int64_t off,
                                      __m256* acc) {
#pragma GCC unroll 8
  for (int r = 0; r < NR; ++r) {
    const float* xr = x[r] + off;
    __m256 p = _mm256_mul_ps(w[0], _mm256_loadu_ps(xr));
    p = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(xr + 8), p);
    p = _mm256_fmadd_ps(w[2], _mm256_loadu_ps(xr + 16), p);
    p = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(xr + 24), p);
    acc[r] = _mm256_add_ps(acc[r], p);
  }
}

// Each decoder is built from one weight block and writes chunk c (elements
// 32c..32c+31 of the block) as four registers of 8 consecutive elements.

// Q4_0 (offset -8d) and Q4_1 (offset m): w = d * nibble + offset. d * nibble
// is exact in float, so the FMA rounds once, as DequantizeRow's d*q + m
// (and d*(q-8) is exact).
template <typename B, bool kHasMin>
struct Legacy4 {
  using Block = B;
  static constexpr int kElems = kQK;
  CHAI_AVX2_INLINE explicit Legacy4(const Block& b) : qs(b.qs) {
    if constexpr (kHasMin) {
      // d and m are adjacent halves: convert both at once, then splat each.
      static_assert(offsetof(Block, d) == 0 && offsetof(Block, m) == 2);
      uint32_t dm;
      std::memcpy(&dm, &b, sizeof(dm));
      const __m128 both = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(dm)));
      d = _mm256_broadcastss_ps(both);
      off = _mm256_broadcastss_ps(_mm_movehdup_ps(both));
    } else {
      const float df = Half(b.d);
      d = _mm256_set1_ps(df);
      off = _mm256_set1_ps(-8.0f * df);
    }
  }
  CHAI_AVX2_INLINE void Chunk(int, __m256* w) const {
    // Element i < 16 is the low nibble of qs[i], element 16 + i the high one.
    const __m256i mask = _mm256_set1_epi32(0x0f);
    const __m256i b0 = Load8U8(qs), b1 = Load8U8(qs + 8);
    w[0] = _mm256_fmadd_ps(ToFloat(_mm256_and_si256(b0, mask)), d, off);
    w[1] = _mm256_fmadd_ps(ToFloat(_mm256_and_si256(b1, mask)), d, off);
    w[2] = _mm256_fmadd_ps(ToFloat(_mm256_srli_epi32(b0, 4)), d, off);
    w[3] = _mm256_fmadd_ps(ToFloat(_mm256_srli_epi32(b1, 4)), d, off);
  }
  const uint8_t* qs;
  __m256 d, off;
};

// Q8_0: w = q * d (exact).
struct Q8 {
  using Block = BlockQ8_0;
  static constexpr int kElems = kQK;
  CHAI_AVX2_INLINE explicit Q8(const Block& b) : qs(b.qs), d(_mm256_set1_ps(Half(b.d))) {}
  CHAI_AVX2_INLINE void Chunk(int, __m256* w) const {
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) w[k] = _mm256_mul_ps(ToFloat(Load8S8(qs + 8 * k)), d);
  }
  const int8_t* qs;
  __m256 d;
};

// Q4_K / Q5_K: sub-block j is w = (d*scale_j) * q - dmin*min_j, rounded as
// DequantizeRow does (product, then difference).
template <typename B, bool kFiveBit>
struct Q45K {
  using Block = B;
  static constexpr int kElems = kQKK;
  CHAI_AVX2_INLINE explicit Q45K(const Block& b) : blk(&b) {
    const float d = Half(b.d), dmin = Half(b.dmin);
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      KScaleMin(b.scales, j, &sc, &m);
      ds[j] = d * static_cast<float>(sc);
      dm[j] = dmin * static_cast<float>(m);
    }
  }
  CHAI_AVX2_INLINE void Chunk(int j, __m256* w) const {
    const __m256i mask = _mm256_set1_epi32(0x0f);
    const uint8_t* q = blk->qs + 32 * (j / 2);
    const int shift = 4 * (j & 1);
    const __m256 vds = _mm256_set1_ps(ds[j]), vdm = _mm256_set1_ps(dm[j]);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      __m256i v = _mm256_and_si256(_mm256_srli_epi32(Load8U8(q + 8 * k), shift), mask);
      if constexpr (kFiveBit) {
        const __m256i hb =
            _mm256_and_si256(_mm256_srli_epi32(Load8U8(blk->qh + 8 * k), j), _mm256_set1_epi32(1));
        v = _mm256_or_si256(v, _mm256_slli_epi32(hb, 4));
      }
      w[k] = _mm256_sub_ps(_mm256_mul_ps(ToFloat(v), vds), vdm);
    }
  }
  const Block* blk;
  float ds[8], dm[8];
};

// Q6_K: chunk c is group k = c % 4 of half h = c / 4; element l of it is
// (d*scale[8h + 2k + l/16]) * (q - 32), as DequantizeRow.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kElems = kQKK;
  CHAI_AVX2_INLINE explicit Q6K(const Block& b) : blk(&b), d(Half(b.d)) {}
  CHAI_AVX2_INLINE void Chunk(int c, __m256* w) const {
    const int h = c / 4, k = c % 4;
    const uint8_t* ql = blk->ql + 64 * h + 32 * (k & 1);
    const uint8_t* qh = blk->qh + 32 * h;
    const int lshift = 4 * (k >> 1), hshift = 2 * k;
    const __m256 s0 = _mm256_set1_ps(d * static_cast<float>(blk->scales[8 * h + 2 * k]));
    const __m256 s1 = _mm256_set1_ps(d * static_cast<float>(blk->scales[8 * h + 2 * k + 1]));
    const __m256i mask4 = _mm256_set1_epi32(0x0f), mask2 = _mm256_set1_epi32(0x03);
    const __m256i bias = _mm256_set1_epi32(32);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      const __m256i lo = _mm256_and_si256(_mm256_srli_epi32(Load8U8(ql + 8 * i), lshift), mask4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(Load8U8(qh + 8 * i), hshift), mask2);
      const __m256i q = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), bias);
      w[i] = _mm256_mul_ps(ToFloat(q), i < 2 ? s0 : s1);
    }
  }
  const Block* blk;
  float d;
};

template <typename Deq>
struct DequantKernel {
  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const typename Deq::Block*>(w_row);
    const float* x[NR];
    __m256 acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      x[r] = RowPtr<float>(act, stride, r);
      acc[r] = _mm256_setzero_ps();
    }
    const int64_t nb = cols / Deq::kElems;
    for (int64_t b = 0; b < nb; ++b) {
      // Weight rows are read once per tile and streamed from memory at
      // batch 1 (kWeightPrefetchBytes says why this far ahead).
      _mm_prefetch(reinterpret_cast<const char*>(w + b) + kWeightPrefetchBytes, _MM_HINT_T0);
      const Deq deq(w[b]);
#pragma GCC unroll 8
      for (int c = 0; c < Deq::kElems / 32; ++c) {
        __m256 wv[4];
        deq.Chunk(c, wv);
        AccumulateChunk<NR>(wv, x, b * Deq::kElems + 32 * c, acc);
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(acc[r]);
  }
};

// The batch path: the fused kernel's Chunk registers stored to memory...
template <typename Deq>
CHAI_AVX2 void DequantRowImpl(const void* w_row, int64_t cols, float* out) {
  const auto* w = static_cast<const typename Deq::Block*>(w_row);
  const int64_t nb = cols / Deq::kElems;
  for (int64_t b = 0; b < nb; ++b) {
    const Deq deq(w[b]);
#pragma GCC unroll 8
    for (int c = 0; c < Deq::kElems / 32; ++c) {
      __m256 wv[4];
      deq.Chunk(c, wv);
      float* o = out + b * Deq::kElems + 32 * c;
#pragma GCC unroll 4
      for (int k = 0; k < 4; ++k) _mm256_storeu_ps(o + 8 * k, wv[k]);
    }
  }
}

// ...and loaded back for the same accumulation.
struct PreDequantKernel {
  template <int NR>
  CHAI_AVX2 static void Run(const void* w_row, const void* act, int64_t stride, int64_t cols,
                            float* out, int64_t out_stride) {
    const auto* w = static_cast<const float*>(w_row);
    const float* x[NR];
    __m256 acc[NR];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) {
      x[r] = RowPtr<float>(act, stride, r);
      acc[r] = _mm256_setzero_ps();
    }
    for (int64_t c = 0; c < cols; c += 32) {
      const __m256 wv[4] = {_mm256_loadu_ps(w + c), _mm256_loadu_ps(w + c + 8),
                            _mm256_loadu_ps(w + c + 16), _mm256_loadu_ps(w + c + 24)};
      AccumulateChunk<NR>(wv, x, c, acc);
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r) out[r * out_stride] = Hsum(acc[r]);
  }
};

template <typename Kernel>
constexpr auto Dispatch = DispatchTile<Kernel, kMaxTileDequant>;

}  // namespace

RowDotFn Avx2DequantRowDot(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return nullptr;
    case DType::kQ4_0:
      return Dispatch<DequantKernel<Legacy4<BlockQ4_0, false>>>;
    case DType::kQ4_1:
      return Dispatch<DequantKernel<Legacy4<BlockQ4_1, true>>>;
    case DType::kQ8_0:
      return Dispatch<DequantKernel<Q8>>;
    case DType::kQ4_K:
      return Dispatch<DequantKernel<Q45K<BlockQ4_K, false>>>;
    case DType::kQ5_K:
      return Dispatch<DequantKernel<Q45K<BlockQ5_K, true>>>;
    case DType::kQ6_K:
      return Dispatch<DequantKernel<Q6K>>;
  }
  return nullptr;
}

DequantRowFn Avx2DequantRow(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return nullptr;
    case DType::kQ4_0:
      return DequantRowImpl<Legacy4<BlockQ4_0, false>>;
    case DType::kQ4_1:
      return DequantRowImpl<Legacy4<BlockQ4_1, true>>;
    case DType::kQ8_0:
      return DequantRowImpl<Q8>;
    case DType::kQ4_K:
      return DequantRowImpl<Q45K<BlockQ4_K, false>>;
    case DType::kQ5_K:
      return DequantRowImpl<Q45K<BlockQ5_K, true>>;
    case DType::kQ6_K:
      return DequantRowImpl<Q6K>;
  }
  return nullptr;
}

RowDotFn Avx2PreDequantRowDot() { return Dispatch<PreDequantKernel>; }

}  // namespace chai::kernels::cpu::internal
