#include "kernels/cpu/dequantize.h"

#include <cmath>
#include <cstdlib>

namespace chai::kernels::cpu {

uint16_t Fp32ToFp16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof(x));
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) {  // inf or NaN (keep NaN quiet and non-zero)
    return sign | 0x7c00 | (x > 0x7f800000u ? 0x200 | ((x >> 13) & 0x3ff) : 0);
  }
  if (x >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to inf
  if (x < 0x38800000u) {
    // Below the smallest normal half: the result is a multiple of 2^-24, and
    // scaling by 2^24 is exact, so nearbyint gives round-to-nearest-even.
    float a;
    std::memcpy(&a, &x, sizeof(a));
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  x += 0xfffu + ((x >> 13) & 1);  // round to nearest even; carries into exponent
  return sign | static_cast<uint16_t>((x - 0x38000000u) >> 13);
}

namespace {

// Each helper writes one block. Arithmetic mirrors gguf-py's float32 order
// ((d*scale)*q - dmin*min) so results are bit-identical to it.

void DequantQ4_0(const BlockQ4_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int l = 0; l < kQK / 2; ++l) {
    y[l] = d * static_cast<float>((b.qs[l] & 0x0f) - 8);
    y[l + kQK / 2] = d * static_cast<float>((b.qs[l] >> 4) - 8);
  }
}

void DequantQ4_1(const BlockQ4_1& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  const float m = Fp16ToFp32(b.m);
  for (int l = 0; l < kQK / 2; ++l) {
    const float lo = d * static_cast<float>(b.qs[l] & 0x0f);
    const float hi = d * static_cast<float>(b.qs[l] >> 4);
    y[l] = lo + m;
    y[l + kQK / 2] = hi + m;
  }
}

void DequantQ8_0(const BlockQ8_0& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int l = 0; l < kQK; ++l) y[l] = static_cast<float>(b.qs[l]) * d;
}

void DequantQ4_K(const BlockQ4_K& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  const float dmin = Fp16ToFp32(b.dmin);
  for (int g = 0; g < 4; ++g) {  // pairs of 32-element sub-blocks
    const uint8_t* q = b.qs + 32 * g;
    for (int half = 0; half < 2; ++half) {
      const int j = 2 * g + half;
      uint8_t sc, m;
      KScaleMin(b.scales, j, &sc, &m);
      const float ds = d * static_cast<float>(sc);
      const float dm = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int v = half == 0 ? (q[l] & 0x0f) : (q[l] >> 4);
        const float scaled = ds * static_cast<float>(v);
        y[32 * j + l] = scaled - dm;
      }
    }
  }
}

void DequantQ5_K(const BlockQ5_K& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  const float dmin = Fp16ToFp32(b.dmin);
  for (int g = 0; g < 4; ++g) {
    const uint8_t* q = b.qs + 32 * g;
    for (int half = 0; half < 2; ++half) {
      const int j = 2 * g + half;
      uint8_t sc, m;
      KScaleMin(b.scales, j, &sc, &m);
      const float ds = d * static_cast<float>(sc);
      const float dm = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) {
        const int lo = half == 0 ? (q[l] & 0x0f) : (q[l] >> 4);
        const int v = lo | (((b.qh[l] >> j) & 1) << 4);
        const float scaled = ds * static_cast<float>(v);
        y[32 * j + l] = scaled - dm;
      }
    }
  }
}

void DequantQ6_K(const BlockQ6_K& b, float* y) {
  const float d = Fp16ToFp32(b.d);
  for (int h = 0; h < 2; ++h) {  // two halves of 128 elements
    const uint8_t* ql = b.ql + 64 * h;
    const uint8_t* qh = b.qh + 32 * h;
    const int8_t* sc = b.scales + 8 * h;
    float* yh = y + 128 * h;
    for (int l = 0; l < 32; ++l) {
      const int q[4] = {
          ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32,
          ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32,
          ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32,
          ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32,
      };
      for (int k = 0; k < 4; ++k) {
        // Element 32k+l of the half lies in 16-group 2k + l/16.
        const float ds = d * static_cast<float>(sc[2 * k + l / 16]);
        yh[32 * k + l] = ds * static_cast<float>(q[k]);
      }
    }
  }
}

template <typename Block, void (*kFn)(const Block&, float*), int kElems>
void DequantBlocks(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const Block*>(src);
  for (int64_t i = 0; i < n / kElems; ++i) kFn(blocks[i], dst + i * kElems);
}

}  // namespace

void DequantizeRow(DType type, const void* src, float* dst, int64_t n) {
  switch (type) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Fp16ToFp32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToFp32(h[i]);
      return;
    }
    case DType::kQ4_0:
      return DequantBlocks<BlockQ4_0, DequantQ4_0, kQK>(src, dst, n);
    case DType::kQ4_1:
      return DequantBlocks<BlockQ4_1, DequantQ4_1, kQK>(src, dst, n);
    case DType::kQ8_0:
      return DequantBlocks<BlockQ8_0, DequantQ8_0, kQK>(src, dst, n);
    case DType::kQ4_K:
      return DequantBlocks<BlockQ4_K, DequantQ4_K, kQKK>(src, dst, n);
    case DType::kQ5_K:
      return DequantBlocks<BlockQ5_K, DequantQ5_K, kQKK>(src, dst, n);
    case DType::kQ6_K:
      return DequantBlocks<BlockQ6_K, DequantQ6_K, kQKK>(src, dst, n);
  }
  std::abort();  // DType values only come from LookupDType.
}

}  // namespace chai::kernels::cpu
