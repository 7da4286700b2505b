// Portable matmul kernels and activation quantization. These define the
// arithmetic; the AVX2 kernels (matmul_avx2*.cc) compute the same integer dot
// products. The int8 kernels differ from them in the order of the float
// accumulation; the float-activation kernels of the quantized types
// (RowDotDequant) and the int16 kernels (DotInt16) follow orders documented in
// matmul_kernels.h, which the AVX2 kernels share (bit for bit for int16).
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

// Fixed reduction tree of 8 partial sums; the same tree as an AVX2
// horizontal add of one 8-lane register.
inline float Reduce8(const float* a) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

template <typename T, float (*kToFloat)(T)>
float DotFloat(const T* w, const float* x, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += kToFloat(w[i + k]) * x[i + k];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += kToFloat(w[i]) * x[i];
  return Reduce8(acc) + tail;
}

inline float F32Id(float v) { return v; }

float DotQ4_0(const BlockQ4_0* w, const BlockQ8x32* x, int64_t nb) {
  float acc = 0.0f, off = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int l = 0; l < kQK / 2; ++l) {
      isum += (w[b].qs[l] & 0x0f) * x[b].qs[l] + (w[b].qs[l] >> 4) * x[b].qs[l + kQK / 2];
    }
    const float dw = Fp16ToFp32(w[b].d);
    acc += (dw * x[b].d) * static_cast<float>(isum);
    off += dw * x[b].s;  // the -8 offset: sum of 8 * dw * x
  }
  return acc - 8.0f * off;
}

float DotQ4_1(const BlockQ4_1* w, const BlockQ8x32* x, int64_t nb) {
  float acc = 0.0f, mins = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int l = 0; l < kQK / 2; ++l) {
      isum += (w[b].qs[l] & 0x0f) * x[b].qs[l] + (w[b].qs[l] >> 4) * x[b].qs[l + kQK / 2];
    }
    acc += (Fp16ToFp32(w[b].d) * x[b].d) * static_cast<float>(isum);
    mins += Fp16ToFp32(w[b].m) * x[b].s;
  }
  return acc + mins;
}

float DotQ8_0(const BlockQ8_0* w, const BlockQ8x32* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t isum = 0;
    for (int l = 0; l < kQK; ++l) isum += w[b].qs[l] * x[b].qs[l];
    acc += (Fp16ToFp32(w[b].d) * x[b].d) * static_cast<float>(isum);
  }
  return acc;
}

// Q4_K and Q5_K share everything but the fifth bit.
template <typename Block, bool kFiveBit>
float DotQ45_K(const Block* w, const BlockQ8xK* x, int64_t nb) {
  float acc = 0.0f, mins = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      KScaleMin(w[b].scales, j, &sc, &m);
      const uint8_t* q = w[b].qs + 32 * (j / 2);
      const int8_t* a = x[b].qs + 32 * j;
      int32_t isum = 0;
      for (int l = 0; l < 32; ++l) {
        int v = (j & 1) ? (q[l] >> 4) : (q[l] & 0x0f);
        if constexpr (kFiveBit) {
          v |= ((w[b].qh[l] >> j) & 1) << 4;
        }
        isum += v * a[l];
      }
      sumi += sc * isum;
      summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
    }
    acc += (Fp16ToFp32(w[b].d) * x[b].d) * static_cast<float>(sumi);
    mins += (Fp16ToFp32(w[b].dmin) * x[b].d) * static_cast<float>(summ);
  }
  return acc - mins;
}

float DotQ6_K(const BlockQ6_K* w, const BlockQ8xK* x, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    int32_t sumi = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w[b].ql + 64 * h;
      const uint8_t* qh = w[b].qh + 32 * h;
      const int8_t* a = x[b].qs + 128 * h;
      int32_t group[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // 16-element groups of the half
      for (int l = 0; l < 32; ++l) {
        const int q0 = (ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4);
        const int q1 = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
        const int q2 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
        const int q3 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        group[0 + l / 16] += (q0 - 32) * a[l];
        group[2 + l / 16] += (q1 - 32) * a[l + 32];
        group[4 + l / 16] += (q2 - 32) * a[l + 64];
        group[6 + l / 16] += (q3 - 32) * a[l + 96];
      }
      for (int g = 0; g < 8; ++g) sumi += w[b].scales[8 * h + g] * group[g];
    }
    acc += (Fp16ToFp32(w[b].d) * x[b].d) * static_cast<float>(sumi);
  }
  return acc;
}

// 16-bit activations: the integer block dot product of the weights' integer
// values (Q4_0 nibble - 8, Q4_1 nibble, Q8_0 q) with qs, then the float
// part in the order matmul_kernels.h fixes, which the AVX2 kernel shares bit
// for bit.
template <typename WBlock, int kKind>
float DotInt16(const WBlock* w, Q16RowConst x, int64_t nb) {
  float acc[kQ16Lanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  float tail = 0.0f;
  const int64_t full = nb / kQ16Lanes * kQ16Lanes;
  for (int64_t b = 0; b < nb; ++b) {
    const int16_t* q = x.qs + b * kQK;
    int32_t isum = 0;
    if constexpr (kKind == 2) {
      for (int l = 0; l < kQK; ++l) isum += w[b].qs[l] * q[l];
    } else {
      constexpr int kOff = kKind == 0 ? 8 : 0;
      for (int l = 0; l < kQK / 2; ++l) {
        isum += ((w[b].qs[l] & 0x0f) - kOff) * q[l] + ((w[b].qs[l] >> 4) - kOff) * q[l + kQK / 2];
      }
    }
    float& a = b < full ? acc[b % kQ16Lanes] : tail;
    a = std::fma(static_cast<float>(isum), Fp16ToFp32(w[b].d) * x.d[b], a);
    if constexpr (kKind == 1) a = std::fma(Fp16ToFp32(w[b].m), x.s[b], a);
  }
  return Reduce8(acc) + tail;
}

template <typename WBlock, int kKind>
void RowDotInt16(const void* w_row, const void* act, int64_t act_stride, int nr, int64_t cols,
                 float* out, int64_t out_stride) {
  const auto* w = static_cast<const WBlock*>(w_row);
  const int64_t nb = cols / kQK;
  for (int r = 0; r < nr; ++r) {
    out[r * out_stride] = DotInt16<WBlock, kKind>(
        w, Q16RowAt(static_cast<const char*>(act) + r * act_stride, nb), nb);
  }
}

// 16-bit activations against row-interleaved weights (interleave.h): row r
// of the group, one accumulator per output, blocks in order (the order
// matmul_kernels.h fixes, shared bit for bit with the AVX2 kernel).
template <typename WBlock8, int kKind>
void GroupDotInt16(const void* w_group, const void* act, int64_t act_stride, int nr, int64_t cols,
                   float* out, int64_t out_stride) {
  const auto* w = static_cast<const WBlock8*>(w_group);
  const int64_t nb = cols / kQK;
  for (int i = 0; i < nr; ++i) {
    const Q16RowConst x = Q16RowAt(static_cast<const char*>(act) + i * act_stride, nb);
    for (int r = 0; r < kInterleave; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const int16_t* q = x.qs + b * kQK;
        int32_t isum = 0;
        for (int k = 0; k < kQK; ++k) {
          int wq;
          if constexpr (kKind == 2) {
            wq = w[b].qs[16 * (k / 2) + 2 * r + k % 2];
          } else {
            const uint8_t byte = w[b].qs[16 * (k / 4) + 2 * r + k % 2];
            wq = (k % 4 < 2 ? byte & 0x0f : byte >> 4) - (kKind == 0 ? 8 : 0);
          }
          isum += wq * q[k];
        }
        acc = std::fma(static_cast<float>(isum), Fp16ToFp32(w[b].d[r]) * x.d[b], acc);
        if constexpr (kKind == 1) acc = std::fma(Fp16ToFp32(w[b].m[r]), x.s[b], acc);
      }
      out[i * out_stride + r] = acc;
    }
  }
}

template <typename WBlock, typename ABlock, float (*kDot)(const WBlock*, const ABlock*, int64_t),
          int kElems>
void RowDotQuant(const void* w_row, const void* act, int64_t act_stride, int nr, int64_t cols,
                 float* out, int64_t out_stride) {
  const auto* w = static_cast<const WBlock*>(w_row);
  for (int r = 0; r < nr; ++r) {
    const auto* x = reinterpret_cast<const ABlock*>(static_cast<const char*>(act) + r * act_stride);
    out[r * out_stride] = kDot(w, x, cols / kElems);
  }
}

template <typename T, float (*kToFloat)(T)>
void RowDotFloat(const void* w_row, const void* act, int64_t act_stride, int nr, int64_t cols,
                 float* out, int64_t out_stride) {
  const auto* w = static_cast<const T*>(w_row);
  for (int r = 0; r < nr; ++r) {
    const auto* x = reinterpret_cast<const float*>(static_cast<const char*>(act) + r * act_stride);
    out[r * out_stride] = DotFloat<T, kToFloat>(w, x, cols);
  }
}

// Float activations against quantized weights: each block is dequantized
// once (DequantizeRow, so exactly the reference values) and used by all nr
// rows; per 32-element chunk an 8-lane partial sum, added to the row's 8-lane
// accumulator (the order in matmul_kernels.h).
template <DType kType>
void RowDotDequant(const void* w_row, const void* act, int64_t act_stride, int nr, int64_t cols,
                   float* out, int64_t out_stride) {
  constexpr int64_t kElems =
      kType == DType::kQ4_0 || kType == DType::kQ4_1 || kType == DType::kQ8_0 ? kQK : kQKK;
  if (nr > kMaxTileDequant) std::abort();
  const int64_t block_bytes = Info(kType).block_bytes;
  float acc[kMaxTileDequant][8] = {};
  float w[kElems];
  for (int64_t b = 0; b < cols / kElems; ++b) {
    DequantizeRow(kType, static_cast<const char*>(w_row) + b * block_bytes, w, kElems);
    for (int r = 0; r < nr; ++r) {
      const float* x =
          reinterpret_cast<const float*>(static_cast<const char*>(act) + r * act_stride) +
          b * kElems;
      for (int64_t c = 0; c < kElems; c += 32) {
        float p[8];
        for (int k = 0; k < 8; ++k) p[k] = w[c + k] * x[c + k];
        for (int g = 1; g < 4; ++g) {
          for (int k = 0; k < 8; ++k) p[k] += w[c + 8 * g + k] * x[c + 8 * g + k];
        }
        for (int k = 0; k < 8; ++k) acc[r][k] += p[k];
      }
    }
  }
  for (int r = 0; r < nr; ++r) out[r * out_stride] = Reduce8(acc[r]);
}

}  // namespace

ActFormat ActFormatFor(DType t, ActivationMode mode) {
  if (mode == ActivationMode::kFloat) return ActFormat::kF32;
  if (mode == ActivationMode::kInt16) {
    const bool legacy = t == DType::kQ4_0 || t == DType::kQ4_1 || t == DType::kQ8_0;
    return legacy ? ActFormat::kQ16x32 : ActFormat::kF32;
  }
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return ActFormat::kF32;
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ8_0:
      return ActFormat::kQ8x32;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      return ActFormat::kQ8xK;
  }
  std::abort();
}

int64_t ActRowBytes(ActFormat f, int64_t cols) {
  switch (f) {
    case ActFormat::kF32:
      return cols * static_cast<int64_t>(sizeof(float));
    case ActFormat::kQ8x32:
      return cols / kQK * static_cast<int64_t>(sizeof(BlockQ8x32));
    case ActFormat::kQ8xK:
      return cols / kQKK * static_cast<int64_t>(sizeof(BlockQ8xK));
    case ActFormat::kQ16x32:
      return cols / kQK * (kQK * static_cast<int64_t>(sizeof(int16_t)) + 2 * sizeof(float));
  }
  std::abort();
}

namespace {

// Returns d and writes qs[n] with x ~= d * qs.
float QuantizeBlock(const float* x, int n, int8_t* qs) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * id);
    qs[i] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
  }
  return d;
}

}  // namespace

void QuantizeActRow(ActFormat f, const float* x, int64_t cols, void* out) {
  switch (f) {
    case ActFormat::kF32:
      std::copy(x, x + cols, static_cast<float*>(out));
      return;
    case ActFormat::kQ8x32: {
      auto* blocks = static_cast<BlockQ8x32*>(out);
      for (int64_t b = 0; b < cols / kQK; ++b) {
        BlockQ8x32& blk = blocks[b];
        blk.d = QuantizeBlock(x + b * kQK, kQK, blk.qs);
        int32_t sum = 0;
        for (int i = 0; i < kQK; ++i) sum += blk.qs[i];
        blk.s = blk.d * static_cast<float>(sum);
      }
      return;
    }
    case ActFormat::kQ16x32: {
      // amax / 32767 and its reciprocal, product and rounding in this order:
      // Avx2QuantizeActRow does the same operations, so both give the same
      // bits.
      const int64_t nb = cols / kQK;
      const Q16Row row = Q16RowAt(out, nb);
      for (int64_t b = 0; b < nb; ++b) {
        const float* xb = x + b * kQK;
        int16_t* qs = row.qs + b * kQK;
        float amax = 0.0f;
        for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(xb[i]));
        const float d = amax / 32767.0f;
        const float id = amax != 0.0f ? 32767.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < kQK; ++i) {
          // Saturates like the AVX2 pack; NaN (from non-finite input) maps to
          // -32768 as the AVX2 conversion does.
          float v = std::nearbyint(xb[i] * id);
          v = v >= -32768.0f ? std::min(v, 32767.0f) : -32768.0f;
          qs[i] = static_cast<int16_t>(v);
          sum += qs[i];
        }
        row.d[b] = d;
        row.s[b] = d * static_cast<float>(sum);
      }
      return;
    }
    case ActFormat::kQ8xK: {
      auto* blocks = static_cast<BlockQ8xK*>(out);
      for (int64_t b = 0; b < cols / kQKK; ++b) {
        BlockQ8xK& blk = blocks[b];
        blk.d = QuantizeBlock(x + b * kQKK, kQKK, blk.qs);
        for (int g = 0; g < kQKK / 16; ++g) {
          int32_t sum = 0;
          for (int i = 0; i < 16; ++i) sum += blk.qs[16 * g + i];
          blk.bsums[g] = static_cast<int16_t>(sum);
        }
      }
      return;
    }
  }
}

RowDotFn ScalarRowDot(DType t) {
  switch (t) {
    case DType::kF32:
      return RowDotFloat<float, F32Id>;
    case DType::kF16:
      return RowDotFloat<uint16_t, Fp16ToFp32>;
    case DType::kBF16:
      return RowDotFloat<uint16_t, Bf16ToFp32>;
    case DType::kQ4_0:
      return RowDotQuant<BlockQ4_0, BlockQ8x32, DotQ4_0, kQK>;
    case DType::kQ4_1:
      return RowDotQuant<BlockQ4_1, BlockQ8x32, DotQ4_1, kQK>;
    case DType::kQ8_0:
      return RowDotQuant<BlockQ8_0, BlockQ8x32, DotQ8_0, kQK>;
    case DType::kQ4_K:
      return RowDotQuant<BlockQ4_K, BlockQ8xK, DotQ45_K<BlockQ4_K, false>, kQKK>;
    case DType::kQ5_K:
      return RowDotQuant<BlockQ5_K, BlockQ8xK, DotQ45_K<BlockQ5_K, true>, kQKK>;
    case DType::kQ6_K:
      return RowDotQuant<BlockQ6_K, BlockQ8xK, DotQ6_K, kQKK>;
  }
  std::abort();
}

RowDotFn ScalarDequantRowDot(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      return nullptr;
    case DType::kQ4_0:
      return RowDotDequant<DType::kQ4_0>;
    case DType::kQ4_1:
      return RowDotDequant<DType::kQ4_1>;
    case DType::kQ8_0:
      return RowDotDequant<DType::kQ8_0>;
    case DType::kQ4_K:
      return RowDotDequant<DType::kQ4_K>;
    case DType::kQ5_K:
      return RowDotDequant<DType::kQ5_K>;
    case DType::kQ6_K:
      return RowDotDequant<DType::kQ6_K>;
  }
  std::abort();
}

RowDotFn ScalarInt16RowDot(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return RowDotInt16<BlockQ4_0, 0>;
    case DType::kQ4_1:
      return RowDotInt16<BlockQ4_1, 1>;
    case DType::kQ8_0:
      return RowDotInt16<BlockQ8_0, 2>;
    default:
      return nullptr;
  }
}

RowDotFn ScalarInt16GroupDot(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return GroupDotInt16<BlockQ4_0x8, 0>;
    case DType::kQ4_1:
      return GroupDotInt16<BlockQ4_1x8, 1>;
    case DType::kQ8_0:
      return GroupDotInt16<BlockQ8_0x8, 2>;
    default:
      return nullptr;
  }
}

}  // namespace chai::kernels::cpu::internal
