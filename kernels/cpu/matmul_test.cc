#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/test_util.h"

namespace chai::kernels::cpu {
namespace {

using testing::DequantizeMatrix;
using testing::RandomFloats;
using testing::RandomWeightBytes;

constexpr DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ4_0, DType::kQ4_1,
                               DType::kQ8_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

// Columns: several K-quant super-blocks; F32 also gets a ragged width to
// exercise the SIMD tails.
int64_t ColsFor(DType t) { return t == DType::kF32 ? 300 : 768; }

std::vector<MatMulImpl> Impls() {
  std::vector<MatMulImpl> impls = {MatMulImpl::kScalar};
  if (MatMulImplAvailable(MatMulImpl::kAvx2)) impls.push_back(MatMulImpl::kAvx2);
  return impls;
}

std::string ImplName(MatMulImpl impl) { return impl == MatMulImpl::kAvx2 ? "avx2" : "scalar"; }

constexpr ActivationMode kModes[] = {ActivationMode::kFloat, ActivationMode::kInt8,
                                     ActivationMode::kInt16};

// Elements per activation block and the quantization step's divisor (the
// step is amax / kMax, the rounding error at most half of it) of a format.
struct QuantGeometry {
  int64_t block = 0;  // 0: float activations
  double max_q = 0;
};
QuantGeometry GeometryOf(internal::ActFormat f) {
  switch (f) {
    case internal::ActFormat::kF32:
      return {};
    case internal::ActFormat::kQ8x32:
      return {32, 127};
    case internal::ActFormat::kQ8xK:
      return {256, 127};
    case internal::ActFormat::kQ16x32:
      return {32, 32767};
  }
  return {};
}

struct Problem {
  DType type;
  int64_t rows, cols, m;
  std::vector<uint8_t> w;
  std::vector<float> x;
  WeightView view() const { return {type, rows, cols, w.data()}; }
};

Problem MakeProblem(DType t, int64_t rows, int64_t m, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p{t, rows, ColsFor(t), m, {}, {}};
  p.w = RandomWeightBytes(t, rows, p.cols, rng);
  p.x = RandomFloats(m * p.cols, rng);
  // Make a few activation blocks badly scaled: outliers stress quantization.
  for (int64_t i = 0; i < m; i += 3) p.x[i * p.cols + 5] *= 40.0f;
  return p;
}

// interleave: run on InterleaveRows' copy of the weights (kInterleaved8).
std::vector<float> RunMatMul(const Problem& p, MatMulImpl impl, int threads, int64_t m,
                             const float* x, ActivationMode mode, bool interleave = false) {
  ThreadPool pool(threads);
  MatMul mm(&pool, impl, mode);
  std::vector<float> y(m * p.rows, std::nanf(""));
  WeightView view = p.view();
  std::vector<uint8_t> copy;
  if (interleave) {
    copy.resize(p.w.size());
    InterleaveRows(p.type, p.rows, p.cols, p.w.data(), copy.data());
    view.data = copy.data();
    view.layout = WeightLayout::kInterleaved8;
  }
  mm.Run(view, x, m, y.data());
  return y;
}

// Accuracy against a float64 product of the dequantized weights. The bound is
// derived, not tuned: float32 accumulation of <= 4 + cols/32 + 3 roundings
// per term is < 2e-6 of sum |x_k w_k| for these lengths, so 1e-5 of it (the
// whole bound in float-activation mode). In int8 (int16) mode, activation
// quantization also moves each x_k by at most half a step (amax of its block
// / 254 (/ 65534)), adding sum_k |w_k| * step_k/2.
TEST(MatMulTest, MatchesFloat64ReferenceWithinDerivedBound) {
  for (ActivationMode mode : kModes) {
    for (MatMulImpl impl : Impls()) {
      for (DType t : kAllTypes) {
        SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl) + " " + ActivationModeName(mode));
        const Problem p = MakeProblem(t, 37, 5, 1);
        const std::vector<float> wf = DequantizeMatrix(t, p.w.data(), p.rows, p.cols);
        const std::vector<float> y = RunMatMul(p, impl, 2, p.m, p.x.data(), mode);
        const QuantGeometry g = GeometryOf(internal::ActFormatFor(t, mode));
        const int64_t qblock = g.block;
        for (int64_t i = 0; i < p.m; ++i) {
          const float* xi = &p.x[i * p.cols];
          for (int64_t j = 0; j < p.rows; ++j) {
            const float* wj = &wf[j * p.cols];
            double ref = 0, abs_sum = 0, quant_bound = 0;
            for (int64_t k = 0; k < p.cols; ++k) {
              ref += double{xi[k]} * wj[k];
              abs_sum += std::fabs(double{xi[k]} * wj[k]);
            }
            for (int64_t b0 = 0; qblock > 0 && b0 < p.cols; b0 += qblock) {
              double amax = 0, wabs = 0;
              for (int64_t k = b0; k < b0 + qblock; ++k) {
                amax = std::max(amax, std::fabs(double{xi[k]}));
                wabs += std::fabs(double{wj[k]});
              }
              quant_bound += wabs * amax / (2 * g.max_q) * 1.0001;
            }
            const double tol = quant_bound + 1e-5 * abs_sum + 1e-30;
            ASSERT_LE(std::fabs(y[i * p.rows + j] - ref), tol)
                << "row " << i << " col " << j << " ref " << ref << " got " << y[i * p.rows + j];
          }
        }
      }
    }
  }
}

// The same integer block dot products, accumulated in a different float
// order: within 1e-5 of sum |x_k w_k| (stated tolerance for SIMD vs scalar).
// The activations as the kernels see them: x_hat = d * q after 8-bit
// quantization (identity for float weight types).
std::vector<float> QuantizedActivations(DType t, const float* x, int64_t cols,
                                        ActivationMode mode) {
  const internal::ActFormat f = internal::ActFormatFor(t, mode);
  std::vector<float> out(x, x + cols);
  if (f == internal::ActFormat::kF32) return out;
  std::vector<char> buf(internal::ActRowBytes(f, cols));
  internal::QuantizeActRow(f, x, cols, buf.data());
  const int64_t block = GeometryOf(f).block;
  for (int64_t b = 0; b < cols / block; ++b) {
    if (f == internal::ActFormat::kQ16x32) {
      const int64_t nb = cols / block;
      const internal::Q16RowConst row =
          internal::Q16RowAt(static_cast<const void*>(buf.data()), nb);
      const int16_t* qs = row.qs + b * block;
      int32_t sum = 0;
      for (int i = 0; i < 32; ++i) {
        sum += qs[i];
        EXPECT_LE(std::abs(qs[i]), 32767);
        out[b * block + i] = row.d[b] * static_cast<float>(qs[i]);
      }
      EXPECT_EQ(row.s[b], row.d[b] * static_cast<float>(sum));
      continue;
    }
    float d;
    const int8_t* qs;
    if (f == internal::ActFormat::kQ8x32) {
      const auto* blk = reinterpret_cast<const internal::BlockQ8x32*>(buf.data()) + b;
      d = blk->d;
      qs = blk->qs;
      int32_t sum = 0;
      for (int i = 0; i < 32; ++i) sum += qs[i];
      EXPECT_EQ(blk->s, d * static_cast<float>(sum));
    } else {
      const auto* blk = reinterpret_cast<const internal::BlockQ8xK*>(buf.data()) + b;
      d = blk->d;
      qs = blk->qs;
      for (int g = 0; g < 16; ++g) {
        int32_t sum = 0;
        for (int i = 0; i < 16; ++i) sum += qs[16 * g + i];
        EXPECT_EQ(blk->bsums[g], sum);
      }
    }
    for (int64_t i = 0; i < block; ++i) out[b * block + i] = d * static_cast<float>(qs[i]);
  }
  return out;
}

// y (from p's weights and activations) within 1e-5 of sum |x_hat_k w_k| of
// the float64 product of the activations quantized as `mode` does.
void ExpectProductOfQuantizedActivations(const Problem& p, const std::vector<float>& y,
                                         ActivationMode mode) {
  const std::vector<float> wf = DequantizeMatrix(p.type, p.w.data(), p.rows, p.cols);
  for (int64_t i = 0; i < p.m; ++i) {
    const std::vector<float> xq = QuantizedActivations(p.type, &p.x[i * p.cols], p.cols, mode);
    for (int64_t j = 0; j < p.rows; ++j) {
      double ref = 0, abs_sum = 0;
      for (int64_t k = 0; k < p.cols; ++k) {
        ref += double{xq[k]} * wf[j * p.cols + k];
        abs_sum += std::fabs(double{xq[k]} * wf[j * p.cols + k]);
      }
      ASSERT_NEAR(y[i * p.rows + j], ref, 1e-5 * abs_sum) << "row " << i << " col " << j;
    }
  }
}

// Int8 and int16 modes: given the quantized activations, the only error left
// is float rounding: within 1e-5 of sum |x_hat_k w_k| of the float64
// product. Catches any mistake in the integer block arithmetic (offsets,
// mins, scales, widening).
TEST(MatMulTest, IntegerModesMatchFloat64ProductOfQuantizedActivations) {
  for (ActivationMode mode : {ActivationMode::kInt8, ActivationMode::kInt16}) {
    for (MatMulImpl impl : Impls()) {
      for (DType t : kAllTypes) {
        SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl) + " " + ActivationModeName(mode));
        const Problem p = MakeProblem(t, 37, 5, 6);
        const std::vector<float> y = RunMatMul(p, impl, 2, p.m, p.x.data(), mode);
        ASSERT_NO_FATAL_FAILURE(ExpectProductOfQuantizedActivations(p, y, mode));
      }
    }
  }
}

// Stated tolerance, both modes: AVX2 within 1e-5 of sum |x_k w_k| of the
// scalar kernels (same block arithmetic; FMA vs separate rounding, and in int8
// mode a different float accumulation order).
TEST(MatMulTest, Avx2MatchesScalar) {
  if (!MatMulImplAvailable(MatMulImpl::kAvx2)) GTEST_SKIP() << "CPU has no AVX2+FMA";
  for (ActivationMode mode : kModes) {
    for (DType t : kAllTypes) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ActivationModeName(mode));
      const Problem p = MakeProblem(t, 45, 9, 2);
      const std::vector<float> wf = DequantizeMatrix(t, p.w.data(), p.rows, p.cols);
      const std::vector<float> ys = RunMatMul(p, MatMulImpl::kScalar, 1, p.m, p.x.data(), mode);
      const std::vector<float> yv = RunMatMul(p, MatMulImpl::kAvx2, 2, p.m, p.x.data(), mode);
      for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t j = 0; j < p.rows; ++j) {
          double abs_sum = 0;
          for (int64_t k = 0; k < p.cols; ++k) {
            abs_sum += std::fabs(double{p.x[i * p.cols + k]} * wf[j * p.cols + k]);
          }
          ASSERT_NEAR(yv[i * p.rows + j], ys[i * p.rows + j], 1e-5 * abs_sum)
              << "row " << i << " col " << j;
        }
      }
    }
  }
}

// DESIGN.md section 3: a row's result is bit-identical whatever the batch
// size, whatever the other rows hold, wherever the row sits and however many
// threads run.
TEST(MatMulTest, BitIdenticalAcrossBatchPositionAndThreads) {
  for (ActivationMode mode : kModes) {
    for (MatMulImpl impl : Impls()) {
      for (DType t : kAllTypes) {
        SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl) + " " + ActivationModeName(mode));
        const int64_t m = 37;  // several full tiles plus a ragged one
        const Problem p = MakeProblem(t, 50, m, 3);
        // Reference: each row alone (m = 1), one thread.
        std::vector<float> alone(m * p.rows);
        for (int64_t i = 0; i < m; ++i) {
          const std::vector<float> y = RunMatMul(p, impl, 1, 1, &p.x[i * p.cols], mode);
          std::copy(y.begin(), y.end(), alone.begin() + i * p.rows);
        }
        for (int threads : {1, 2, 3, 5}) {
          const std::vector<float> y = RunMatMul(p, impl, threads, m, p.x.data(), mode);
          ASSERT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
              << "threads " << threads;
        }
        // Rows permuted and mixed with unrelated rows: each still matches.
        std::mt19937 rng(4);
        std::vector<int64_t> order(m);
        for (int64_t i = 0; i < m; ++i) order[i] = i;
        std::shuffle(order.begin(), order.end(), rng);
        const int64_t m2 = m + 6;
        std::vector<float> x2 = RandomFloats(m2 * p.cols, rng, 7.0f);
        for (int64_t i = 0; i < m; ++i) {
          std::copy_n(&p.x[order[i] * p.cols], p.cols, &x2[(i + 3) * p.cols]);
        }
        const std::vector<float> y2 = RunMatMul(p, impl, 2, m2, x2.data(), mode);
        for (int64_t i = 0; i < m; ++i) {
          ASSERT_EQ(0, std::memcmp(&y2[(i + 3) * p.rows], &alone[order[i] * p.rows],
                                   p.rows * sizeof(float)))
              << "row " << order[i] << " at position " << i + 3;
        }
      }
    }
  }
}

// Wide rows take smaller activation tiles (L1 budget) and, for m > tile,
// the dequantize-once batch path: still bit-identical to each row alone.
TEST(MatMulTest, BitIdenticalForWideRowsAndBatchPath) {
  for (ActivationMode mode : {ActivationMode::kFloat, ActivationMode::kInt16}) {
    for (MatMulImpl impl : Impls()) {
      for (DType t : {DType::kQ4_1, DType::kQ8_0, DType::kQ6_K}) {
        SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl) + " " + ActivationModeName(mode));
        std::mt19937 rng(12);
        const int64_t rows = 40, cols = 1536;
        Problem p{t, rows, cols, 0, RandomWeightBytes(t, rows, cols, rng), {}};
        for (int64_t m : {3, 4, 5, 9, 13}) {
          const std::vector<float> x = RandomFloats(m * cols, rng);
          const std::vector<float> y = RunMatMul(p, impl, 2, m, x.data(), mode);
          for (int64_t i = 0; i < m; ++i) {
            const std::vector<float> alone = RunMatMul(p, impl, 1, 1, &x[i * cols], mode);
            ASSERT_EQ(0, std::memcmp(&y[i * rows], alone.data(), rows * sizeof(float)))
                << "m " << m << " row " << i;
          }
        }
      }
    }
  }
}

// Float-activation mode dequantizes to exactly DequantizeRow's values: with
// one-hot activation rows (x = identity) every product but one is a signed
// zero and every sum exact, so y[i][j] must equal W[j][i] bit for bit, for
// every element position of every block.
TEST(MatMulTest, FloatModeUsesExactDequantizedWeights) {
  for (MatMulImpl impl : Impls()) {
    for (DType t : kAllTypes) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl));
      const Problem p = MakeProblem(t, 21, 1, 9);
      const std::vector<float> wf = DequantizeMatrix(t, p.w.data(), p.rows, p.cols);
      std::vector<float> eye(p.cols * p.cols, 0.0f);
      for (int64_t k = 0; k < p.cols; ++k) eye[k * p.cols + k] = 1.0f;
      const std::vector<float> y =
          RunMatMul(p, impl, 2, p.cols, eye.data(), ActivationMode::kFloat);
      for (int64_t k = 0; k < p.cols; ++k) {
        for (int64_t j = 0; j < p.rows; ++j) {
          ASSERT_EQ(y[k * p.rows + j], wf[j * p.cols + k]) << "weight row " << j << " col " << k;
        }
      }
    }
  }
}

// The default is 16-bit activations (accurate to ~1e-5 and the fastest at
// batch 1; docs/ENGINE.md), and float and int8 modes really differ: on
// activations with outliers, int8 mode's quantization error exceeds the
// float-rounding bound that float mode meets (so neither mode can silently
// run the other's kernels).
TEST(MatMulTest, DefaultIsInt16ModeAndInt8ModeQuantizesActivations) {
  ThreadPool pool(1);
  EXPECT_EQ(MatMul(&pool).activation_mode(), ActivationMode::kInt16);
  EXPECT_EQ(MatMul(&pool, MatMulImpl::kScalar, ActivationMode::kInt8).activation_mode(),
            ActivationMode::kInt8);
  for (MatMulImpl impl : Impls()) {
    for (DType t : {DType::kQ4_1, DType::kQ8_0, DType::kQ6_K}) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl));
      const Problem p = MakeProblem(t, 16, 4, 11);
      const std::vector<float> wf = DequantizeMatrix(t, p.w.data(), p.rows, p.cols);
      const std::vector<float> yf = RunMatMul(p, impl, 1, p.m, p.x.data(), ActivationMode::kFloat);
      const std::vector<float> yq = RunMatMul(p, impl, 1, p.m, p.x.data(), ActivationMode::kInt8);
      double worst_float = 0, worst_int8 = 0;  // |error| / sum |x w|
      for (int64_t i = 0; i < p.m; ++i) {
        for (int64_t j = 0; j < p.rows; ++j) {
          double ref = 0, abs_sum = 0;
          for (int64_t k = 0; k < p.cols; ++k) {
            ref += double{p.x[i * p.cols + k]} * wf[j * p.cols + k];
            abs_sum += std::fabs(double{p.x[i * p.cols + k]} * wf[j * p.cols + k]);
          }
          worst_float = std::max(worst_float, std::fabs(yf[i * p.rows + j] - ref) / abs_sum);
          worst_int8 = std::max(worst_int8, std::fabs(yq[i * p.rows + j] - ref) / abs_sum);
        }
      }
      EXPECT_LE(worst_float, 1e-5);
      EXPECT_GT(worst_int8, 1e-4);
    }
  }
}

// The AVX2 quantizer must give the portable one's bits (scale, values, sum):
// rows with outliers, all-zero blocks, tiny and huge magnitudes.
TEST(MatMulTest, Avx2Int16QuantizerIsBitIdenticalToScalar) {
  if (!MatMulImplAvailable(MatMulImpl::kAvx2)) GTEST_SKIP() << "CPU has no AVX2+FMA";
  std::mt19937 rng(2024);
  const internal::ActFormat f = internal::ActFormat::kQ16x32;
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t cols = 32 * (1 + trial % 50);
    const float scale = std::ldexp(1.0f, static_cast<int>(rng() % 60) - 30);
    std::vector<float> x = RandomFloats(cols, rng, scale);
    for (int64_t i = 0; i < cols; i += 7 + trial % 11) x[i] *= 1000.0f;
    if (trial % 3 == 0) std::fill_n(x.begin(), 32, 0.0f);   // amax 0
    if (trial % 5 == 0) x[cols - 1] = -x[cols - 1] * 1e6f;  // negative amax
    std::vector<char> a(internal::ActRowBytes(f, cols)), b(a.size());
    internal::QuantizeActRow(f, x.data(), cols, a.data());
    internal::Avx2QuantizeActRow(f, x.data(), cols, b.data());
    ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size())) << "trial " << trial;
  }
}

// Int16 mode's float part has one order (matmul_kernels.h: 8 lanes over full
// groups of 8 blocks, a scalar tail, FMA), so the AVX2 kernel must give the
// portable kernel's bits, for row lengths with and without a tail group and
// every tile height.
TEST(MatMulTest, Avx2Int16KernelIsBitIdenticalToScalar) {
  if (!MatMulImplAvailable(MatMulImpl::kAvx2)) GTEST_SKIP() << "CPU has no AVX2+FMA";
  std::mt19937 rng(77);
  for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0}) {
    for (int64_t cols : {32, 96, 256, 288, 576, 1536}) {
      SCOPED_TRACE(std::string(Name(t)) + " cols " + std::to_string(cols));
      const int64_t rows = 19, m = 7;
      Problem p{t, rows, cols, m, RandomWeightBytes(t, rows, cols, rng), {}};
      p.x = RandomFloats(m * cols, rng);
      for (int64_t i = 0; i < m; i += 2) p.x[i * cols + cols / 2] *= 300.0f;
      const std::vector<float> ys =
          RunMatMul(p, MatMulImpl::kScalar, 1, m, p.x.data(), ActivationMode::kInt16);
      const std::vector<float> yv =
          RunMatMul(p, MatMulImpl::kAvx2, 2, m, p.x.data(), ActivationMode::kInt16);
      for (int64_t i = 0; i < m * rows; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(ys[i]), std::bit_cast<uint32_t>(yv[i]))
            << "output " << i << ": scalar " << ys[i] << " avx2 " << yv[i];
      }
    }
  }
}

// Int16 mode really quantizes (its error exceeds float mode's rounding) and
// is far closer to the float result than int8 mode: each activation moves by
// at most amax / 65534 of its block instead of amax / 254.
TEST(MatMulTest, Int16ModeErrorLiesBetweenFloatAndInt8) {
  for (MatMulImpl impl : Impls()) {
    for (DType t : {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0}) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl));
      const Problem p = MakeProblem(t, 24, 6, 31);
      const std::vector<float> wf = DequantizeMatrix(t, p.w.data(), p.rows, p.cols);
      double worst[3] = {0, 0, 0};  // float, int8, int16: max |error| / sum |x w|
      const ActivationMode modes[3] = {ActivationMode::kFloat, ActivationMode::kInt8,
                                       ActivationMode::kInt16};
      for (int k = 0; k < 3; ++k) {
        const std::vector<float> y = RunMatMul(p, impl, 1, p.m, p.x.data(), modes[k]);
        for (int64_t i = 0; i < p.m; ++i) {
          for (int64_t j = 0; j < p.rows; ++j) {
            double ref = 0, abs_sum = 0;
            for (int64_t c = 0; c < p.cols; ++c) {
              ref += double{p.x[i * p.cols + c]} * wf[j * p.cols + c];
              abs_sum += std::fabs(double{p.x[i * p.cols + c]} * wf[j * p.cols + c]);
            }
            worst[k] = std::max(worst[k], std::fabs(y[i * p.rows + j] - ref) / abs_sum);
          }
        }
      }
      std::printf("%s %s worst relative error: float %.2e int8 %.2e int16 %.2e\n",
                  std::string(Name(t)).c_str(), ImplName(impl).c_str(), worst[0], worst[1],
                  worst[2]);
      EXPECT_GT(worst[2], 4 * worst[0]);
      // The step ratio is 258; random rounding errors keep the ratio of the
      // worst cases near it, far above 30.
      EXPECT_LT(worst[2] * 30, worst[1]);
    }
  }
}

constexpr DType kInterleavedTypes[] = {DType::kQ4_0, DType::kQ4_1, DType::kQ8_0};

// Integer weight (Q4_0: nibble - 8) of element k of row r in group block b,
// read as interleave.h documents the layout, independently of the kernels.
int InterleavedWeight(DType t, const uint8_t* block8, int r, int k) {
  if (t == DType::kQ8_0) {
    const auto* b = reinterpret_cast<const BlockQ8_0x8*>(block8);
    return b->qs[16 * (k / 2) + 2 * r + k % 2];
  }
  const uint8_t* qs = t == DType::kQ4_0 ? reinterpret_cast<const BlockQ4_0x8*>(block8)->qs
                                        : reinterpret_cast<const BlockQ4_1x8*>(block8)->qs;
  const uint8_t byte = qs[16 * (k / 4) + 2 * r + k % 2];
  return (k % 4 < 2 ? byte & 0x0f : byte >> 4) - (t == DType::kQ4_0 ? 8 : 0);
}

// The interleaved copy holds every weight, scale and min of the row-major
// matrix where interleave.h says, and the rows past the last group unchanged.
TEST(InterleaveTest, EveryValueLandsWhereTheLayoutSays) {
  std::mt19937 rng(21);
  for (DType t : kInterleavedTypes) {
    SCOPED_TRACE(Name(t));
    const int64_t rows = 21, cols = 96, nb = cols / kQK;
    const int64_t rb = RowBytes(t, cols), bb = rb / nb;
    const std::vector<uint8_t> w = RandomWeightBytes(t, rows, cols, rng);
    std::vector<uint8_t> il(w.size());
    InterleaveRows(t, rows, cols, w.data(), il.data());
    EXPECT_NE(il, w);
    const std::vector<float> wf = DequantizeMatrix(t, w.data(), rows, cols);
    for (int64_t g = 0; g < rows / kInterleave; ++g) {
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* block8 = il.data() + g * kInterleave * rb + b * kInterleave * bb;
        for (int r = 0; r < kInterleave; ++r) {
          const uint8_t* src = w.data() + (g * kInterleave + r) * rb + b * bb;
          uint16_t d, m = 0, src_d, src_m = 0;
          std::memcpy(&d, block8 + 2 * r, 2);
          std::memcpy(&src_d, src, 2);
          if (t == DType::kQ4_1) {
            std::memcpy(&m, block8 + 16 + 2 * r, 2);
            std::memcpy(&src_m, src + 2, 2);
          }
          ASSERT_EQ(d, src_d);
          ASSERT_EQ(m, src_m);
          for (int k = 0; k < kQK; ++k) {
            // Dequantized from the interleaved bytes: exactly DequantizeRow's value.
            const float v = Fp16ToFp32(d) * static_cast<float>(InterleavedWeight(t, block8, r, k)) +
                            Fp16ToFp32(m);
            ASSERT_EQ(v, wf[(g * kInterleave + r) * cols + b * kQK + k])
                << "group " << g << " block " << b << " row " << r << " k " << k;
          }
        }
      }
    }
    const int64_t tail = rows / kInterleave * kInterleave * rb;
    EXPECT_EQ(0, std::memcmp(il.data() + tail, w.data() + tail, w.size() - tail));
  }
}

// Interleaved weights compute the same products: within float rounding of
// the float64 product of the quantized activations, groups and tail rows.
TEST(InterleaveTest, MatchesFloat64ProductOfQuantizedActivations) {
  for (MatMulImpl impl : Impls()) {
    for (DType t : kInterleavedTypes) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl));
      const Problem p = MakeProblem(t, 37, 5, 16);
      // Any mode: the layout selects the int16 kernels.
      const std::vector<float> y =
          RunMatMul(p, impl, 2, p.m, p.x.data(), ActivationMode::kFloat, true);
      ASSERT_NO_FATAL_FAILURE(ExpectProductOfQuantizedActivations(p, y, ActivationMode::kInt16));
    }
  }
}

// The AVX2 group kernel follows matmul_kernels.h's order exactly.
TEST(InterleaveTest, Avx2GroupKernelIsBitIdenticalToScalar) {
  if (!MatMulImplAvailable(MatMulImpl::kAvx2)) GTEST_SKIP() << "CPU has no AVX2+FMA";
  std::mt19937 rng(78);
  for (DType t : kInterleavedTypes) {
    for (int64_t cols : {32, 96, 576, 1536}) {
      SCOPED_TRACE(std::string(Name(t)) + " cols " + std::to_string(cols));
      const int64_t rows = 27, m = 7;
      Problem p{t, rows, cols, m, RandomWeightBytes(t, rows, cols, rng), {}};
      p.x = RandomFloats(m * cols, rng);
      for (int64_t i = 0; i < m; i += 2) p.x[i * cols + cols / 2] *= 300.0f;
      const std::vector<float> ys =
          RunMatMul(p, MatMulImpl::kScalar, 1, m, p.x.data(), ActivationMode::kInt16, true);
      const std::vector<float> yv =
          RunMatMul(p, MatMulImpl::kAvx2, 2, m, p.x.data(), ActivationMode::kInt16, true);
      for (int64_t i = 0; i < m * rows; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(ys[i]), std::bit_cast<uint32_t>(yv[i]))
            << "output " << i << ": scalar " << ys[i] << " avx2 " << yv[i];
      }
    }
  }
}

// The VNNI builds of the group kernel give the AVX2 build's bits for every
// tile height (each height splits its integer sums differently): the 8-row
// one per group, and the 16-row one over two adjacent groups.
TEST(InterleaveTest, VnniGroupKernelsAreBitIdenticalToAvx2) {
  if (!internal::CpuHasAvx512Vnni()) GTEST_SKIP() << "CPU has no AVX512-VNNI+BW+VL";
  constexpr int kMaxNr = internal::kMaxTileGroup;
  constexpr int64_t kRows = 2 * kInterleave;
  std::mt19937 rng(79);
  for (DType t : kInterleavedTypes) {
    for (int64_t cols : {32, 96, 576, 1536}) {
      SCOPED_TRACE(std::string(Name(t)) + " cols " + std::to_string(cols));
      std::vector<uint8_t> w = RandomWeightBytes(t, kRows, cols, rng);
      {
        const std::vector<uint8_t> src = w;
        InterleaveRows(t, kRows, cols, src.data(), w.data());
      }
      const uint8_t* group1 = w.data() + kInterleave * RowBytes(t, cols);
      const internal::ActFormat format =
          internal::ChooseKernel(t, ActivationMode::kInt16, MatMulImpl::kScalar).format;
      const int64_t stride = internal::ActRowBytes(format, cols);
      std::vector<char> act(stride * kMaxNr);
      std::vector<float> x = RandomFloats(kMaxNr * cols, rng);
      x[cols / 2] *= 300.0f;  // an outlier sets row 0's block scale
      for (int r = 0; r < kMaxNr; ++r) {
        internal::QuantizeActRow(format, x.data() + r * cols, cols, act.data() + r * stride);
      }
      for (int nr = 1; nr <= kMaxNr; ++nr) {
        // out[r * kRows + j]: activation row r, weight row j.
        std::vector<float> ya(kRows * nr), y8(kRows * nr), y16(kRows * nr);
        for (auto [fn, y] : {std::pair{internal::Avx2Int16GroupDot(t), ya.data()},
                             std::pair{internal::VnniInt16GroupDot(t), y8.data()}}) {
          fn(w.data(), act.data(), stride, nr, cols, y, kRows);
          fn(group1, act.data(), stride, nr, cols, y + kInterleave, kRows);
        }
        internal::VnniInt16Group16Dot(t)(w.data(), act.data(), stride, nr, cols, y16.data(), kRows);
        for (int i = 0; i < kRows * nr; ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(ya[i]), std::bit_cast<uint32_t>(y8[i]))
              << "nr " << nr << " output " << i << ": avx2 " << ya[i] << " vnni " << y8[i];
          ASSERT_EQ(std::bit_cast<uint32_t>(ya[i]), std::bit_cast<uint32_t>(y16[i]))
              << "nr " << nr << " output " << i << ": avx2 " << ya[i] << " vnni x16 " << y16[i];
        }
      }
    }
  }
}

// The AMX panel gives the AVX2 group kernel's bits: every tile height (1-16
// rows, a second tile, padding rows), odd and even block counts (its two-block
// steps), two pairs per call, and activations at both ends of int16 (the
// high-byte plane's sign).
TEST(InterleaveTest, AmxPanelIsBitIdenticalToAvx2) {
  if (!internal::CpuHasAmxInt8()) GTEST_SKIP() << "CPU or OS has no AMX-INT8";
  constexpr int64_t kRows = 4 * kInterleave;  // two pairs
  std::mt19937 rng(83);
  for (DType t : kInterleavedTypes) {
    for (int64_t cols : {32, 96, 576, 1536}) {
      std::vector<uint8_t> w = RandomWeightBytes(t, kRows, cols, rng);
      {
        const std::vector<uint8_t> src = w;
        InterleaveRows(t, kRows, cols, src.data(), w.data());
      }
      const internal::ActFormat format =
          internal::ChooseKernel(t, ActivationMode::kInt16, MatMulImpl::kScalar).format;
      const int64_t stride = internal::ActRowBytes(format, cols);
      for (int64_t m : {1, 3, 4, 7, 12, 16, 17, 33}) {
        SCOPED_TRACE(std::string(Name(t)) + " cols " + std::to_string(cols) + " m " +
                     std::to_string(m));
        std::vector<char> act(stride * m);
        std::vector<float> x = RandomFloats(m * cols, rng);
        x[cols / 2] *= 300.0f;  // an outlier sets row 0's block scale
        for (int64_t i = 0; i < m; ++i) {
          char* row = act.data() + i * stride;
          internal::QuantizeActRow(format, x.data() + i * cols, cols, row);
          if (i == m - 1) {  // the extremes of the low and high bytes
            auto* qs = reinterpret_cast<int16_t*>(row);
            for (int64_t k = 0; k < cols; k += 4) {
              qs[k] = 32767;
              qs[k + 1] = -32767;
              qs[k + 2] = -256;
              qs[k + 3] = 255;
            }
          }
        }
        std::vector<char> planes(internal::AmxPlaneBytes(m, cols), 'x');
        internal::AmxZeroPadRows(m, cols, planes.data());
        for (int64_t i = 0; i < m; ++i) {
          internal::AmxSplitActRow(act.data() + i * stride, cols, i, planes.data());
        }
        std::vector<float> yx(m * kRows), ya(m * kRows);
        const internal::RowDotFn group = internal::Avx2Int16GroupDot(t);
        for (int64_t g = 0; g < kRows / kInterleave; ++g) {
          for (int64_t i = 0; i < m; i += internal::kMaxTileGroup) {
            const int nr = static_cast<int>(std::min<int64_t>(internal::kMaxTileGroup, m - i));
            group(w.data() + g * kInterleave * RowBytes(t, cols), act.data() + i * stride, stride,
                  nr, cols, ya.data() + i * kRows + g * kInterleave, kRows);
          }
        }
        internal::AmxInt16Group16Panel(t)(w.data(), 2, planes.data(), m, cols, yx.data(), kRows);
        for (int64_t i = 0; i < m * kRows; ++i) {
          ASSERT_EQ(std::bit_cast<uint32_t>(ya[i]), std::bit_cast<uint32_t>(yx[i]))
              << "output " << i << ": avx2 " << ya[i] << " amx " << yx[i];
        }
      }
    }
  }
}

// DESIGN.md section 3 for the interleaved path: each row alone, batched,
// mixed with other rows, over 1-5 threads: the same bits.
// Batches of 30 and 37 rows take AMX where the CPU has it (16 + 14 rows;
// 32 rows and 5 on the vector kernels; 39 with the extra rows).
TEST(InterleaveTest, BitIdenticalAcrossBatchPositionAndThreads) {
  for (MatMulImpl impl : Impls()) {
    for (auto [t, m] :
         {std::pair{DType::kQ4_0, 13}, std::pair{DType::kQ4_1, 13}, std::pair{DType::kQ8_0, 13},
          std::pair{DType::kQ4_1, 30}, std::pair{DType::kQ4_0, 37}, std::pair{DType::kQ8_0, 37}}) {
      SCOPED_TRACE(std::string(Name(t)) + " " + ImplName(impl) + " m " + std::to_string(m));
      const Problem p = MakeProblem(t, 44, m, 8);
      std::vector<float> alone(m * p.rows);
      for (int64_t i = 0; i < m; ++i) {
        const std::vector<float> y =
            RunMatMul(p, impl, 1, 1, &p.x[i * p.cols], ActivationMode::kInt16, true);
        std::copy(y.begin(), y.end(), alone.begin() + i * p.rows);
      }
      for (int threads : {1, 2, 3, 5}) {
        const std::vector<float> y =
            RunMatMul(p, impl, threads, m, p.x.data(), ActivationMode::kInt16, true);
        ASSERT_EQ(0, std::memcmp(y.data(), alone.data(), y.size() * sizeof(float)))
            << "threads " << threads;
      }
      std::mt19937 rng(6);
      std::vector<float> x2 = RandomFloats((m + 2) * p.cols, rng, 5.0f);
      std::copy(p.x.begin(), p.x.end(), x2.begin() + p.cols);
      const std::vector<float> y2 =
          RunMatMul(p, impl, 2, m + 2, x2.data(), ActivationMode::kInt16, true);
      ASSERT_EQ(0, std::memcmp(&y2[p.rows], alone.data(), alone.size() * sizeof(float)));
    }
  }
}

// Every batch size from 1 to 70 rows, over 1-3 threads: the same bits as
// each row alone. On an AMX machine this walks every split between AMX tiles
// (whole 16-row tiles, a last tile of 14-15 rows) and the vector kernels.
TEST(InterleaveTest, EveryBatchSizeMatchesRowsAlone) {
  for (DType t : kInterleavedTypes) {
    const int64_t mmax = 70;
    const Problem p = MakeProblem(t, 44, mmax, 8);
    std::vector<float> alone(mmax * p.rows);
    for (int64_t i = 0; i < mmax; ++i) {
      const std::vector<float> y =
          RunMatMul(p, MatMulImpl::kAvx2, 1, 1, &p.x[i * p.cols], ActivationMode::kInt16, true);
      std::copy(y.begin(), y.end(), alone.begin() + i * p.rows);
    }
    for (int64_t m = 1; m <= mmax; ++m) {
      for (int threads : {1, 2, 3}) {
        const std::vector<float> y =
            RunMatMul(p, MatMulImpl::kAvx2, threads, m, p.x.data(), ActivationMode::kInt16, true);
        ASSERT_EQ(0, std::memcmp(y.data(), alone.data(), m * p.rows * sizeof(float)))
            << Name(t) << " m " << m << " threads " << threads;
      }
    }
  }
}

// RunShared gives each weight exactly what its own Run gives: shared
// quantization and one pool pass for same-format weights (row-major and
// interleaved, ragged row counts, an empty weight), one Run each for mixed
// formats and for the float batch path.
TEST(MatMulTest, RunSharedIsBitIdenticalToSeparateRuns) {
  struct Case {
    ActivationMode mode;
    std::vector<DType> types;
    bool interleave;
  };
  const Case cases[] = {
      {ActivationMode::kInt16, {DType::kQ4_1, DType::kQ4_1, DType::kQ4_1}, false},
      {ActivationMode::kInt16, {DType::kQ4_1, DType::kQ8_0, DType::kQ4_1}, true},
      {ActivationMode::kInt16, {DType::kQ4_1, DType::kQ4_K}, false},  // int16 + float formats
      {ActivationMode::kFloat, {DType::kQ4_1, DType::kQ6_K, DType::kF16}, false},
      {ActivationMode::kInt8, {DType::kQ4_0, DType::kQ8_0}, false},
  };
  const int64_t cols = 512;
  const int64_t row_counts[] = {40, 24, 0, 19};
  for (MatMulImpl impl : Impls()) {
    for (const Case& c : cases) {
      std::mt19937 rng(30);
      std::vector<std::vector<uint8_t>> bytes;
      std::vector<WeightView> views;
      for (size_t i = 0; i < c.types.size(); ++i) {
        const int64_t rows = row_counts[i % 4];
        std::vector<uint8_t> w = RandomWeightBytes(c.types[i], rows, cols, rng);
        WeightView v{c.types[i], rows, cols, nullptr};
        if (c.interleave && Interleavable(c.types[i])) {
          std::vector<uint8_t> il(w.size());
          InterleaveRows(c.types[i], rows, cols, w.data(), il.data());
          w = std::move(il);
          v.layout = WeightLayout::kInterleaved8;
        }
        bytes.push_back(std::move(w));
        v.data = bytes.back().data();
        views.push_back(v);
      }
      for (int64_t m : {1, 5, 37}) {
        SCOPED_TRACE(std::string(ImplName(impl)) + " " + ActivationModeName(c.mode) + " " +
                     Name(c.types[1]) + " m " + std::to_string(m));
        const std::vector<float> x = RandomFloats(m * cols, rng);
        ThreadPool pool(2);
        MatMul mm(&pool, impl, c.mode);
        std::vector<std::vector<float>> shared, alone;
        std::vector<float*> outs;
        for (const WeightView& v : views) {
          shared.emplace_back(m * v.rows, std::nanf(""));
          alone.emplace_back(m * v.rows, std::nanf(""));
        }
        for (auto& o : shared) outs.push_back(o.data());
        mm.RunShared(views, x.data(), m, outs);
        for (size_t i = 0; i < views.size(); ++i) {
          mm.Run(views[i], x.data(), m, alone[i].data());
          ASSERT_EQ(shared[i].size(), alone[i].size());
          if (alone[i].empty()) continue;  // the 0-row weight
          ASSERT_EQ(0, std::memcmp(shared[i].data(), alone[i].data(), alone[i].size() * 4))
              << "weight " << i;
        }
      }
    }
  }
}

TEST(MatMulTest, ZeroRowsOrBatchIsANoOp) {
  const Problem p = MakeProblem(DType::kQ4_1, 16, 2, 5);
  ThreadPool pool(2);
  MatMul mm(&pool);
  std::vector<float> y(32, 1.5f);
  mm.Run(p.view(), p.x.data(), 0, y.data());
  WeightView empty = p.view();
  empty.rows = 0;
  mm.Run(empty, p.x.data(), 2, y.data());
  for (float v : y) EXPECT_EQ(v, 1.5f);
}

}  // namespace
}  // namespace chai::kernels::cpu
