#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/interleave.h"
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
absl::StatusOr<ActivationMode> ParseActivationMode(std::string_view name) {
  if (name == "int16") return ActivationMode::kInt16;
  if (name == "float") return ActivationMode::kFloat;
  if (name == "int8") return ActivationMode::kInt8;
  return absl::InvalidArgumentError(
      absl::StrCat("activations must be int16, float or int8, got '", std::string(name), "'"));
}

namespace {

using internal::ActFormat;

// Output rows per scheduling unit: 16 floats = one cache line of y per
// activation row, so threads never write the same line.
constexpr int64_t kRowGroup = 16;
// Batches up to this many rows run their matrices as one chunk per thread.
constexpr int64_t kDecodeBatchMax = 64;
// Larger batches (prefill) in 8 chunks per thread: a chunk of a 512-row
// product is tens of microseconds, and with the pool's default 4 the thread
// that finished first waited for most of one (chai_engine_bench prefill of
// 512 tokens, five alternations on the Xeon VM: +2.5-5.8% against 4;
// docs/PERFORMANCE.md, session 14).
constexpr int kBatchChunksPerThread = 8;
static_assert(kRowGroup % kInterleave == 0, "a thread's rows are whole interleaved groups");
// Weight rows swept per activation tile: small enough to stay in L1 while
// every activation tile of the batch passes over them.
constexpr int64_t kRowBlock = 16;
// Activation rows that run on AMX, where the CPU has it: whole tiles of 16,
// and a last partial tile of at least kAmxMinTile rows. A tile multiply costs
// the same for 1 row as for 16, and below ~13 rows the vector kernels are
// faster (docs/PERFORMANCE.md, session 10); they take the rest.
constexpr int64_t kAmxMinTile = 14;
int64_t AmxRows(int64_t m) {
  const int64_t whole = m / internal::kAmxRows * internal::kAmxRows;
  return m - whole >= kAmxMinTile ? m : whole;
}
static_assert(kRowGroup % internal::kAmxRows == 0, "a thread's rows are whole AMX pairs");

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

RowDotFn BestInt16GroupDot(DType t, MatMulImpl impl) {
  if (impl == MatMulImpl::kScalar) return ScalarInt16GroupDot(t);
  return CpuHasAvx512Vnni() ? VnniInt16GroupDot(t) : Avx2Int16GroupDot(t);
}

RowDotFn BestInt16Group16Dot(DType t, MatMulImpl impl) {
  if (impl == MatMulImpl::kScalar || !CpuHasAvx512Vnni()) return nullptr;
  return VnniInt16Group16Dot(t);
}

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

namespace {

// One weight of a Run/RunShared call: its kernels and where its rows go.
struct Job {
  WeightView w;
  internal::KernelChoice kernel;
  internal::RowDotFn group_fn = nullptr;    // kInterleaved8 only
  internal::RowDotFn group16_fn = nullptr;  // two groups per call, where available
  internal::AmxPanelFn amx_fn = nullptr;    // batches on AMX, where available
  float* y = nullptr;
  int64_t w_stride = 0;
  int64_t groups = 0;  // scheduling units of kRowGroup rows
};

// Rows [r_begin, r_end) of job j's output for all m activation rows
// (planes: the activations split for AMX, where j.amx_fn is set).
void RunRows(const Job& j, const char* act, int64_t act_stride, const void* planes, int64_t m,
             int64_t r_begin, int64_t r_end) {
  const int64_t rows = j.w.rows, cols = j.w.cols;
  const char* wbase = static_cast<const char*>(j.w.data);
  const int64_t tile = j.kernel.max_tile;
  if (j.group_fn != nullptr) {
    // Activation rows [i_begin, m) of weight rows [r0, r1): 16 rows per call
    // from two interleaved groups where the CPU has that kernel, else 8 from
    // one (rows up to full); the last rows % 8 are row-major and take the
    // row kernel. Each activation tile re-reads the groups' weights from L1
    // (a few KB). All of them, and AMX, give the same bits.
    const int64_t full = rows / kInterleave * kInterleave;
    const auto vector_rows = [&](int64_t i_begin, int64_t r0, int64_t r1) {
      while (r0 < r1) {
        const bool group16 = j.group16_fn != nullptr && r0 + 2 * kInterleave <= std::min(full, r1);
        const bool group = r0 + kInterleave <= full;
        const internal::RowDotFn fn = group16 ? j.group16_fn : group ? j.group_fn : j.kernel.fn;
        const int64_t step = group ? internal::kMaxTileGroup : tile;
        for (int64_t i = i_begin; i < m; i += step) {
          const int nr = static_cast<int>(std::min<int64_t>(step, m - i));
          fn(wbase + r0 * j.w_stride, act + i * act_stride, act_stride, nr, cols,
             j.y + i * rows + r0, rows);
        }
        r0 += group16 ? 2 * kInterleave : group ? kInterleave : 1;
      }
    };
    if (j.amx_fn != nullptr) {
      // Whole 16-row pairs of groups for the first AmxRows(m) activation
      // rows on AMX; their other rows, and the rows past the pairs, below.
      const int64_t m_amx = AmxRows(m);
      const int64_t pairs = std::max<int64_t>(0, std::min(r_end, full) - r_begin) / 16;
      if (pairs > 0) {
        j.amx_fn(wbase + r_begin * j.w_stride, pairs, planes, m_amx, cols, j.y + r_begin, rows);
      }
      vector_rows(m_amx, r_begin, r_begin + 16 * pairs);
      r_begin += 16 * pairs;
    }
    vector_rows(0, r_begin, r_end);
    return;
  }
  for (int64_t r0 = r_begin; r0 < r_end; r0 += kRowBlock) {
    const int64_t r1 = std::min(r_end, r0 + kRowBlock);
    for (int64_t i = 0; i < m; i += tile) {
      const int nr = static_cast<int>(std::min<int64_t>(tile, m - i));
      for (int64_t r = r0; r < r1; ++r) {
        j.kernel.fn(wbase + r * j.w_stride, act + i * act_stride, act_stride, nr, cols,
                    j.y + i * rows + r, rows);
      }
    }
  }
}

}  // namespace

void MatMul::Run(const WeightView& w, const float* x, int64_t m, float* y) {
  RunShared(std::span<const WeightView>(&w, 1), x, m, std::span<float* const>(&y, 1));
}

void MatMul::RunShared(std::span<const WeightView> ws, const float* x, int64_t m,
                       std::span<float* const> ys) {
  if (m <= 0) return;
  absl::InlinedVector<Job, 4> jobs;
  for (size_t i = 0; i < ws.size(); ++i) {
    const WeightView& w = ws[i];
    if (w.rows <= 0) continue;
    Job j;
    j.w = w;
    j.y = ys[i];
    const bool interleaved = w.layout == WeightLayout::kInterleaved8;
    // Interleaved weights exist only for the int16 kernels (interleave.h).
    j.kernel = internal::ChooseKernel(w.dtype, interleaved ? ActivationMode::kInt16 : mode_, impl_);
    if (interleaved) {
      j.group_fn = internal::BestInt16GroupDot(w.dtype, impl_);
      j.group16_fn = internal::BestInt16Group16Dot(w.dtype, impl_);
      if (impl_ != MatMulImpl::kScalar && AmxRows(m) > 0 && internal::CpuHasAmxInt8()) {
        j.amx_fn = internal::AmxInt16Group16Panel(w.dtype);
      }
    }
    j.w_stride = RowBytes(w.dtype, w.cols);
    j.groups = (w.rows + kRowGroup - 1) / kRowGroup;
    jobs.push_back(j);
  }
  if (jobs.empty()) return;
  // One shared activation format, and no job on the dequantize-once batch
  // path (it has its own loop): otherwise each weight runs alone.
  const auto batch_path = [m](const Job& j) {
    return j.kernel.predequant_fn != nullptr && m > j.kernel.max_tile;
  };
  bool fuse = true;
  for (const Job& j : jobs) {
    fuse = fuse && j.kernel.format == jobs[0].kernel.format && !batch_path(j);
  }
  if (!fuse && jobs.size() > 1) {
    for (const Job& j : jobs) Run(j.w, x, m, j.y);
    return;
  }

  const int64_t cols = jobs[0].w.cols;
  const ActFormat format = jobs[0].kernel.format;
  const void* act = x;
  void* planes = nullptr;
  int64_t act_stride = cols * static_cast<int64_t>(sizeof(float));
  if (format != ActFormat::kF32) {
    act_stride = internal::ActRowBytes(format, cols);
    // The AMX planes follow the rows, 64-byte aligned.
    const bool amx =
        std::any_of(jobs.begin(), jobs.end(), [](const Job& j) { return j.amx_fn != nullptr; });
    const int64_t rows_bytes = (act_stride * m + 63) / 64 * 64;
    const size_t need =
        static_cast<size_t>(rows_bytes + (amx ? internal::AmxPlaneBytes(m, cols) : 0));
    if (need > scratch_bytes_) {
      scratch_.reset(::operator new(need, std::align_val_t(64)));
      scratch_bytes_ = need;
    }
    char* q = static_cast<char*>(scratch_.get());
    if (amx) {
      planes = q + rows_bytes;
      internal::AmxZeroPadRows(m, cols, planes);
    }
    const internal::QuantizeRowFn quantize_row = jobs[0].kernel.quantize;
    auto quantize = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        quantize_row(format, x + i * cols, cols, q + i * act_stride);
        if (planes != nullptr) internal::AmxSplitActRow(q + i * act_stride, cols, i, planes);
      }
    };
    // A row is ~0.1-1 us of work: a pool handoff only pays for a batch.
    // With AMX planes, whole 16-row tiles per thread: a tile's block scales
    // share cache lines, and rows of one tile written from two cores made
    // batch 32 ~10% slower (docs/PERFORMANCE.md, session 10).
    if (m >= 16) {
      const int64_t unit = planes != nullptr ? internal::kAmxRows : 1;
      pool_->ParallelFor((m + unit - 1) / unit, [&](int64_t begin, int64_t end) {
        quantize(begin * unit, std::min(m, end * unit));
      });
    } else {
      quantize(0, m);
    }
    act = q;
  }
  const char* abase = static_cast<const char*>(act);

  if (batch_path(jobs[0])) {
    // Batch path: dequantize a block of weight rows once (exactly the values
    // the fused kernel computes in registers) and sweep every activation
    // tile over it with the same accumulation: bit-identical to the fused
    // kernel, without repeating the dequantization for every tile. Tiles
    // stay within ~24 KB of L1, as each is re-read for every weight row of
    // the block (NR changes speed, never results).
    const Job& j = jobs[0];
    const int64_t rows = j.w.rows;
    const char* wbase = static_cast<const char*>(j.w.data);
    int64_t tile = j.kernel.max_tile;
    while (tile > 4 && tile * cols * static_cast<int64_t>(sizeof(float)) > (int64_t{24} << 10)) {
      tile /= 2;
    }
    const internal::RowDotFn pfn = j.kernel.predequant_fn;
    pool_->ParallelFor(j.groups, [&](int64_t gbegin, int64_t gend) {
      thread_local std::vector<float> wbuf;
      if (wbuf.size() < static_cast<size_t>(kRowBlock * cols)) wbuf.resize(kRowBlock * cols);
      const int64_t rend = std::min(rows, gend * kRowGroup);
      for (int64_t r0 = gbegin * kRowGroup; r0 < rend; r0 += kRowBlock) {
        const int64_t r1 = std::min(rend, r0 + kRowBlock);
        for (int64_t r = r0; r < r1; ++r) {
          j.kernel.dequant_row(wbase + r * j.w_stride, cols, &wbuf[(r - r0) * cols]);
        }
        for (int64_t i = 0; i < m; i += tile) {
          const int nr = static_cast<int>(std::min<int64_t>(tile, m - i));
          for (int64_t r = r0; r < r1; ++r) {
            pfn(&wbuf[(r - r0) * cols], abase + i * act_stride, act_stride, nr, cols,
                j.y + i * rows + r, rows);
          }
        }
      }
    });
    return;
  }

  // Every weight's row groups as one index space [0, total), so the pool
  // splits all of them together. Decode-sized batches take one chunk per
  // thread: the rows' work is uniform, and each extra chunk cost ~2 us, 10%
  // of a batch-1 step's matrix time over its ~121 calls (docs/PERFORMANCE.md,
  // session 9). Larger batches take kBatchChunksPerThread, which absorbs a
  // thread that runs late.
  int64_t total = 0;
  for (const Job& j : jobs) total += j.groups;
  const int chunks_per_thread = m <= kDecodeBatchMax ? 1 : kBatchChunksPerThread;
  pool_->ParallelFor(
      total,
      [&](int64_t gbegin, int64_t gend) {
        int64_t first = 0;  // first unit of the current job
        for (const Job& j : jobs) {
          const int64_t b = std::max(gbegin, first) - first;
          const int64_t e = std::min(gend, first + j.groups) - first;
          if (b < e) {
            RunRows(j, abase, act_stride, planes, m, b * kRowGroup,
                    std::min(j.w.rows, e * kRowGroup));
          }
          first += j.groups;
        }
      },
      chunks_per_thread);
}

}  // namespace chai::kernels::cpu
