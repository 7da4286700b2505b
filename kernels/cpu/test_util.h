// Test-only helpers shared by the kernels/cpu tests and benchmark: random
// valid weight bytes for every DType and a float64 reference matmul.
#ifndef CHAI_KERNELS_CPU_TEST_UTIL_H_
#define CHAI_KERNELS_CPU_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/dequantize.h"
#include "kernels/dtype.h"

namespace chai::kernels::cpu::testing {

// Random bytes for a [rows, cols] weight in `t`: every quant bit random, fp16
// scales uniform in a sane range (so values are O(1) and never inf/NaN).
inline std::vector<uint8_t> RandomWeightBytes(DType t, int64_t rows, int64_t cols,
                                              std::mt19937& rng) {
  const int64_t row_bytes = RowBytes(t, cols);
  std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes * rows));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.005f, 0.05f);
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(&bytes[off], &v, 2); };
  if (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16) {
    for (int64_t i = 0; i < rows * cols; ++i) {
      const float v = normal(rng);
      if (t == DType::kF32) std::memcpy(&bytes[4 * i], &v, 4);
      if (t == DType::kF16) put16(2 * i, Fp32ToFp16(v));
      if (t == DType::kBF16) put16(2 * i, Fp32ToBf16(v));
    }
    return bytes;
  }
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(byte(rng));
  const int64_t block_bytes = Info(t).block_bytes;
  for (size_t off = 0; off < bytes.size(); off += block_bytes) {
    switch (t) {
      case DType::kQ4_0:
      case DType::kQ8_0:
        put16(off, Fp32ToFp16(scale(rng)));
        break;
      case DType::kQ4_1:
        put16(off, Fp32ToFp16(scale(rng)));
        put16(off + 2, Fp32ToFp16(-8.0f * scale(rng)));
        break;
      case DType::kQ4_K:
      case DType::kQ5_K:
        put16(off, Fp32ToFp16(scale(rng) / 16.0f));
        put16(off + 2, Fp32ToFp16(scale(rng) / 16.0f));
        break;
      case DType::kQ6_K:
        put16(off + block_bytes - 2, Fp32ToFp16(scale(rng) / 64.0f));
        break;
      default:
        break;
    }
  }
  return bytes;
}

inline std::vector<float> RandomFloats(int64_t n, std::mt19937& rng, float stddev = 1.0f) {
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& f : v) f = normal(rng);
  return v;
}

// Dequantized weights as floats: [rows, cols].
inline std::vector<float> DequantizeMatrix(DType t, const void* data, int64_t rows, int64_t cols) {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  const int64_t row_bytes = RowBytes(t, cols);
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(t, static_cast<const char*>(data) + r * row_bytes, &w[r * cols], cols);
  }
  return w;
}

}  // namespace chai::kernels::cpu::testing

#endif  // CHAI_KERNELS_CPU_TEST_UTIL_H_
