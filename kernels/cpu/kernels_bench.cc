// chai_kernels_bench: the machine's memory read bandwidth and the CPU matmul
// on the default model's shapes (SmolLM2-135M, Q4_1 layers + Q8_0 output).
//
// Decode at batch 1 is bound by streaming the weights, so the number that
// matters is weight bytes read per second as a share of the measured read
// bandwidth ("bw_share"). Every matmul benchmark cycles through copies of its
// weights totalling well over the last-level cache, so the weights come from
// DRAM as in a real decode step; BM_DecodeWeights runs the whole model's
// matrices in forward order (~100 MB, also larger than the LLC).
//
// Counters: weight_bytes_per_s, tokens_per_s, and bw_share (weight bytes/s
// divided by the read bandwidth measured once at start-up; Google Benchmark
// prints it with a "/s" suffix because it is computed as a rate).
// Threads: CHAI_BENCH_THREADS (default: hardware concurrency). Numbers are
// only meaningful on an otherwise idle machine: check the load average.
//
// Matmul benchmarks run in every activation mode (kernels/cpu/matmul.h): the
// last argument is 0 for ActivationMode::kFloat (dequantized weights, float
// activations), 1 for kInt8 (8-bit activations, integer dot products) and 2
// for kInt16 (16-bit activations, int16 weights); the label says which.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/test_util.h"
#include "kernels/cpu/thread_pool.h"
#include "kernels/cpu/weight_arena.h"

namespace chai::kernels::cpu {
namespace {

constexpr int64_t kDim = 576, kFfn = 1536, kKvDim = 192, kVocab = 49152, kLayers = 30;
// BM_MatMul cycles through copies of a matrix adding up to this many bytes.
// More than a 32 MiB L3 but less than a 480 MiB one: each shape's bw_share
// is against a read of the same total (ReadBandwidth), so both come from the
// same cache level whichever machine runs it.
constexpr size_t kColdBytes = size_t{256} << 20;

int BenchThreads() {
  const char* env = std::getenv("CHAI_BENCH_THREADS");
  return env != nullptr ? std::max(1, std::atoi(env)) : 0;
}

ThreadPool& Pool() {
  static ThreadPool* pool = new ThreadPool(BenchThreads());
  return *pool;
}

struct AlignedBytes {
  explicit AlignedBytes(size_t n)
      : size(n), data(static_cast<uint8_t*>(::operator new(n, std::align_val_t(64)))) {}
  ~AlignedBytes() { ::operator delete(data, std::align_val_t(64)); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  size_t size;
  uint8_t* data;
};

// Read bandwidth over a buffer of `bytes`, measured once per size per process:
// the denominator of bw_share for a benchmark that streams that many bytes.
double ReadBandwidth(size_t bytes) {
  static auto* measured = new std::map<size_t, double>;
  auto [it, inserted] = measured->try_emplace(bytes, 0.0);
  if (inserted) it->second = MeasureReadBandwidth(Pool(), bytes);
  return it->second;
}

// One figure per buffer size (MiB; best of 5 passes, with and without
// software prefetching); reported as a counter so it sits in the same table
// as the matmul numbers it normalises. 96 MiB is about the default model's
// weights, 512 MiB more than any last-level cache we expect.
void BM_MemoryReadBandwidth(benchmark::State& state) {
  double bw = 0;
  for (auto _ : state) bw = MeasureReadBandwidth(Pool(), size_t(state.range(0)) << 20);
  state.counters["bytes_per_s"] = bw;
  state.counters["threads"] = Pool().num_threads();
}
BENCHMARK(BM_MemoryReadBandwidth)
    ->Arg(96)
    ->Arg(512)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// A weight matrix and as many byte-identical copies at distinct addresses as
// needed to exceed kColdBytes, so cycling through them defeats the caches.
// interleave: in the kInterleaved8 layout (interleave.h).
struct ColdWeights {
  ColdWeights(DType t, int64_t rows, int64_t cols, bool interleave)
      : type(t), rows(rows), cols(cols), interleaved(interleave) {
    std::mt19937 rng(7);
    std::vector<uint8_t> one = testing::RandomWeightBytes(t, rows, cols, rng);
    if (interleave) {
      const std::vector<uint8_t> src = one;
      InterleaveRows(t, rows, cols, src.data(), one.data());
    }
    bytes = one.size();
    copies = std::max<size_t>(2, kColdBytes / bytes + 1);
    storage = std::make_unique<AlignedBytes>(bytes * copies);
    for (size_t c = 0; c < copies; ++c) std::memcpy(storage->data + c * bytes, one.data(), bytes);
  }
  WeightView view(size_t i) const {
    return {type, rows, cols, storage->data + (i % copies) * bytes,
            interleaved ? WeightLayout::kInterleaved8 : WeightLayout::kRowMajor};
  }
  DType type;
  int64_t rows, cols;
  bool interleaved;
  size_t bytes = 0, copies = 0;
  std::unique_ptr<AlignedBytes> storage;
};

// bytes_streamed: the total the benchmark cycles through (the bandwidth
// buffer's size).
void SetCounters(benchmark::State& state, double bytes_per_iter, size_t bytes_streamed, int64_t m) {
  state.counters["weight_bytes_per_s"] = benchmark::Counter(
      bytes_per_iter * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["tokens_per_s"] =
      benchmark::Counter(static_cast<double>(m * state.iterations()), benchmark::Counter::kIsRate);
  // Share of read bandwidth; only meaningful when weight streaming is the
  // bottleneck (m = 1). The denominator is measured once per size.
  state.counters["bw_share"] = benchmark::Counter(
      bytes_per_iter * static_cast<double>(state.iterations()) / ReadBandwidth(bytes_streamed),
      benchmark::Counter::kIsRate);
}

// Mode arguments: 0 float, 1 int8, 2 int16 (row-major weights), 3 int16
// with interleaved weights (what CpuBackend runs in kInt16 mode).
ActivationMode ModeArg(int64_t v) {
  return v == 0 ? ActivationMode::kFloat : v == 1 ? ActivationMode::kInt8 : ActivationMode::kInt16;
}
// 4 and 5 (BM_RowDotHot only): interleaved weights through the 16-row
// kernel, and through the AMX panel.
bool InterleaveArg(int64_t v) { return v >= 3; }
std::string ModeLabel(int64_t v) {
  return std::string(ActivationModeName(ModeArg(v))) + (v == 5             ? "-amx"
                                                        : v == 4           ? "-x16"
                                                        : InterleaveArg(v) ? "-x8"
                                                                           : "");
}

// Args: dtype, rows, cols, m, mode (ModeArg).
void BM_MatMul(benchmark::State& state) {
  const DType t = static_cast<DType>(state.range(0));
  const int64_t rows = state.range(1), cols = state.range(2), m = state.range(3);
  const ActivationMode mode = ModeArg(state.range(4));
  static std::unique_ptr<ColdWeights> cache;
  const bool interleave = InterleaveArg(state.range(4));
  if (!cache || cache->type != t || cache->rows != rows || cache->cols != cols ||
      cache->interleaved != interleave) {
    cache.reset();
    cache = std::make_unique<ColdWeights>(t, rows, cols, interleave);
  }
  std::mt19937 rng(8);
  const std::vector<float> x = testing::RandomFloats(m * cols, rng);
  std::vector<float> y(m * rows);
  MatMul mm(&Pool(), MatMulImpl::kAuto, mode);
  ReadBandwidth(cache->bytes * cache->copies);
  size_t i = 0;
  for (auto _ : state) {
    mm.Run(cache->view(i++), x.data(), m, y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(cache->bytes), cache->bytes * cache->copies, m);
  state.SetLabel(std::string(Name(t)) + " " + ModeLabel(state.range(4)));
}

void MatMulArgs(benchmark::internal::Benchmark* b) {
  const int64_t q41 = static_cast<int64_t>(DType::kQ4_1);
  const int64_t q80 = static_cast<int64_t>(DType::kQ8_0);
  for (int64_t mode : {0, 1, 2, 3}) {
    for (int64_t m : {1, 8, 32}) {
      b->Args({q41, kDim, kDim, m, mode});    // attn q, o
      b->Args({q41, kKvDim, kDim, m, mode});  // attn k, v
      b->Args({q41, kFfn, kDim, m, mode});    // ffn gate, up
      b->Args({q41, kDim, kFfn, m, mode});    // ffn down
      b->Args({q80, kVocab, kDim, m, mode});  // output (tied embedding)
    }
  }
}
BENCHMARK(BM_MatMul)->Apply(MatMulArgs)->UseRealTime();

// Every matrix of one SmolLM2-135M forward pass, in order, at batch m: the
// weight traffic of one decode step (attention and norms excluded).
// Args: m, mode (ModeArg).
void BM_DecodeWeights(benchmark::State& state) {
  const int64_t m = state.range(0);
  const ActivationMode mode = ModeArg(state.range(1));
  const bool interleave = InterleaveArg(state.range(1));
  struct Shape {
    DType t;
    int64_t rows, cols;
  };
  std::vector<Shape> shapes;
  for (int l = 0; l < kLayers; ++l) {
    for (Shape s : {Shape{DType::kQ4_1, kDim, kDim}, Shape{DType::kQ4_1, kKvDim, kDim},
                    Shape{DType::kQ4_1, kKvDim, kDim}, Shape{DType::kQ4_1, kDim, kDim},
                    Shape{DType::kQ4_1, kFfn, kDim}, Shape{DType::kQ4_1, kFfn, kDim},
                    Shape{DType::kQ4_1, kDim, kFfn}}) {
      shapes.push_back(s);
    }
  }
  shapes.push_back({DType::kQ8_0, kVocab, kDim});
  // Back to back in one huge-page mapping, in forward order, as CpuBackend
  // places its prepared weights (weight_arena.h).
  static std::unique_ptr<Buffer> models[2];  // row-major, interleaved
  static std::vector<WeightView> layouts[2];
  std::unique_ptr<Buffer>& model = models[interleave];
  std::vector<WeightView>& views = layouts[interleave];
  if (!model) {
    size_t total = 0;
    for (const Shape& s : shapes) total += RowBytes(s.t, s.cols) * s.rows;
    absl::StatusOr<std::unique_ptr<Buffer>> huge = AllocateHugePageBuffer(total);
    if (!huge.ok()) {
      state.SkipWithError("cannot allocate the model's weights");
      return;
    }
    model = *std::move(huge);
    std::mt19937 rng(9);
    size_t off = 0;
    for (const Shape& s : shapes) {
      const std::vector<uint8_t> w = testing::RandomWeightBytes(s.t, s.rows, s.cols, rng);
      if (interleave) {
        InterleaveRows(s.t, s.rows, s.cols, w.data(), static_cast<uint8_t*>(model->data()) + off);
      } else {
        std::memcpy(static_cast<uint8_t*>(model->data()) + off, w.data(), w.size());
      }
      views.push_back({s.t, s.rows, s.cols, static_cast<uint8_t*>(model->data()) + off,
                       interleave ? WeightLayout::kInterleaved8 : WeightLayout::kRowMajor});
      off += w.size();
    }
  }
  std::mt19937 rng(10);
  const std::vector<float> x = testing::RandomFloats(m * kFfn, rng);
  std::vector<float> y(m * kVocab);
  MatMul mm(&Pool(), MatMulImpl::kAuto, mode);
  ReadBandwidth(model->size());
  for (auto _ : state) {
    for (const WeightView& v : views) mm.Run(v, x.data(), m, y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(model->size()), model->size(), m);
  state.counters["model_mb"] = static_cast<double>(model->size()) / 1e6;
  state.SetLabel(ModeLabel(state.range(1)));
}
// Modes interleaved per batch size, so a change in machine load during the
// run hits both alike.
BENCHMARK(BM_DecodeWeights)
    ->ArgsProduct({{1, 8, 12, 16, 32}, {0, 1, 2, 3}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// One kernel's own speed, with nothing else in the way: a 64 x 576 Q4_1
// matrix (23 KB, L1-resident) against `nr` activation rows, one thread, the
// row-dot function called directly (no pool, no quantization). ns_per_block
// is per 32-weight block of the matrix (all nr rows); multiply by the clock
// (GHz) for cycles per block. Args: mode (ModeArg), nr.
void BM_RowDotHot(benchmark::State& state) {
  const ActivationMode mode = ModeArg(state.range(0));
  const bool interleave = InterleaveArg(state.range(0));
  const int nr = static_cast<int>(state.range(1));
  constexpr int64_t kRows = 64, kCols = kDim;
  const DType t = DType::kQ4_1;
  const internal::KernelChoice k = internal::ChooseKernel(
      t, mode, internal::CpuHasAvx2Fma() ? MatMulImpl::kAvx2 : MatMulImpl::kScalar);
  std::mt19937 rng(11);
  std::vector<uint8_t> w = testing::RandomWeightBytes(t, kRows, kCols, rng);
  if (interleave) {
    const std::vector<uint8_t> src = w;
    InterleaveRows(t, kRows, kCols, src.data(), w.data());
  }
  const MatMulImpl impl = internal::CpuHasAvx2Fma() ? MatMulImpl::kAvx2 : MatMulImpl::kScalar;
  const bool amx = state.range(0) == 5;
  if (amx && !internal::CpuHasAmxInt8()) {
    state.SkipWithError("no AMX on this CPU");
    return;
  }
  const bool x16 = state.range(0) >= 4;
  const internal::RowDotFn group_fn =
      x16 ? internal::BestInt16Group16Dot(t, impl) : internal::BestInt16GroupDot(t, impl);
  if (group_fn == nullptr) {
    state.SkipWithError("no 16-row kernel on this CPU");
    return;
  }
  const int64_t group_rows = x16 ? 2 * kInterleave : kInterleave;
  const std::vector<float> x = testing::RandomFloats(nr * kCols, rng);
  const int64_t stride = internal::ActRowBytes(k.format, kCols);
  std::vector<char> act(stride * nr);
  for (int r = 0; r < nr; ++r) {
    internal::QuantizeActRow(k.format, x.data() + r * kCols, kCols, act.data() + r * stride);
  }
  std::vector<float> y(kRows * nr);
  const int64_t w_stride = RowBytes(t, kCols);
  // 64-byte aligned, as MatMul's scratch is.
  AlignedBytes planes(amx ? internal::AmxPlaneBytes(nr, kCols) : 0);
  if (amx) {
    internal::AmxZeroPadRows(nr, kCols, planes.data);
    for (int r = 0; r < nr; ++r) {
      internal::AmxSplitActRow(act.data() + r * stride, kCols, r, planes.data);
    }
  }
  const internal::AmxPanelFn panel = amx ? internal::AmxInt16Group16Panel(t) : nullptr;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    if (amx) {
      panel(w.data(), kRows / 16, planes.data, nr, kCols, y.data(), kRows);
    } else if (interleave) {
      for (int64_t r = 0; r < kRows; r += group_rows) {
        group_fn(w.data() + r * w_stride, act.data(), stride, nr, kCols, y.data() + r, kRows);
      }
    } else {
      for (int64_t r = 0; r < kRows; ++r) {
        k.fn(w.data() + r * w_stride, act.data(), stride, nr, kCols, y.data() + r, kRows);
      }
    }
    benchmark::ClobberMemory();
  }
  const double ns =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  state.counters["ns_per_block"] =
      ns / (static_cast<double>(kRows * (kCols / 32)) * static_cast<double>(state.iterations()));
  state.SetLabel(ModeLabel(state.range(0)) + " nr " + std::to_string(nr));
}
BENCHMARK(BM_RowDotHot)->ArgsProduct({{0, 2, 3, 4}, {1, 4}})->UseRealTime();
BENCHMARK(BM_RowDotHot)->ArgsProduct({{5}, {4, 8, 16, 32}})->UseRealTime();

// What each MatMul call costs beyond its bytes at batch 1: one interleaved
// Q4_1 matrix of about the default model's decode bytes (267,776 x 576,
// 96.4 MB), run as `splits` consecutive calls on equal row ranges. One call
// is the streaming limit of the kernel; a decode step makes ~121 calls per
// token (211 in BM_DecodeWeights). Args: splits.
void BM_SplitMatrix(benchmark::State& state) {
  constexpr int64_t kRows = 267776, kCols = kDim;
  const DType t = DType::kQ4_1;
  // In huge pages, as the CPU backend's weights are (weight_arena.h).
  static std::unique_ptr<Buffer> matrix;
  const int64_t row_bytes = RowBytes(t, kCols);
  if (!matrix) {
    std::mt19937 rng(3);
    const std::vector<uint8_t> w = testing::RandomWeightBytes(t, kRows, kCols, rng);
    matrix = *AllocateHugePageBuffer(w.size());
    InterleaveRows(t, kRows, kCols, w.data(), matrix->data());
  }
  const auto* base = static_cast<const uint8_t*>(matrix->data());
  const int64_t splits = state.range(0);
  const int64_t per = kRows / splits / 16 * 16;
  std::mt19937 rng(10);
  const std::vector<float> x = testing::RandomFloats(kCols, rng);
  std::vector<float> y(per);
  MatMul mm(&Pool(), MatMulImpl::kAuto, ActivationMode::kInt16);
  const size_t bytes = static_cast<size_t>(per * splits * row_bytes);
  ReadBandwidth(matrix->size());
  for (auto _ : state) {
    for (int64_t i = 0; i < splits; ++i) {
      mm.Run({t, per, kCols, base + i * per * row_bytes, WeightLayout::kInterleaved8}, x.data(), 1,
             y.data());
    }
    benchmark::ClobberMemory();
  }
  SetCounters(state, static_cast<double>(bytes), matrix->size(), 1);
  state.counters["us_per_call"] =
      benchmark::Counter(static_cast<double>(splits) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SplitMatrix)->Arg(1)->Arg(16)->Arg(128)->Arg(512)->UseRealTime();

// A ParallelFor of n empty indices: the pool's own cost per call. Args: n.
void BM_PoolHandoff(benchmark::State& state) {
  std::atomic<int64_t> sink{0};
  for (auto _ : state) {
    Pool().ParallelFor(state.range(0), [&](int64_t b, int64_t e) {
      sink.fetch_add(e - b, std::memory_order_relaxed);
    });
  }
}
BENCHMARK(BM_PoolHandoff)->Arg(2)->Arg(8)->Arg(64)->UseRealTime();

// Decode attention of the default model's shape (9 query heads over 3 KV
// heads of 64, 16-position blocks, all 30 layers' caches distinct so K/V come
// from DRAM at large batches as in a real step): one call per layer for
// `batch` sequences at context `len`, with a float (arg 0) or fp16 (arg 1)
// cache. Counters: us_per_layer and kv_bytes_per_s (K and V bytes read per
// second).
void BM_PagedAttention(benchmark::State& state) {
  const int32_t batch = static_cast<int32_t>(state.range(0));
  const int32_t len = static_cast<int32_t>(state.range(1));
  const DType dtype = state.range(2) == 1 ? DType::kF16 : DType::kF32;
  constexpr int32_t kQ = 9, kKv = 3, kHd = 64, kBs = 16;
  const int32_t max_blocks = (len + kBs - 1) / kBs;
  const int32_t blocks = batch * max_blocks;
  std::mt19937 rng(5);
  struct Layer {
    std::vector<uint8_t> k, v;  // dtype elements
    std::vector<int32_t> k_pages;
  };
  auto pool_of = [&](int64_t n) {
    const std::vector<float> f = testing::RandomFloats(n, rng);
    std::vector<uint8_t> bytes(RowBytes(dtype, n));
    for (int64_t i = 0; i < n; ++i) {
      if (dtype == DType::kF16) {
        const uint16_t h = Fp32ToFp16(f[i]);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      } else {
        std::memcpy(bytes.data() + 4 * i, &f[i], 4);
      }
    }
    return bytes;
  };
  std::vector<Layer> layers(kLayers);
  std::vector<int32_t> tables(static_cast<size_t>(blocks));
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), rng);
  std::vector<int32_t> k_src(static_cast<size_t>(batch) * kKv), score_head(batch * kQ),
      k_slot(batch * kQ);
  for (int32_t s = 0; s < batch; ++s) {
    for (int32_t j = 0; j < kKv; ++j) k_src[s * kKv + j] = j;
    for (int32_t h = 0; h < kQ; ++h) {
      score_head[s * kQ + h] = h;
      k_slot[s * kQ + h] = h / (kQ / kKv);
    }
  }
  for (Layer& l : layers) {
    l.k = pool_of(int64_t{blocks} * kKv * kBs * kHd);
    l.v = pool_of(int64_t{blocks} * kBs * kKv * kHd);
    l.k_pages.resize(static_cast<size_t>(blocks) * kKv);
    std::iota(l.k_pages.begin(), l.k_pages.end(), 0);
    std::shuffle(l.k_pages.begin(), l.k_pages.end(), rng);
  }
  const std::vector<float> q = testing::RandomFloats(int64_t{batch} * kQ * kHd, rng);
  std::vector<float> out(q.size());
  std::vector<int32_t> seq(batch), pos(batch, len - 1);
  std::iota(seq.begin(), seq.end(), 0);
  const TokenPlacement place{batch, seq.data(), pos.data(), tables.data(), max_blocks};
  int64_t calls = 0;
  for (auto _ : state) {
    for (Layer& l : layers) {
      KvLayer kv;
      kv.k = l.k.data();
      kv.v = l.v.data();
      kv.k_pages = l.k_pages.data();
      kv.k_src = k_src.data();
      kv.score_head = score_head.data();
      kv.k_slot = k_slot.data();
      kv.n_q_heads = kQ;
      kv.n_kv_heads = kKv;
      kv.head_dim = kHd;
      kv.block_size = kBs;
      kv.num_blocks = blocks;
      kv.num_k_pages = blocks * kKv;
      PagedAttention(q.data(), kQ, place, kv, dtype, out.data(), &Pool());
      ++calls;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["us_per_layer"] = benchmark::Counter(
      static_cast<double>(calls) * 1e-6, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["kv_bytes_per_s"] = benchmark::Counter(
      static_cast<double>(calls) * 2 * RowBytes(dtype, int64_t{batch} * len * kKv * kHd),
      benchmark::Counter::kIsRate);
  state.SetLabel(Name(dtype));
}
BENCHMARK(BM_PagedAttention)->ArgsProduct({{1, 8, 32}, {144}, {0, 1}})->UseRealTime();
BENCHMARK(BM_PagedAttention)->ArgsProduct({{1}, {1024, 4096}, {1}})->UseRealTime();

}  // namespace
}  // namespace chai::kernels::cpu

BENCHMARK_MAIN();
