// y[m, rows] = x[m, cols] * W^T for every weight DType, multi-threaded.
//
// Quantized weights have three activation modes (docs/ENGINE.md, "Numerics",
// has the accuracy of each on the real model):
//  - ActivationMode::kInt16: Q4_0, Q4_1 and Q8_0 weights meet
//    activations quantized to 16-bit blocks (32 elements, scale amax/32767):
//    the weights are widened to int16 and multiplied with _mm256_madd_epi16
//    (vpdpwssd where the CPU has AVX512-VNNI: the same exact integer sums).
//    Row-major weights: ~11 vector ops per 32 weights at batch 1, most of
//    them horizontal sums. Weights in the kInterleaved8 layout
//    (interleave.h; CpuBackend::PrepareWeight makes it in this mode): ~7,
//    none horizontal. The activation rounding (at most amax/65534 per
//    element) moves SmolLM2-135M Q4_1 logits by ~1e-3 (max 6e-3), inside
//    DESIGN.md section 3's tolerance; greedy output is unchanged. K-quants
//    use the kFloat kernels.
//  - ActivationMode::kFloat (the engine's default, CpuBackendOptions): weight blocks are
//  dequantized on the fly into
//    float registers (exactly the values DequantizeRow gives) and FMA'd with
//    the float32 activations. The only error is float32 rounding (tests bound
//    it by 1e-5 * sum|x*w|), so results match a float32 reference that
//    dequantizes the same weights (e.g. transformers on GGUF) to ~5e-5.
//    Cost: per 32 weights one dequantization (~20 vector ops), then 4 FMAs
//    and an add per activation row; for m > 8 (AVX2) each block of weight
//    rows is dequantized once into an L1/L2 buffer that every activation
//    tile reuses (bit-identical to the fused kernel).
//  - ActivationMode::kInt8 (llama.cpp's scheme): 8-bit activation blocks (32
//    elements for Q4_0/Q4_1/Q8_0, 256 with 16-element sums for the
//    K-quants) and integer block dot products. Its rounding (up to half a
//    step of amax/127 per block) moves logits by ~0.2 (max ~1) and flips
//    greedy tokens, outside the tolerance. Kept for benchmarking.
// Float types (F32, F16, BF16) always use float activations and float FMA.
// kernels_bench measures all modes (BM_DecodeWeights, BM_MatMul).
//
// Determinism: y[i][j] is computed by one thread, from W row j and
// activation row i only, with a reduction order fixed by (dtype, cols, impl,
// activation mode); activations are quantized row by row. It is
// bit-identical whatever m is, whatever the other rows hold and however many
// threads run. The scalar and AVX2 implementations agree up to float
// rounding (FMA vs separate rounding, and in kInt8/kInt16 a different
// accumulation order), so one process always uses one.
//
// Thread-safety: a MatMul object may be used by one thread at a time (it owns
// the activation scratch buffer); the pool may be shared.
#ifndef CHAI_KERNELS_CPU_MATMUL_H_
#define CHAI_KERNELS_CPU_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace chai::kernels::cpu {

enum class MatMulImpl {
  kAuto,    // AVX2+FMA when the CPU has it, else scalar
  kScalar,  // portable reference kernels
  kAvx2,    // REQUIRES: MatMulImplAvailable(kAvx2)
};

bool MatMulImplAvailable(MatMulImpl impl);

// How quantized weights meet the activations (see the file comment).
enum class ActivationMode {
  kFloat,  // dequantize weights to float, float activations (exact weights)
  kInt8,   // quantize activations to 8-bit blocks, integer dot products
  kInt16,  // 16-bit activation blocks for Q4_0/Q4_1/Q8_0, else as kFloat
};

// "float-act", "int8-act" or "int16-act": labels for benchmarks and tests.
const char* ActivationModeName(ActivationMode mode);

// "int16", "float" or "int8" (the `--activations` flag); INVALID_ARGUMENT
// otherwise.
absl::StatusOr<ActivationMode> ParseActivationMode(std::string_view name);

class MatMul {
 public:
  // `pool` is not owned and must outlive this object.
  explicit MatMul(ThreadPool* pool, MatMulImpl impl = MatMulImpl::kAuto,
                  ActivationMode mode = ActivationMode::kInt16);
  ~MatMul();

  // y: [m, w.rows]; x: [m, w.cols]. REQUIRES: w.cols is a multiple of the
  // dtype's block size, m >= 0, y does not overlap x. A kInterleaved8 weight
  // (interleave.h) always takes the int16 kernels, whatever the mode.
  void Run(const WeightView& w, const float* x, int64_t m, float* y);

  // ys[i] = Run(ws[i], x): the activations are quantized once and every
  // weight's rows are spread over the pool together (bit-identical to
  // separate Runs). REQUIRES: ws.size() == ys.size(), every ws[i].cols equal,
  // as Run.
  void RunShared(std::span<const WeightView> ws, const float* x, int64_t m,
                 std::span<float* const> ys);

  MatMulImpl impl() const { return impl_; }
  ActivationMode activation_mode() const { return mode_; }

 private:
  ThreadPool* pool_;
  MatMulImpl impl_;  // resolved: never kAuto
  ActivationMode mode_;
  struct FreeAligned {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, FreeAligned> scratch_;  // quantized activations (kInt8)
  size_t scratch_bytes_ = 0;
};

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_MATMUL_H_
