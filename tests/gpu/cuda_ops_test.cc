// Every non-attention op of the CUDA backend against the CPU backend on fresh
// random inputs (seed printed by gtest's --gtest_random_seed is not used: each
// test draws its own seed from the clock and records it).
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace chai::testing {
namespace {

using kernels::DType;
using kernels::WeightView;

uint32_t FreshSeed() {
  const uint32_t seed =
      static_cast<uint32_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  ::testing::Test::RecordProperty("seed", static_cast<int>(seed & 0x7fffffff));
  return seed;
}

class CudaOpsTest : public CudaVsCpuTest {};

// fp16 has an 11-bit significand: rounding one value is within 2^-11
// relative (2^-12 to nearest; the bound keeps a factor of 2).
constexpr double kHalfUlp = 1.0 / 2048;

TEST_F(CudaOpsTest, EmbedEveryTableType) {
  std::mt19937 rng(FreshSeed());
  const int64_t rows = 300, cols = 512;
  std::vector<int32_t> ids = {0, 299, 17, 17, 150, 3, 298};
  const int32_t n = static_cast<int32_t>(ids.size());
  for (DType t : {DType::kF16, DType::kF32, DType::kBF16, DType::kQ4_1, DType::kQ8_0, DType::kQ4_K,
                  DType::kQ6_K}) {
    SCOPED_TRACE(kernels::Name(t));
    const std::vector<uint8_t> bytes = kernels::cpu::testing::RandomWeightBytes(t, rows, cols, rng);
    const WeightView host{t, rows, cols, bytes.data()};
    absl::StatusOr<kernels::PreparedWeight> g =
        gpu_->PrepareWeight(host, kernels::WeightUse::kEmbed);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(g->view.dtype, DType::kF16);
    auto gids = Put(*gpu_, ids);
    auto gout = Put(*gpu_, std::vector<float>(n * cols, NAN));
    gpu_->Embed(g->view, I(gids), n, F(gout));
    std::vector<float> want(n * cols);
    cpu_->Embed(host, ids.data(), n, want.data());
    const std::vector<float> got = Get<float>(*gpu_, *gout, n * cols);
    // F16 tables are exact; others are rounded to fp16 once.
    const double bound = t == DType::kF16 ? 0.0 : kHalfUlp;
    EXPECT_LE(RelErr(got, want), bound);
    for (size_t i = 0; i < want.size(); ++i) {
      // Plus half of fp16's smallest subnormal step, for values near zero.
      ASSERT_LE(std::fabs(got[i] - want[i]), bound * std::fabs(want[i]) + 0x1p-25) << i;
    }
  }
}

TEST_F(CudaOpsTest, RmsNormMatchesCpu) {
  std::mt19937 rng(FreshSeed());
  for (int32_t dim : {576, 4096, 37}) {
    const int32_t n = 9;
    std::vector<float> x = kernels::cpu::testing::RandomFloats(int64_t{n} * dim, rng, 3.0f);
    std::vector<float> w = kernels::cpu::testing::RandomFloats(dim, rng);
    std::vector<float> want(x.size());
    cpu_->RmsNorm(x.data(), w.data(), n, dim, 1e-5f, want.data());
    auto gx = Put(*gpu_, x), gw = Put(*gpu_, w);
    gpu_->RmsNorm(F(gx), F(gw), n, dim, 1e-5f, F(gx));  // in place, as the runner may
    // Same formula in float; only the sum of squares' order differs: a few
    // float roundings, far below 1e-5.
    EXPECT_LE(RelErr(Get<float>(*gpu_, *gx, x.size()), want), 1e-5) << "dim " << dim;
  }
}

TEST_F(CudaOpsTest, MatMulEveryWeightTypeAndBatch) {
  std::mt19937 rng(FreshSeed());
  struct Case {
    DType t;
    int64_t rows, cols;
  };
  for (const Case& c :
       {Case{DType::kF16, 1536, 576}, Case{DType::kF32, 576, 1536}, Case{DType::kQ4_1, 192, 576},
        Case{DType::kQ8_0, 96, 4096}, Case{DType::kQ4_K, 256, 512}, Case{DType::kQ6_K, 130, 256},
        Case{DType::kBF16, 33, 96}}) {
    const std::vector<uint8_t> bytes =
        kernels::cpu::testing::RandomWeightBytes(c.t, c.rows, c.cols, rng);
    const WeightView host{c.t, c.rows, c.cols, bytes.data()};
    absl::StatusOr<kernels::PreparedWeight> g =
        gpu_->PrepareWeight(host, kernels::WeightUse::kMatMul);
    ASSERT_TRUE(g.ok()) << g.status();
    for (int32_t m : {1, 7, 64, 200}) {
      SCOPED_TRACE(absl::StrCat(kernels::Name(c.t), " ", c.rows, "x", c.cols, " m=", m));
      std::vector<float> x = kernels::cpu::testing::RandomFloats(m * c.cols, rng);
      std::vector<float> want(m * c.rows);
      cpu_->MatMul(host, x.data(), m, want.data());
      auto gx = Put(*gpu_, x);
      auto gy = Put(*gpu_, std::vector<float>(want.size(), NAN));
      gpu_->MatMul(g->view, F(gx), m, F(gy));
      // fp16 activations (and weights, unless F16) round each product's
      // inputs by <= 2^-11; with fp32 accumulation over random signs the
      // norm-wise error stays near that. 2e-3 is 4 such roundings.
      EXPECT_LE(RelErr(Get<float>(*gpu_, *gy, want.size()), want), 2e-3);
    }
  }
}

// Products of up to 8 rows take the GEMV kernel (kernels/cuda/gemv.cu): each
// row's bits are the same whatever else is in the call, and a width that is
// not a multiple of 8 falls back to cuBLAS. Both against the CPU.
TEST_F(CudaOpsTest, SmallBatchMatMulRowsDoNotDependOnTheBatch) {
  std::mt19937 rng(FreshSeed());
  for (const auto& [rows, cols] :
       {std::pair<int64_t, int64_t>{1003, 4096}, {77, 11008}, {40, 12}}) {
    const std::vector<uint8_t> bytes =
        kernels::cpu::testing::RandomWeightBytes(DType::kF16, rows, cols, rng);
    const WeightView host{DType::kF16, rows, cols, bytes.data()};
    absl::StatusOr<kernels::PreparedWeight> g =
        gpu_->PrepareWeight(host, kernels::WeightUse::kMatMul);
    ASSERT_TRUE(g.ok()) << g.status();
    const std::vector<float> x = kernels::cpu::testing::RandomFloats(8 * cols, rng);
    auto gx = Put(*gpu_, x);
    auto run = [&](int32_t m, int64_t first_row) {
      auto gy = Put(*gpu_, std::vector<float>(m * rows, NAN));
      gpu_->MatMul(g->view, F(gx) + first_row * cols, m, F(gy));
      return Get<float>(*gpu_, *gy, m * rows);
    };
    std::vector<float> want(8 * rows);
    cpu_->MatMul(host, x.data(), 8, want.data());
    const std::vector<float> all = run(8, 0);
    EXPECT_LE(RelErr(all, want), 2e-3) << rows << "x" << cols;
    if (cols % 8 != 0) continue;  // cuBLAS: no claim about batch-invariance
    for (int32_t m = 1; m <= 8; ++m) {
      const std::vector<float> part = run(m, 0);
      for (int32_t i = 0; i < m; ++i) {
        const std::vector<float> alone = run(1, i);
        ASSERT_EQ(0, std::memcmp(part.data() + i * rows, alone.data(), rows * sizeof(float)))
            << rows << "x" << cols << ": row " << i << " of " << m;
        ASSERT_EQ(0,
                  std::memcmp(part.data() + i * rows, all.data() + i * rows, rows * sizeof(float)));
      }
    }
  }
}

TEST_F(CudaOpsTest, RopeBothLayouts) {
  std::mt19937 rng(FreshSeed());
  for (int32_t head_dim : {64, 128}) {
    std::vector<float> inv_freq(head_dim / 2);
    for (int i = 0; i < head_dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / head_dim);
    for (bool rotate_half : {false, true}) {
      const int32_t n = 11, heads = 9;
      std::vector<float> x =
          kernels::cpu::testing::RandomFloats(int64_t{n} * heads * head_dim, rng);
      std::vector<int32_t> pos = {0, 1, 2, 15, 16, 100, 511, 2047, 4095, 8191, 30000};
      const kernels::RopeParams rope{head_dim, rotate_half, inv_freq.data()};
      std::vector<float> want = x;
      cpu_->Rope(want.data(), pos.data(), n, heads, rope);
      auto gx = Put(*gpu_, x);
      auto gp = Put(*gpu_, pos);
      gpu_->Rope(F(gx), I(gp), n, heads, rope);
      // Same float operations in the same order (no FMA contraction); only
      // cos/sin in double may differ by an ulp before rounding to float.
      EXPECT_LE(RelErr(Get<float>(*gpu_, *gx, x.size()), want), 1e-6)
          << "head_dim " << head_dim << " rotate_half " << rotate_half;
    }
  }
}

TEST_F(CudaOpsTest, ElementwiseOps) {
  std::mt19937 rng(FreshSeed());
  const int64_t n = 100003;  // not a multiple of any block size
  std::vector<float> g = kernels::cpu::testing::RandomFloats(n, rng, 4.0f);
  std::vector<float> u = kernels::cpu::testing::RandomFloats(n, rng);
  auto gg = Put(*gpu_, g), gu = Put(*gpu_, u);

  std::vector<float> want(n);
  cpu_->SwiGlu(g.data(), u.data(), n, want.data());
  gpu_->SwiGlu(F(gg), F(gu), n, F(gg));  // in place, as the runner does
  // expf is within 2 ulp of the CPU's exp; the rest is the same operations.
  EXPECT_LE(RelErr(Get<float>(*gpu_, *gg, n), want), 1e-6);

  std::vector<float> sum = u;
  cpu_->Add(sum.data(), want.data(), n);
  auto gs = Put(*gpu_, u), gw = Put(*gpu_, want);
  gpu_->Add(F(gs), F(gw), n);
  EXPECT_EQ(Get<float>(*gpu_, *gs, n), sum);  // one IEEE add per element: exact

  const int32_t dim = 576;
  std::vector<int32_t> rows = {5, 0, 172, 5, 99};
  std::vector<float> gathered(rows.size() * dim);
  cpu_->GatherRows(u.data(), rows.data(), 5, dim, gathered.data());
  auto gr = Put(*gpu_, rows);
  auto gd = Put(*gpu_, std::vector<float>(gathered.size(), NAN));
  gpu_->GatherRows(F(gu), I(gr), 5, dim, F(gd));
  EXPECT_EQ(Get<float>(*gpu_, *gd, gathered.size()), gathered);
}

TEST_F(CudaOpsTest, PrepareWeightRejectsBadViews) {
  EXPECT_EQ(gpu_->PrepareWeight({DType::kQ4_1, 4, 33, nullptr}, kernels::WeightUse::kMatMul)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // not whole blocks
  EXPECT_EQ(gpu_->PrepareWeight({DType::kF32, -1, 8, nullptr}, kernels::WeightUse::kMatMul)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu_->PrepareWeight({DType::kF32, 2, 8, nullptr}, kernels::WeightUse::kMatMul)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<float> huge = {1.0f, 1e6f};  // beyond fp16's 65504
  const absl::Status s =
      gpu_->PrepareWeight({DType::kF32, 1, 2, huge.data()}, kernels::WeightUse::kMatMul).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("fp16"), std::string::npos) << s;
}

// An op the backend cannot run makes its status sticky: later ops do nothing
// and CopyToHost gives NaN, never stale numbers.
TEST_F(CudaOpsTest, ErrorsAreStickyAndPoisonCopies) {
  absl::StatusOr<std::unique_ptr<kernels::Backend>> fresh =
      kernels::CreateBackend(kernels::BackendKind::kCuda, {});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  kernels::Backend& be = **fresh;
  auto x = Put(be, std::vector<float>(64, 1.0f));
  auto y = Put(be, std::vector<float>(8, 2.0f));
  std::vector<uint8_t> q41(8 * 2 * 20);
  be.MatMul({DType::kQ4_1, 8, 64, q41.data()}, F(x), 1, F(y));  // not prepared here
  const absl::Status s = kernels::BackendStatus(be);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  be.Add(F(y), F(y), 8);
  const std::vector<float> out = Get<float>(be, *y, 8);
  for (float v : out) EXPECT_TRUE(std::isnan(v));
  EXPECT_FALSE(be.Allocate(16).ok());
}

}  // namespace
}  // namespace chai::testing
