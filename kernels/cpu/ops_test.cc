// Each CpuBackend op against a naive reference written here (float64 where
// the op reduces), through the Backend interface the engine uses.
#include "kernels/cpu/ops.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/test_util.h"

namespace chai::kernels {
namespace {

using cpu::testing::DequantizeMatrix;
using cpu::testing::RandomFloats;
using cpu::testing::RandomWeightBytes;

std::unique_ptr<Backend> MakeBackend(int threads = 2) {
  std::unique_ptr<Backend> b = CreateCpuBackend({.threads = threads});
  EXPECT_NE(b, nullptr);
  return b;
}

TEST(CpuBackendTest, RejectsBadOptions) {
  EXPECT_FALSE(CreateCpuBackendOrError({.threads = -1}).ok());
  EXPECT_EQ(CreateCpuBackend({.threads = -1}), nullptr);
  EXPECT_TRUE(CreateCpuBackendOrError({.threads = 0}).ok());
}

TEST(CpuBackendTest, KvDtypeParsesFlagValuesAndIsValidated) {
  EXPECT_EQ(*ParseKvDtype("f16"), DType::kF16);
  EXPECT_EQ(*ParseKvDtype("f32"), DType::kF32);
  for (const char* bad : {"F16", "bf16", "", "fp16"}) {
    EXPECT_EQ(ParseKvDtype(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(CpuBackendOptions{.kv_dtype = DType::kBF16}.Validate().ok());
  EXPECT_EQ(CreateCpuBackend({.threads = 1})->KvDtype(), DType::kF16);
  EXPECT_EQ(CreateCpuBackend({.threads = 1, .kv_dtype = DType::kF32})->KvDtype(), DType::kF32);
}

TEST(CpuBackendTest, AllocateIsAlignedAndSized) {
  auto b = MakeBackend();
  EXPECT_EQ(b->name(), "cpu");
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{100}, size_t{1} << 20}) {
    absl::StatusOr<std::unique_ptr<Buffer>> buf = b->Allocate(bytes);
    ASSERT_TRUE(buf.ok()) << buf.status();
    EXPECT_EQ((*buf)->size(), bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>((*buf)->data()) % 64, 0u);
    std::memset((*buf)->data(), 0xab, bytes);  // writable to the end (ASan checks)
  }
}

TEST(CpuBackendTest, CopiesRoundTrip) {
  auto b = MakeBackend();
  auto buf = b->Allocate(64 * sizeof(float));
  ASSERT_TRUE(buf.ok());
  std::vector<float> src(64), dst(64, 0.0f);
  for (int i = 0; i < 64; ++i) src[i] = static_cast<float>(i) * 0.5f;
  b->CopyToDevice((*buf)->data(), src.data(), 64 * sizeof(float));
  b->Synchronize();
  b->CopyToHost(dst.data(), (*buf)->data(), 64 * sizeof(float));
  EXPECT_EQ(src, dst);
  // Copies from 1 MB up are split over the pool: every byte arrives, for
  // sizes that are and are not whole 64 KB pieces, and nothing past the end.
  for (size_t bytes : {size_t{1} << 20, (size_t{3} << 20) + 12345}) {
    auto big = b->Allocate(bytes);
    ASSERT_TRUE(big.ok());
    std::vector<uint8_t> pattern(bytes), out(bytes + 64, 0xee);
    for (size_t i = 0; i < bytes; ++i) pattern[i] = static_cast<uint8_t>(i * 131 + (i >> 16));
    std::memcpy((*big)->data(), pattern.data(), bytes);
    b->CopyToHost(out.data(), (*big)->data(), bytes);
    EXPECT_EQ(0, std::memcmp(out.data(), pattern.data(), bytes)) << bytes;
    for (size_t i = bytes; i < out.size(); ++i) ASSERT_EQ(out[i], 0xee) << "byte " << i;
  }
}

TEST(CpuBackendTest, PrepareWeightIsZeroCopyAndValidates) {
  auto b = MakeBackend();
  std::vector<uint8_t> bytes(4 * 20);
  for (WeightUse use : {WeightUse::kMatMul, WeightUse::kEmbed}) {
    absl::StatusOr<PreparedWeight> pw = b->PrepareWeight({DType::kQ4_1, 4, 32, bytes.data()}, use);
    ASSERT_TRUE(pw.ok()) << pw.status();
    EXPECT_EQ(pw->view.data, bytes.data());
    EXPECT_EQ(pw->view.layout, WeightLayout::kRowMajor);
    EXPECT_EQ(pw->storage, nullptr);
    EXPECT_EQ(pw->view.rows, 4);
    EXPECT_FALSE(b->PrepareWeight({DType::kQ4_1, 4, 33, bytes.data()}, use).ok());
    EXPECT_FALSE(b->PrepareWeight({DType::kQ4_1, 4, 32, nullptr}, use).ok());
    WeightView interleaved{DType::kQ4_1, 4, 32, bytes.data()};
    interleaved.layout = WeightLayout::kInterleaved8;
    EXPECT_FALSE(b->PrepareWeight(interleaved, use).ok());
  }
}

// In kInt16 mode MatMul weights of the int16 types become an interleaved
// copy (the same bytes, rearranged) whose products match the row-major
// matrix's; embedding tables and other types stay zero-copy.
TEST(CpuBackendTest, Int16ModeInterleavesMatMulWeightsOnly) {
  std::unique_ptr<Backend> b =
      CreateCpuBackend({.threads = 2, .activation_mode = cpu::ActivationMode::kInt16});
  ASSERT_NE(b, nullptr);
  std::mt19937 rng(5);
  const int64_t rows = 20, cols = 256;  // two groups of 8 and 4 row-major rows
  for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0, DType::kQ4_K}) {
    SCOPED_TRACE(kernels::Name(t));
    const std::vector<uint8_t> bytes = RandomWeightBytes(t, rows, cols, rng);
    const WeightView host{t, rows, cols, bytes.data()};
    absl::StatusOr<PreparedWeight> embed = b->PrepareWeight(host, WeightUse::kEmbed);
    ASSERT_TRUE(embed.ok()) << embed.status();
    EXPECT_EQ(embed->view.data, bytes.data());
    absl::StatusOr<PreparedWeight> mm = b->PrepareWeight(host, WeightUse::kMatMul);
    ASSERT_TRUE(mm.ok()) << mm.status();
    const bool int16 = t != DType::kQ4_K;
    EXPECT_EQ(mm->view.layout, int16 ? WeightLayout::kInterleaved8 : WeightLayout::kRowMajor);
    EXPECT_EQ(mm->storage != nullptr, int16);
    if (int16) {
      EXPECT_NE(std::memcmp(mm->view.data, bytes.data(), bytes.size()), 0);
      // The row-major tail rows are copied unchanged.
      const int64_t rb = RowBytes(t, cols);
      EXPECT_EQ(std::memcmp(static_cast<const uint8_t*>(mm->view.data) + 16 * rb,
                            bytes.data() + 16 * rb, 4 * rb),
                0);
    }
    const int32_t m = 3;
    const std::vector<float> x = RandomFloats(m * cols, rng);
    std::vector<float> got(m * rows), want(m * rows);
    b->MatMul(mm->view, x.data(), m, got.data());
    b->MatMul(host, x.data(), m, want.data());
    const std::vector<float> w = DequantizeMatrix(t, bytes.data(), rows, cols);
    for (int32_t i = 0; i < m; ++i) {
      for (int64_t r = 0; r < rows; ++r) {
        double mag = 0;
        for (int64_t c = 0; c < cols; ++c)
          mag += std::abs(double{w[r * cols + c]} * x[i * cols + c]);
        // Both quantize activations to 16 bits: they differ by float rounding.
        EXPECT_NEAR(got[i * rows + r], want[i * rows + r], 1e-5 * mag + 1e-6) << i << "," << r;
      }
    }
  }
}

TEST(CpuBackendTest, EmbedDequantizesRowsOfEveryType) {
  auto b = MakeBackend();
  std::mt19937 rng(11);
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ4_0, DType::kQ4_1, DType::kQ8_0,
                  DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const int64_t rows = 7, cols = 256;
    const std::vector<uint8_t> w = RandomWeightBytes(t, rows, cols, rng);
    const std::vector<float> wf = DequantizeMatrix(t, w.data(), rows, cols);
    const std::vector<int32_t> ids = {6, 0, 3, 3};
    std::vector<float> out(ids.size() * cols);
    b->Embed({t, rows, cols, w.data()}, ids.data(), 4, out.data());
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_EQ(0, std::memcmp(&out[i * cols], &wf[ids[i] * cols], cols * sizeof(float)))
          << Name(t) << " token " << i;
    }
  }
}

TEST(CpuBackendTest, RmsNormMatchesFloat64) {
  auto b = MakeBackend();
  std::mt19937 rng(12);
  const int n = 5, dim = 576;
  const float eps = 1e-5f;
  std::vector<float> x = RandomFloats(n * dim, rng, 3.0f), w = RandomFloats(dim, rng);
  std::vector<float> out(n * dim);
  b->RmsNorm(x.data(), w.data(), n, dim, eps, out.data());
  for (int i = 0; i < n; ++i) {
    double ss = 0;
    for (int j = 0; j < dim; ++j) ss += double{x[i * dim + j]} * x[i * dim + j];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int j = 0; j < dim; ++j) {
      const double ref = x[i * dim + j] * inv * w[j];
      ASSERT_NEAR(out[i * dim + j], ref, 1e-5 * std::fabs(ref) + 1e-6) << i << "," << j;
    }
  }
  // In place (out aliases x) gives the same values.
  b->RmsNorm(x.data(), w.data(), n, dim, eps, x.data());
  EXPECT_EQ(0, std::memcmp(x.data(), out.data(), out.size() * sizeof(float)));
}

// Reference rotation as complex multiplication by e^{i pos inv_freq}.
void NaiveRope(std::vector<double>& x, const std::vector<int32_t>& pos, int heads, int hd,
               const std::vector<float>& inv_freq, bool rotate_half) {
  for (size_t t = 0; t < pos.size(); ++t) {
    for (int h = 0; h < heads; ++h) {
      double* v = &x[(t * heads + h) * hd];
      for (int i = 0; i < hd / 2; ++i) {
        const int a = rotate_half ? i : 2 * i, b = rotate_half ? i + hd / 2 : 2 * i + 1;
        const double theta = static_cast<float>(pos[t]) * inv_freq[i];
        const double re = v[a] * std::cos(theta) - v[b] * std::sin(theta);
        const double im = v[a] * std::sin(theta) + v[b] * std::cos(theta);
        v[a] = re;
        v[b] = im;
      }
    }
  }
}

TEST(CpuBackendTest, RopeBothLayoutsMatchReference) {
  auto b = MakeBackend();
  std::mt19937 rng(13);
  const int heads = 3, hd = 64;
  const std::vector<int32_t> pos = {0, 1, 17, 4095, 3};
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / hd);
  for (bool rotate_half : {false, true}) {
    std::vector<float> x = RandomFloats(pos.size() * heads * hd, rng);
    std::vector<double> ref(x.begin(), x.end());
    NaiveRope(ref, pos, heads, hd, inv_freq, rotate_half);
    RopeParams rp{hd, rotate_half, inv_freq.data()};
    b->Rope(x.data(), pos.data(), static_cast<int32_t>(pos.size()), heads, rp);
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(x[i], ref[i], 2e-6 * (1 + std::fabs(ref[i]))) << "rotate_half " << rotate_half;
    }
  }
  // The two layouts are the same rotation on permuted coordinates.
  std::vector<float> inter = RandomFloats(heads * hd, rng), half(heads * hd);
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      half[h * hd + i] = inter[h * hd + 2 * i];
      half[h * hd + i + hd / 2] = inter[h * hd + 2 * i + 1];
    }
  }
  const int32_t p = 123;
  b->Rope(inter.data(), &p, 1, heads, {hd, false, inv_freq.data()});
  b->Rope(half.data(), &p, 1, heads, {hd, true, inv_freq.data()});
  for (int h = 0; h < heads; ++h) {
    for (int i = 0; i < hd / 2; ++i) {
      EXPECT_EQ(half[h * hd + i], inter[h * hd + 2 * i]);
      EXPECT_EQ(half[h * hd + i + hd / 2], inter[h * hd + 2 * i + 1]);
    }
  }
}

// RopeRows remembers each thread's angles by position: a second model's
// frequencies (same length, other values) must not get the first one's, the
// first ones must come back bit for bit, and positions past the table
// (RopeTable::kMaxPositions = 32768) are still rotated correctly.
TEST(CpuBackendTest, RopeAnglesFollowTheFrequenciesAndLongPositions) {
  std::mt19937 rng(17);
  const int heads = 2, hd = 64;
  const std::vector<int32_t> pos = {5, 0, 300, 40000, 5};
  std::vector<float> base(hd / 2), scaled(hd / 2);
  for (int i = 0; i < hd / 2; ++i) {
    base[i] = std::pow(10000.0f, -2.0f * i / hd);
    scaled[i] = base[i] / (i < hd / 4 ? 1.0f : 8.0f);  // Llama-3.1-like
  }
  const std::vector<float> x0 = RandomFloats(pos.size() * heads * hd, rng);
  std::vector<float> first;
  for (const std::vector<float>* f : {&base, &scaled, &base}) {
    std::vector<float> x = x0;
    std::vector<double> ref(x.begin(), x.end());
    NaiveRope(ref, pos, heads, hd, *f, false);
    cpu::RopeRows(x.data(), pos.data(), static_cast<int32_t>(pos.size()), heads,
                  {hd, false, f->data()});
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(x[i], ref[i], 2e-6 * (1 + std::fabs(ref[i]))) << "element " << i;
    }
    if (first.empty()) {
      first = x;
    } else if (f == &base) {
      EXPECT_EQ(0, std::memcmp(x.data(), first.data(), x.size() * sizeof(float)));
    }
  }
}

// Each vector form this CPU has and the portable loop give the same bits
// (ragged n: a wider form leaves its last n % 16 or n % 8 to the narrower
// ones), for large |g| too.
TEST(CpuOpsTest, SwiGluSimdIsBitIdenticalToPortable) {
  if (!cpu::internal::CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2/FMA";
  std::mt19937 rng(15);
  for (cpu::SimdIsa isa : {cpu::SimdIsa::kAvx2, cpu::SimdIsa::kAvx512}) {
    for (int64_t n : {1, 7, 8, 15, 16, 25, 37, 1536}) {
      std::vector<float> g = RandomFloats(n, rng, 20.0f), u = RandomFloats(n, rng);
      g[0] = -120.0f;  // exp(-g) clamped
      g[n - 1] = 95.0f;
      std::vector<float> a(n), v(n);
      cpu::SwiGluValues(g.data(), u.data(), n, a.data(), cpu::SimdIsa::kPortable);
      cpu::SwiGluValues(g.data(), u.data(), n, v.data(), isa);
      ASSERT_EQ(0, std::memcmp(a.data(), v.data(), n * sizeof(float)))
          << "n " << n << " isa " << static_cast<int>(isa);
    }
  }
}

TEST(CpuOpsTest, RmsNormAvx2IsBitIdenticalToPortable) {
  if (!cpu::internal::CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2/FMA";
  std::mt19937 rng(16);
  for (int32_t dim : {1, 7, 8, 13, 576, 1539}) {
    const int32_t n = 3;
    std::vector<float> x = RandomFloats(int64_t{n} * dim, rng, 3.0f), w = RandomFloats(dim, rng);
    std::vector<float> a(x.size()), v(x.size());
    cpu::RmsNormRows(x.data(), w.data(), n, dim, 1e-5f, a.data(), /*allow_avx2=*/false);
    cpu::RmsNormRows(x.data(), w.data(), n, dim, 1e-5f, v.data(), /*allow_avx2=*/true);
    ASSERT_EQ(0, std::memcmp(a.data(), v.data(), a.size() * sizeof(float))) << "dim " << dim;
    // In place (out aliases x) gives the same bits too.
    cpu::RmsNormRows(x.data(), w.data(), n, dim, 1e-5f, x.data(), /*allow_avx2=*/true);
    ASSERT_EQ(0, std::memcmp(a.data(), x.data(), a.size() * sizeof(float))) << "dim " << dim;
  }
}

TEST(CpuBackendTest, SwiGluAddGather) {
  auto b = MakeBackend();
  std::mt19937 rng(14);
  const int64_t n = 1000;
  std::vector<float> g = RandomFloats(n, rng, 4.0f), u = RandomFloats(n, rng), out(n);
  b->SwiGlu(g.data(), u.data(), n, out.data());
  for (int64_t i = 0; i < n; ++i) {
    const double ref = g[i] / (1.0 + std::exp(-double{g[i]})) * u[i];
    ASSERT_NEAR(out[i], ref, 1e-6 * (1 + std::fabs(ref)));
  }
  std::vector<float> x = g;
  b->Add(x.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(x[i], g[i] + u[i]);

  const int dim = 10;
  const std::vector<int32_t> rows = {99, 0, 50, 50};
  std::vector<float> dst(rows.size() * dim);
  b->GatherRows(g.data(), rows.data(), 4, dim, dst.data());
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int j = 0; j < dim; ++j) ASSERT_EQ(dst[i * dim + j], g[rows[i] * dim + j]);
  }
}

// Large batches of the element-wise ops are split over the pool: the bits
// must be those of the serial op functions, and a row must not depend on the
// batch it is in (a single-row call stays serial).
TEST(CpuBackendTest, PooledElementwiseOpsGiveSerialBits) {
  std::mt19937 rng(77);
  const int32_t n = 37, dim = 576, heads = 9, hd = 64;
  const int64_t ffn = 1536;
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / hd);
  const RopeParams rp{hd, false, inv_freq.data()};
  std::vector<int32_t> pos(n);
  for (int32_t t = 0; t < n; ++t) pos[t] = static_cast<int32_t>(rng() % 4096);
  const std::vector<float> x = RandomFloats(int64_t{n} * dim, rng, 3.0f);
  const std::vector<float> w = RandomFloats(dim, rng);
  const std::vector<float> q = RandomFloats(int64_t{n} * heads * hd, rng);
  const std::vector<float> g = RandomFloats(n * ffn, rng, 4.0f), u = RandomFloats(n * ffn, rng);

  std::vector<float> norm_ref(x.size()), q_ref = q, swi_ref(g.size());
  cpu::RmsNormRows(x.data(), w.data(), n, dim, 1e-5f, norm_ref.data());
  cpu::RopeRows(q_ref.data(), pos.data(), n, heads, rp);
  cpu::SwiGluValues(g.data(), u.data(), n * ffn, swi_ref.data());
  for (int threads : {2, 3}) {
    auto b = MakeBackend(threads);
    std::vector<float> norm(x.size()), qb = q, swi(g.size());
    b->RmsNorm(x.data(), w.data(), n, dim, 1e-5f, norm.data());
    b->Rope(qb.data(), pos.data(), n, heads, rp);
    b->SwiGlu(g.data(), u.data(), n * ffn, swi.data());
    EXPECT_EQ(0, std::memcmp(norm.data(), norm_ref.data(), norm.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(qb.data(), q_ref.data(), qb.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(swi.data(), swi_ref.data(), swi.size() * sizeof(float)));
    // Row 5 alone (the serial path) equals row 5 of the batch.
    std::vector<float> one(dim), q1(q.begin() + 5 * heads * hd, q.begin() + 6 * heads * hd);
    b->RmsNorm(&x[5 * dim], w.data(), 1, dim, 1e-5f, one.data());
    b->Rope(q1.data(), &pos[5], 1, heads, rp);
    EXPECT_EQ(0, std::memcmp(one.data(), &norm_ref[5 * dim], dim * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(q1.data(), &q_ref[5 * heads * hd], q1.size() * sizeof(float)));
  }
}

// The fused residual add and norm gives Add then RmsNorm's bits, in the
// batch (pooled), alone (serial) and with its output over the added rows
// (as the model runner calls it), and leaves x = x + y.
TEST(CpuBackendTest, AddRmsNormGivesAddThenRmsNormBits) {
  std::mt19937 rng(78);
  const int32_t n = 37, dim = 576;
  const std::vector<float> x0 = RandomFloats(int64_t{n} * dim, rng, 3.0f);
  const std::vector<float> y = RandomFloats(int64_t{n} * dim, rng, 2.0f);
  const std::vector<float> w = RandomFloats(dim, rng);
  std::vector<float> x_ref = x0, norm_ref(x0.size());
  for (size_t i = 0; i < x_ref.size(); ++i) x_ref[i] += y[i];
  cpu::RmsNormRows(x_ref.data(), w.data(), n, dim, 1e-5f, norm_ref.data());
  for (int threads : {1, 2, 3}) {
    auto b = MakeBackend(threads);
    std::vector<float> x = x0, yo = y;  // out over y
    b->AddRmsNorm(x.data(), yo.data(), w.data(), n, dim, 1e-5f, yo.data());
    EXPECT_EQ(0, std::memcmp(x.data(), x_ref.data(), x.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(yo.data(), norm_ref.data(), yo.size() * sizeof(float)));
    std::vector<float> x1(x0.begin() + 5 * dim, x0.begin() + 6 * dim), one(dim);
    b->AddRmsNorm(x1.data(), &y[5 * dim], w.data(), 1, dim, 1e-5f, one.data());
    EXPECT_EQ(0, std::memcmp(x1.data(), &x_ref[5 * dim], dim * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(one.data(), &norm_ref[5 * dim], dim * sizeof(float)));
  }
}

TEST(CpuBackendTest, MatMulThroughBackendMatchesDequantizedProduct) {
  std::mt19937 rng(15);
  const int64_t rows = 48, cols = 576;
  const std::vector<uint8_t> w = RandomWeightBytes(DType::kF16, rows, cols, rng);
  const std::vector<float> wf = DequantizeMatrix(DType::kF16, w.data(), rows, cols);
  const std::vector<float> x = RandomFloats(3 * cols, rng);
  for (int threads : {1, 3}) {
    auto b = MakeBackend(threads);
    std::vector<float> y(3 * rows);
    b->MatMul({DType::kF16, rows, cols, w.data()}, x.data(), 3, y.data());
    for (int i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < rows; ++j) {
        double ref = 0, abs_sum = 0;
        for (int64_t k = 0; k < cols; ++k) {
          ref += double{x[i * cols + k]} * wf[j * cols + k];
          abs_sum += std::fabs(double{x[i * cols + k]} * wf[j * cols + k]);
        }
        ASSERT_NEAR(y[i * rows + j], ref, 1e-5 * abs_sum);
      }
    }
  }
}

}  // namespace
}  // namespace chai::kernels
