#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/interleave.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_arena.h"

namespace chai::kernels {
namespace {

constexpr size_t kAlignment = 64;  // a cache line; also enough for any SIMD load

// Under AddressSanitizer the interleaved weights come from operator new, so
// that a kernel reading past one hits a redzone; the weight arena's slabs
// (weight_arena.h) have none between their pieces.
// The same holds for the huge-page mappings of large buffers below.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kWeightsInArena = false;
constexpr bool kLargeBuffersInHugePages = false;
#else
constexpr bool kWeightsInArena = true;
constexpr bool kLargeBuffersInHugePages = true;
#endif

// Buffers from this size up get a huge-page mapping of their own
// (AllocateHugePageBuffer). The one that matters is the KV cache (one
// buffer for all layers, engine/kv_cache.cc): a decode step reads scattered
// 2 KB K pages and 6 KB V blocks of every sequence in every layer, far more
// than the TLB covers in 4 KiB pages. kernels_bench BM_PagedAttention at
// batch 32 (30 layers, 106 MB): 194 -> 126 us per layer; chai_engine_bench
// batch 32 at context 144 and batch 8 at context 2048: +2-3%
// (docs/PERFORMANCE.md, session 13).
constexpr size_t kHugePageBufferBytes = size_t{2} << 20;

class HostBuffer final : public Buffer {
 public:
  HostBuffer(void* data, size_t size) : data_(data), size_(size) {}
  ~HostBuffer() override { ::operator delete(data_, std::align_val_t(kAlignment)); }
  void* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_;
  size_t size_;
};

class CpuBackend final : public Backend {
  // Thresholds for splitting the element-wise ops over the pool.
  static constexpr int64_t kMinParallelElements = 4096;
  static constexpr int32_t kMinParallelTokens = 4;
  static constexpr int64_t kPiece = 1024;  // SwiGlu elements per work item

 public:
  explicit CpuBackend(const CpuBackendOptions& options)
      : kv_dtype_(options.kv_dtype),
        pool_(options.threads),
        matmul_(&pool_, options.matmul_impl, options.activation_mode) {}

  std::string_view name() const override { return "cpu"; }

  bool HostMemory() const override { return true; }
  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    if (kLargeBuffersInHugePages && bytes >= kHugePageBufferBytes) {
      return cpu::AllocateHugePageBuffer(bytes);
    }
    // Round up so SIMD loops may read whole cache lines at the end.
    const size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = ::operator new(rounded == 0 ? kAlignment : rounded, std::align_val_t(kAlignment),
                             std::nothrow);
    if (p == nullptr) {
      return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
    }
    return std::make_unique<HostBuffer>(p, bytes);
  }

  void CopyToDevice(void* dst, const void* host_src, size_t bytes) override {
    std::memcpy(dst, host_src, bytes);
  }
  void CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    // The logits of a batch-32 step are 6.3 MB for the default model: one
    // core copies them in ~0.8 ms (2.5% of the step), so large copies are
    // split over the pool.
    constexpr size_t kParallelCopyBytes = size_t{1} << 20, kPiece = size_t{64} << 10;
    if (bytes < kParallelCopyBytes) {
      std::memcpy(host_dst, src, bytes);
      return;
    }
    const int64_t pieces = static_cast<int64_t>((bytes + kPiece - 1) / kPiece);
    pool_.ParallelFor(pieces, [&](int64_t b, int64_t e) {
      const size_t begin = static_cast<size_t>(b) * kPiece;
      const size_t end = std::min(bytes, static_cast<size_t>(e) * kPiece);
      std::memcpy(static_cast<char*>(host_dst) + begin, static_cast<const char*>(src) + begin,
                  end - begin);
    });
  }
  void Synchronize() override {}

  absl::StatusOr<PreparedWeight> PrepareWeight(const WeightView& host, WeightUse use) override {
    if (host.rows < 0 || host.cols < 0 || (host.data == nullptr && host.rows * host.cols > 0)) {
      return absl::InvalidArgumentError("cpu: weight view without data or with negative shape");
    }
    if (host.layout != WeightLayout::kRowMajor) {
      return absl::InvalidArgumentError("cpu: weight view is not row-major");
    }
    const int64_t row_bytes = RowBytes(host.dtype, host.cols);
    if (row_bytes < 0) {
      return absl::InvalidArgumentError(absl::StrCat("cpu: ", Name(host.dtype), " weight with ",
                                                     host.cols, " columns (not whole blocks)"));
    }
    // The int16 kernels read 8 interleaved rows at a time (interleave.h):
    // a copy in that layout, made once here in the huge-page arena
    // (weight_arena.h). Everything else is read in place.
    if (use == WeightUse::kMatMul && matmul_.activation_mode() == cpu::ActivationMode::kInt16 &&
        cpu::Interleavable(host.dtype) && host.rows >= cpu::kInterleave) {
      const size_t bytes = static_cast<size_t>(row_bytes * host.rows);
      absl::StatusOr<std::unique_ptr<Buffer>> copy =
          kWeightsInArena ? weight_arena_.Allocate(bytes) : Allocate(bytes);
      if (!copy.ok()) return copy.status();
      // Groups are independent: split them over the pool (the last unit
      // takes the row-major tail rows).
      const char* src = static_cast<const char*>(host.data);
      char* dst = static_cast<char*>((*copy)->data());
      const int64_t units = (host.rows + cpu::kInterleave - 1) / cpu::kInterleave;
      pool_.ParallelFor(units, [&](int64_t begin, int64_t end) {
        const int64_t r0 = begin * cpu::kInterleave;
        const int64_t r1 = std::min(host.rows, end * cpu::kInterleave);
        cpu::InterleaveRows(host.dtype, r1 - r0, host.cols, src + r0 * row_bytes,
                            dst + r0 * row_bytes);
      });
      WeightView view = host;
      view.data = (*copy)->data();
      view.layout = WeightLayout::kInterleaved8;
      return PreparedWeight{view, *std::move(copy)};
    }
    return PreparedWeight{host, nullptr};
  }

  void Embed(const WeightView& table, const int32_t* ids, int32_t n, float* out) override {
    cpu::EmbedRows(table, ids, n, out);
  }
  // The element-wise ops split large batches over the pool by whole rows
  // (tokens) or element ranges; each value is computed by the same code
  // whatever the split, so the bits do not change (cpu_backend.h). Small
  // batches (decode at batch 1) stay on the caller: a handoff costs more than
  // the work.
  void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
               float* out) override {
    ByRows(n, dim, [&](int64_t b, int32_t rows) {
      cpu::RmsNormRows(x + b * dim, w, rows, dim, eps, out + b * dim);
    });
  }
  void MatMul(const WeightView& w, const float* x, int32_t m, float* y) override {
    matmul_.Run(w, x, m, y);
  }
  void MatMulShared(std::span<const WeightView> ws, const float* x, int32_t m,
                    std::span<float* const> ys) override {
    matmul_.RunShared(ws, x, m, ys);
  }
  void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
            const RopeParams& rope) override {
    // Per token: head_dim trig evaluations in double, then the rotation.
    if (n < kMinParallelTokens) {
      cpu::RopeRows(x, pos, n, heads, rope);
      return;
    }
    const int64_t row = int64_t{heads} * rope.head_dim;
    pool_.ParallelFor(n, [&](int64_t b, int64_t e) {
      cpu::RopeRows(x + b * row, pos + b, static_cast<int32_t>(e - b), heads, rope);
    });
  }
  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override {
    // ~5-10 ns per element (an exp each): worth splitting from a few
    // thousand elements, in cache-line-aligned pieces.
    if (n < kMinParallelElements) {
      cpu::SwiGluValues(gate, up, n, out);
      return;
    }
    const int64_t pieces = (n + kPiece - 1) / kPiece;
    pool_.ParallelFor(pieces, [&](int64_t b, int64_t e) {
      const int64_t begin = b * kPiece, end = std::min(n, e * kPiece);
      cpu::SwiGluValues(gate + begin, up + begin, end - begin, out + begin);
    });
  }
  void Add(float* x, const float* y, int64_t n) override { cpu::AddValues(x, y, n); }
  // One pool call and one pass over each row instead of two: batch-32 Add +
  // RmsNorm 0.78 -> 0.47 ms per step (--op-times, docs/PERFORMANCE.md,
  // session 14).
  void AddRmsNorm(float* x, const float* y, const float* w, int32_t n, int32_t dim, float eps,
                  float* out) override {
    ByRows(n, dim, [&](int64_t b, int32_t rows) {
      cpu::AddRmsNormRows(x + b * dim, y + b * dim, w, rows, dim, eps, out + b * dim);
    });
  }
  void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                  float* dst) override {
    cpu::GatherRowsOf(src, rows, n, dim, dst);
  }
  DType KvDtype() const override { return kv_dtype_; }
  void StoreKv(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) override {
    // Each token writes its own cache rows, mostly lines not in cache (a
    // wait per line): a batch's tokens are split over the pool so that the
    // cores wait in parallel (batch 32: 0.61-0.68 -> 0.45-0.52 ms per step,
    // docs/PERFORMANCE.md session 11).
    if (place.n_tokens < kMinParallelTokens) {
      cpu::StoreKvRows(k, v, place, kv, kv_dtype_);
      return;
    }
    const int64_t row = int64_t{kv.n_kv_heads} * kv.head_dim;
    pool_.ParallelFor(place.n_tokens, [&](int64_t b, int64_t e) {
      TokenPlacement part = place;
      part.n_tokens = static_cast<int32_t>(e - b);
      part.seq = place.seq + b;
      part.pos = place.pos + b;
      cpu::StoreKvRows(k + b * row, v + b * row, part, kv, kv_dtype_);
    });
  }
  void Attention(const float* q, int32_t n_q_heads, const TokenPlacement& place, const KvLayer& kv,
                 float* out) override {
    cpu::PagedAttention(q, n_q_heads, place, kv, kv_dtype_, out, &pool_);
  }

 private:
  // fn(first_row, rows) over the n rows of a [n, dim] op: all on the caller
  // below kMinParallelElements, else split over the pool by whole rows.
  void ByRows(int32_t n, int32_t dim, absl::FunctionRef<void(int64_t, int32_t)> fn) {
    if (int64_t{n} * dim < kMinParallelElements) {
      fn(0, n);
      return;
    }
    pool_.ParallelFor(n, [&](int64_t b, int64_t e) { fn(b, static_cast<int32_t>(e - b)); });
  }

  DType kv_dtype_;
  cpu::WeightArena weight_arena_;  // the interleaved weight copies
  cpu::ThreadPool pool_;
  cpu::MatMul matmul_;
};

}  // namespace

absl::Status CpuBackendOptions::Validate() const {
  if (threads < 0 || threads > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("cpu: threads must be 0..1024, got ", threads));
  }
  if (!cpu::MatMulImplAvailable(matmul_impl)) {
    return absl::InvalidArgumentError("cpu: AVX2+FMA kernels requested but the CPU lacks them");
  }
  if (kv_dtype != DType::kF32 && kv_dtype != DType::kF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu: KV cache element type must be F32 or F16, got ", Name(kv_dtype)));
  }
  return absl::OkStatus();
}

absl::StatusOr<DType> ParseKvDtype(std::string_view name) {
  if (name == "f16") return DType::kF16;
  if (name == "f32") return DType::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("KV cache dtype must be f16 or f32, got '", std::string(name), "'"));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateCpuBackendOrError(const CpuBackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  return std::make_unique<CpuBackend>(options);
}

std::unique_ptr<Backend> CreateCpuBackend(const CpuBackendOptions& options) {
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateCpuBackendOrError(options);
  if (!backend.ok()) return nullptr;
  return *std::move(backend);
}

}  // namespace chai::kernels
