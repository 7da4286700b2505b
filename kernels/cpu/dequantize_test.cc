#include "kernels/cpu/dequantize.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chai::kernels::cpu {
namespace {

std::vector<char> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing golden file " << path
                         << " (regenerate: python3 tests/golden/make_quant_golden.py)";
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

std::string GoldenPath(const std::string& name) {
  return std::string(CHAI_SOURCE_DIR) + "/tests/golden/quant/" + name;
}

struct GoldenCase {
  const char* name;
  DType type;
};

class DequantizeGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

// gguf-py's dequantization of the same bytes, compared bit for bit: the
// dequantizer is the reference every other kernel is tested against.
TEST_P(DequantizeGoldenTest, MatchesGgufPyBitExactly) {
  const GoldenCase& c = GetParam();
  const std::vector<char> blocks = ReadFile(GoldenPath(std::string(c.name) + ".blocks"));
  const std::vector<char> golden = ReadFile(GoldenPath(std::string(c.name) + ".f32"));
  constexpr int64_t kRowElems = 512;
  const int64_t n = static_cast<int64_t>(golden.size() / sizeof(float));
  ASSERT_GT(n, 0);
  ASSERT_EQ(n % kRowElems, 0);
  const int64_t row_bytes = RowBytes(c.type, kRowElems);
  ASSERT_EQ(static_cast<int64_t>(blocks.size()), row_bytes * (n / kRowElems));

  std::vector<float> out(n);
  for (int64_t r = 0; r < n / kRowElems; ++r) {
    DequantizeRow(c.type, blocks.data() + r * row_bytes, out.data() + r * kRowElems, kRowElems);
  }
  int mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    float want;
    std::memcpy(&want, golden.data() + i * sizeof(float), sizeof(float));
    if (std::memcmp(&want, &out[i], sizeof(float)) != 0 && ++mismatches <= 5) {
      ADD_FAILURE() << c.name << " element " << i << ": got " << out[i] << " want " << want;
    }
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, DequantizeGoldenTest,
    ::testing::Values(GoldenCase{"F16", DType::kF16}, GoldenCase{"BF16", DType::kBF16},
                      GoldenCase{"Q4_0", DType::kQ4_0}, GoldenCase{"Q4_1", DType::kQ4_1},
                      GoldenCase{"Q8_0", DType::kQ8_0}, GoldenCase{"Q4_K", DType::kQ4_K},
                      GoldenCase{"Q5_K", DType::kQ5_K}, GoldenCase{"Q6_K", DType::kQ6_K}),
    [](const auto& info) { return std::string(info.param.name); });

// The encoders against numpy's float16 cast and gguf-py's bf16 rounding.
TEST(HalfEncodeTest, MatchesNumpyAndGgufPy) {
  for (const char* name : {"F16", "BF16"}) {
    const std::vector<char> src = ReadFile(GoldenPath(std::string(name) + ".src.f32"));
    const std::vector<char> want = ReadFile(GoldenPath(std::string(name) + ".blocks"));
    ASSERT_EQ(src.size(), want.size() * 2) << name;
    for (size_t i = 0; i < src.size() / 4; ++i) {
      float f;
      uint16_t w;
      std::memcpy(&f, src.data() + 4 * i, 4);
      std::memcpy(&w, want.data() + 2 * i, 2);
      const uint16_t got = std::string(name) == "F16" ? Fp32ToFp16(f) : Fp32ToBf16(f);
      ASSERT_EQ(got, w) << name << " element " << i << " value " << f;
    }
  }
}

TEST(HalfEncodeTest, Fp16RoundTripsEveryNonNanValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(f)))) << h;
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(HalfEncodeTest, Fp16RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(Fp32ToFp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7c00);  // rounds up to inf
  EXPECT_EQ(Fp32ToFp16(65519.0f), 0x7bff);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.5f, -25)), 0x0001);
}

}  // namespace
}  // namespace chai::kernels::cpu
