#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu {

const char* ActivationModeName(ActivationMode mode) {
  switch (mode) {
    case ActivationMode::kFloat:
      return "float-act";
    case ActivationMode::kInt8:
      return "int8-act";
    case ActivationMode::kInt16:
      return "int16-act";
  }
  return "?";
}
namespace {

using internal::ActFormat;

// Output rows per scheduling unit: 16 floats = one cache line of y per
// activation row, so threads never write the same line.
constexpr int64_t kRowGroup = 16;
// Weight rows swept per activation tile: small enough to stay in L1 while
// every activation tile of the batch passes over them.
constexpr int64_t kRowBlock = 16;

}  // namespace

bool MatMulImplAvailable(MatMulImpl impl) {
  switch (impl) {
    case MatMulImpl::kAuto:
    case MatMulImpl::kScalar:
      return true;
    case MatMulImpl::kAvx2:
      return internal::CpuHasAvx2Fma();
  }
  return false;
}

void MatMul::FreeAligned::operator()(void* p) const { ::operator delete(p, std::align_val_t(64)); }

namespace internal {

KernelChoice ChooseKernel(DType t, ActivationMode mode, MatMulImpl impl) {
  KernelChoice c;
  c.format = ActFormatFor(t, mode);
  if (c.format == ActFormat::kQ16x32) {
    if (impl == MatMulImpl::kAvx2) {
      c.fn = Avx2Int16RowDot(t);
      c.quantize = Avx2QuantizeActRow;
    } else {
      c.fn = ScalarInt16RowDot(t);
    }
    return c;
  }
  // kInt16 serves the types without 16-bit kernels (the K-quants) in float.
  const bool dequant = mode != ActivationMode::kInt8 && c.format == ActFormat::kF32 &&
                       ScalarDequantRowDot(t) != nullptr;
  if (dequant) {
    c.max_tile = kMaxTileDequant;
    if (impl == MatMulImpl::kAvx2) {
      c.fn = Avx2DequantRowDot(t);
      c.dequant_row = Avx2DequantRow(t);
      c.predequant_fn = Avx2PreDequantRowDot();
    }
    if (c.fn == nullptr) c.fn = ScalarDequantRowDot(t);
    return c;
  }
  if (impl == MatMulImpl::kAvx2) c.fn = Avx2RowDot(t);
  if (c.fn == nullptr) c.fn = ScalarRowDot(t);
  return c;
}

}  // namespace internal

MatMul::MatMul(ThreadPool* pool, MatMulImpl impl, ActivationMode mode)
    : pool_(pool), impl_(impl), mode_(mode) {
  if (impl_ == MatMulImpl::kAuto) {
    impl_ = internal::CpuHasAvx2Fma() ? MatMulImpl::kAvx2 : MatMulImpl::kScalar;
  }
  if (impl_ == MatMulImpl::kAvx2 && !internal::CpuHasAvx2Fma()) std::abort();
}

MatMul::~MatMul() = default;

void MatMul::Run(const WeightView& w, const float* x, int64_t m, float* y) {
  if (m <= 0 || w.rows <= 0) return;
  const int64_t cols = w.cols;
  const internal::KernelChoice kernel = internal::ChooseKernel(w.dtype, mode_, impl_);
  const ActFormat format = kernel.format;

  const void* act = x;
  int64_t act_stride = cols * static_cast<int64_t>(sizeof(float));
  if (format != ActFormat::kF32) {
    act_stride = internal::ActRowBytes(format, cols);
    const size_t need = static_cast<size_t>(act_stride * m);
    if (need > scratch_bytes_) {
      scratch_.reset(::operator new(need, std::align_val_t(64)));
      scratch_bytes_ = need;
    }
    char* q = static_cast<char*>(scratch_.get());
    auto quantize = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        kernel.quantize(format, x + i * cols, cols, q + i * act_stride);
      }
    };
    // A row is ~0.1-1 us of work: a pool handoff only pays for a batch.
    if (m >= 16) {
      pool_->ParallelFor(m, quantize);
    } else {
      quantize(0, m);
    }
    act = q;
  }

  const internal::RowDotFn fn = kernel.fn;
  int64_t tile = kernel.max_tile;
  const int64_t rows = w.rows;
  const int64_t w_stride = RowBytes(w.dtype, cols);
  const char* wbase = static_cast<const char*>(w.data);
  const char* abase = static_cast<const char*>(act);
  const int64_t groups = (rows + kRowGroup - 1) / kRowGroup;
  if (kernel.predequant_fn != nullptr && m > tile) {
    // Batch path: dequantize a block of weight rows once (exactly the values
    // the fused kernel computes in registers) and sweep every activation
    // tile over it with the same accumulation: bit-identical to the fused
    // kernel, without repeating the dequantization for every tile. Tiles
    // stay within ~24 KB of L1, as each is re-read for every weight row of
    // the block (NR changes speed, never results).
    while (tile > 4 && tile * cols * static_cast<int64_t>(sizeof(float)) > (int64_t{24} << 10)) {
      tile /= 2;
    }
    const internal::RowDotFn pfn = kernel.predequant_fn;
    pool_->ParallelFor(groups, [&](int64_t gbegin, int64_t gend) {
      thread_local std::vector<float> wbuf;
      if (wbuf.size() < static_cast<size_t>(kRowBlock * cols)) wbuf.resize(kRowBlock * cols);
      const int64_t rend = std::min(rows, gend * kRowGroup);
      for (int64_t r0 = gbegin * kRowGroup; r0 < rend; r0 += kRowBlock) {
        const int64_t r1 = std::min(rend, r0 + kRowBlock);
        for (int64_t r = r0; r < r1; ++r) {
          kernel.dequant_row(wbase + r * w_stride, cols, &wbuf[(r - r0) * cols]);
        }
        for (int64_t i = 0; i < m; i += tile) {
          const int nr = static_cast<int>(std::min<int64_t>(tile, m - i));
          for (int64_t r = r0; r < r1; ++r) {
            pfn(&wbuf[(r - r0) * cols], abase + i * act_stride, act_stride, nr, cols,
                y + i * rows + r, rows);
          }
        }
      }
    });
    return;
  }
  pool_->ParallelFor(groups, [&](int64_t gbegin, int64_t gend) {
    const int64_t rend = std::min(rows, gend * kRowGroup);
    for (int64_t r0 = gbegin * kRowGroup; r0 < rend; r0 += kRowBlock) {
      const int64_t r1 = std::min(rend, r0 + kRowBlock);
      for (int64_t i = 0; i < m; i += tile) {
        const int nr = static_cast<int>(std::min<int64_t>(tile, m - i));
        for (int64_t r = r0; r < r1; ++r) {
          fn(wbase + r * w_stride, abase + i * act_stride, act_stride, nr, cols, y + i * rows + r,
             rows);
        }
      }
    }
  });
}

}  // namespace chai::kernels::cpu
