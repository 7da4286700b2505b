// Fp32ToFp16Row (half_row.h): the F16C form against the portable
// Fp32ToFp16, bit for bit, over a sweep of every float bit pattern class.
#include "kernels/cpu/half_row.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu {
namespace {

// Every 4099th bit pattern (odd stride: all exponents, signs and low
// mantissa bits get hit, ~1M values) plus the edges: zeros, the half
// range's overflow threshold, subnormal halves and their rounding ties,
// infinities, quiet and signalling NaNs with payloads.
std::vector<float> Sweep() {
  std::vector<uint32_t> bits;
  for (uint64_t b = 0; b <= 0xffffffffu; b += 4099) bits.push_back(static_cast<uint32_t>(b));
  for (uint32_t b : {0x00000000u, 0x80000000u, 0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477fffffu,
                     0x33800000u, 0x33000000u, 0x33000001u, 0x337fffffu, 0x387fc000u, 0x387fe000u,
                     0x38800000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u,
                     0x7fbfffffu, 0xff812345u, 0x00000001u, 0x007fffffu}) {
    bits.push_back(b);
  }
  std::vector<float> f(bits.size());
  std::memcpy(f.data(), bits.data(), bits.size() * sizeof(float));
  return f;
}

TEST(HalfRowTest, F16cMatchesPortableBitForBit) {
  if (!internal::CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2+FMA+F16C on this CPU";
  const std::vector<float> src = Sweep();
  std::vector<uint16_t> fast(src.size()), portable(src.size());
  Fp32ToFp16Row(src.data(), static_cast<int64_t>(src.size()), fast.data());
  Fp32ToFp16Row(src.data(), static_cast<int64_t>(src.size()), portable.data(),
                /*allow_f16c=*/false);
  int64_t nans = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    uint32_t b;
    std::memcpy(&b, &src[i], sizeof(b));
    nans += (b & 0x7fffffffu) > 0x7f800000u;
    ASSERT_EQ(fast[i], portable[i]) << "float bits 0x" << std::hex << b;
  }
  EXPECT_GT(nans, 1000);  // the sweep reaches NaN payloads
}

TEST(HalfRowTest, PortableRowIsTheScalarConversion) {
  const std::vector<float> src = {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 1e-8f, 3.14159f};
  std::vector<uint16_t> got(src.size());
  Fp32ToFp16Row(src.data(), static_cast<int64_t>(src.size()), got.data(), /*allow_f16c=*/false);
  const std::vector<uint16_t> want = {0x0000, 0x8000, 0x3c00, 0x7bff, 0x7c00, 0x0000, 0x4248};
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace chai::kernels::cpu
