// GGML block layouts of the quantized weight types and a scalar reference
// dequantizer.
//
// The structs below mirror GGML's on-disk/in-memory blocks byte for byte, so a
// pointer into a GGUF tensor can be reinterpreted as an array of them. They are
// the single description of the formats in this tree: the matmul kernels
// (matmul*.cc) decode the same fields.
//
// Value of element i of a block (d, dmin: fp16 scales):
//   Q4_0: d * (nibble - 8)         nibble i<16: qs[i] & 15, i>=16: qs[i-16] >> 4
//   Q4_1: d * nibble + m           (same nibble order)
//   Q8_0: d * qs[i]
//   Q4_K: 8 sub-blocks of 32 with 6-bit (scale, min) pairs packed in scales[12];
//         d*scale_j * nibble - dmin*min_j. Sub-blocks 2g and 2g+1 share the 32
//         bytes qs[32g..32g+31] (low and high nibbles).
//   Q5_K: as Q4_K plus a fifth bit: bit j of qh[l] belongs to element l of
//         sub-block j.
//   Q6_K: 16 groups of 16 with int8 scales; 6-bit values q-32, low 4 bits in
//         ql, high 2 bits in qh (see DequantizeRow for the exact order).
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_DEQUANTIZE_H_
#define CHAI_KERNELS_CPU_DEQUANTIZE_H_

#include <cstdint>
#include <cstring>

#include "kernels/dtype.h"

namespace chai::kernels::cpu {

inline constexpr int kQK = 32;    // elements per legacy block (Q4_0, Q4_1, Q8_0)
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;  // fp16
  uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {
  uint16_t d;  // fp16
  uint16_t m;  // fp16
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK];
};
struct BlockQ4_K {
  uint16_t d;     // fp16, scale of the 6-bit scales
  uint16_t dmin;  // fp16, scale of the 6-bit mins
  uint8_t scales[12];
  uint8_t qs[kQKK / 2];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;  // fp16
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// IEEE half -> float, exact for every input (subnormals, inf, NaN payloads).
inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: normalise into a float exponent.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// float -> IEEE half, round to nearest even; overflow gives inf, NaN stays NaN.
uint16_t Fp32ToFp16(float f);

inline float Bf16ToFp32(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// float -> bfloat16, round to nearest even, NaN forced quiet (as GGML does).
inline uint16_t Fp32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 64);
  return static_cast<uint16_t>((bits + (0x7fffu + ((bits >> 16) & 1))) >> 16);
}

// Unpacks the j-th (0..7) 6-bit scale and min of a Q4_K/Q5_K super-block.
inline void KScaleMin(const uint8_t* scales, int j, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}

// Writes the n float values of a row stored in `type` at `src` into dst[n].
// Produces exactly the float32 values gguf-py's dequantize produces.
// REQUIRES: n is a multiple of Info(type).block_elems; src holds
// RowBytes(type, n) bytes.
void DequantizeRow(DType type, const void* src, float* dst, int64_t n);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_DEQUANTIZE_H_
