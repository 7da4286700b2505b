#include "kernels/cpu/fast_exp.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu {
namespace {

// Distance in units in the last place between two finite floats of the same sign.
int64_t UlpDistance(float a, float b) {
  return std::abs(int64_t{std::bit_cast<int32_t>(a)} - int64_t{std::bit_cast<int32_t>(b)});
}

std::vector<float> SweepInputs() {
  std::vector<float> xs;
  for (float x = -87.0f; x <= 88.0f; x += 0.001953125f) xs.push_back(x);  // 2^-9 steps
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-87.0f, 88.0f);
  for (int i = 0; i < 100000; ++i) xs.push_back(u(rng));
  for (float x : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, 0.5f, -0.5f, 1.0f, -1.0f}) xs.push_back(x);
  return xs;
}

// Within 2 ulp of the correctly rounded exp (std::exp in double, rounded)
// over the whole clamp range.
TEST(FastExpTest, WithinTwoUlpOfExp) {
  int64_t worst = 0;
  float worst_x = 0;
  for (float x : SweepInputs()) {
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    const int64_t d = UlpDistance(FastExp(x), want);
    if (d > worst) {
      worst = d;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 2) << "at x = " << worst_x;
}

// Outside the range: clamped, never inf, NaN or a denormal-flushed garbage.
TEST(FastExpTest, ClampsOutsideTheRange) {
  const float lo = static_cast<float>(std::exp(-87.0));
  const float hi = static_cast<float>(std::exp(88.0));
  for (float x : {-88.0f, -100.0f, -1e30f, -std::numeric_limits<float>::infinity()}) {
    EXPECT_LE(UlpDistance(FastExp(x), lo), 2) << x;
  }
  for (float x : {89.0f, 1e30f, std::numeric_limits<float>::infinity()}) {
    EXPECT_LE(UlpDistance(FastExp(x), hi), 2) << x;
  }
  EXPECT_TRUE(std::isfinite(FastExp(std::nanf(""))));
}

// The 8-lane form gives the scalar form's bits for every input, NaN and
// infinities included.
TEST(FastExpTest, Avx2IsBitIdenticalToScalar) {
  if (!internal::CpuHasAvx2Fma()) GTEST_SKIP() << "CPU has no AVX2+FMA";
  std::vector<float> xs = SweepInputs();
  for (float x : {-88.0f, -1e30f, 89.0f, 1e30f, std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity(), std::nanf("")}) {
    xs.push_back(x);
  }
  while (xs.size() % 8 != 0) xs.push_back(0.25f);
  std::vector<float> got(xs.size());
  [&]() __attribute__((target("avx2,fma"))) {
    for (size_t i = 0; i < xs.size(); i += 8) {
      _mm256_storeu_ps(&got[i], FastExp8(_mm256_loadu_ps(&xs[i])));
    }
  }
  ();
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(FastExp(xs[i])))
        << "x = " << xs[i];
  }
}

}  // namespace
}  // namespace chai::kernels::cpu
