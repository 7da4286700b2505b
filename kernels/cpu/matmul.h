// y[m, rows] = x[m, cols] * W^T for every weight DType, multi-threaded.
//
// Quantized weights (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K) have two activation
// modes:
//  - ActivationMode::kFloat (default): weight blocks are dequantized on the
//    fly into float registers (exactly the values DequantizeRow gives) and
//    FMA'd with the float32 activations. The only error is float32 rounding
//    (tests bound it by 1e-5 * sum|x*w|), so results match a float32
//    reference that dequantizes the same weights (e.g. transformers on GGUF).
//    Cost: per 32 weights one dequantization (unpack, convert, d*q+m: ~20
//    vector ops), then 4 FMAs and an add per activation row. Batch 1 pays
//    the dequantization per weight: on the 2-core EPYC build machine it is
//    compute-bound and 0-25% slower than kInt8. Batches share it: up to 8
//    rows per kernel call, and for m > 8 (AVX2) each block of weight rows is
//    dequantized once into an L1/L2 buffer that every activation tile reuses
//    (bit-identical to the fused kernel). From batch 8 up float mode is
//    ~1.3x faster than this kInt8 path. kernels_bench has the numbers.
//  - ActivationMode::kInt8 (llama.cpp's scheme): each activation row is first
//    quantized to 8-bit blocks (32 elements for Q4_0/Q4_1/Q8_0, 256 with
//    16-element sums for the K-quants) and the block dot products are integer.
//    Cheaper per weight at batch 1, but the activation rounding (up to half a
//    step of amax/127 per block) moves logits by ~0.2 (max ~1) on SmolLM2-135M
//    Q4_1 and flips greedy tokens where the top-2 gap is ~0.1-0.2, outside
//    DESIGN.md section 3's contract (float mode: max 5e-5). Kept for
//    benchmarking the trade-off.
// Float types (F32, F16, BF16) always use float activations and float FMA.
// kernels_bench measures both modes (BM_DecodeWeights, BM_MatMul).
//
// Determinism: y[i][j] is computed by one thread, from W row j and
// activation row i only, with a reduction order fixed by (dtype, cols, impl,
// activation mode). It is bit-identical whatever m is, whatever the other
// rows hold and however many threads run. The scalar and AVX2
// implementations agree up to float rounding (FMA vs separate rounding, and
// in kInt8 a different accumulation order), so one process always uses one.
//
// Thread-safety: a MatMul object may be used by one thread at a time (it owns
// the activation scratch buffer); the pool may be shared.
#ifndef CHAI_KERNELS_CPU_MATMUL_H_
#define CHAI_KERNELS_CPU_MATMUL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

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
  kFloat,  // dequantize weights to float, float activations (accurate)
  kInt8,   // quantize activations to 8-bit blocks, integer dot products
};

class MatMul {
 public:
  // `pool` is not owned and must outlive this object.
  explicit MatMul(ThreadPool* pool, MatMulImpl impl = MatMulImpl::kAuto,
                  ActivationMode mode = ActivationMode::kFloat);
  ~MatMul();

  // y: [m, w.rows]; x: [m, w.cols]. REQUIRES: w.cols is a multiple of the
  // dtype's block size, m >= 0, y does not overlap x.
  void Run(const WeightView& w, const float* x, int64_t m, float* y);

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
