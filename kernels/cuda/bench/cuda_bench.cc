// chai_cuda_bench: decode and prefill speed of the CUDA backend on a LLaMA-7B
// shaped model (32 layers, 32 heads, head_dim 128, dim 4096, ffn 11008,
// vocab 32000) with random fp16 weights made on the device (no model file),
// driven through the Backend ops in the order engine/model_runner.cc issues
// them. Measures, in one run on one device:
//   - device-to-device cudaMemcpy bandwidth (the yardstick for decode);
//   - decode tokens/s at batch 1, 16, 64 with contexts 512 and 2048, CHAI off
//     and on (layers 18-31 at 4 clusters, random but fixed per-sequence maps):
//     each step uploads its inputs, replays the step's ops from a CUDA graph
//     (as ModelRunner does for decode) and copies the logits to the host; the
//     same step issued op by op, and the logits copy alone, are reported
//     beside it; batch-1 decode as a share of the copy bandwidth;
//   - time to first token of a 2048-token prompt, CHAI off and on (fixed
//     maps: online clustering's own cost is not in this number);
//   - device time by op class (matrix products, attention, the rest) of one
//     batch-1 decode step at the longest context and of each prefill.
// Configurations whose fp32 KV cache does not fit in device memory are
// reported as skipped. Results go to stdout and, with --json FILE, to FILE.
//
// Exit: 0 ran, 1 a CUDA error, 2 usage, 3 no CUDA device.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_kernels.h"

namespace chai::kernels::cuda {
namespace {

struct Shape {
  int layers = 32, dim = 4096, heads = 32, kv_heads = 32, head_dim = 128, ffn = 11008;
  int vocab = 32000;
};

struct Flags {
  Shape shape;
  std::vector<int> batches = {1, 16, 64};
  std::vector<int> contexts = {512, 2048};
  int prefill = 2048;
  int steps = 8;  // timed decode steps per configuration
  int chai_first = 18, chai_clusters = 4;
  uint64_t seed = 1;
  std::string json;
};

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A failed CUDA call or op ends the run (exit 1) with the backend's message.
#define BENCH_CHECK(expr)                                                                          \
  do {                                                                                             \
    const absl::Status s_ = (expr);                                                                \
    if (!s_.ok()) {                                                                                \
      std::fprintf(stderr, "chai_cuda_bench: %s: %s\n", #expr, std::string(s_.message()).c_str()); \
      std::exit(1);                                                                                \
    }                                                                                              \
  } while (0)

absl::Status CudaOk(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

class Bench {
 public:
  Bench(CudaBackend* be, const Flags& f) : be_(be), f_(f), s_(f.shape) {
    stream_ = static_cast<cudaStream_t>(be->stream());
  }

  std::unique_ptr<Buffer> Alloc(size_t bytes) {
    absl::StatusOr<std::unique_ptr<Buffer>> b = be_->Allocate(bytes);
    BENCH_CHECK(b.status());
    return *std::move(b);
  }
  WeightView RandomWeight(int64_t rows, int64_t cols) {
    owned_.push_back(Alloc(static_cast<size_t>(rows * cols) * 2));
    // Uniform(-a, a) with variance 1/cols keeps activations O(1) through the layers.
    const float a = std::sqrt(3.0f / static_cast<float>(cols));
    BENCH_CHECK(CudaOk(LaunchFillRandomF16(static_cast<uint16_t*>(owned_.back()->data()),
                                           rows * cols, a, ++seed_, stream_),
                       "fill"));
    return {DType::kF16, rows, cols, owned_.back()->data()};
  }
  float* RandomF32(int64_t n, float offset, float scale) {
    owned_.push_back(Alloc(static_cast<size_t>(n) * 4));
    float* p = static_cast<float*>(owned_.back()->data());
    BENCH_CHECK(CudaOk(LaunchFillRandomF32(p, n, offset, scale, ++seed_, stream_), "fill"));
    return p;
  }

  void MakeModel() {
    const double t0 = Now();
    const int q_dim = s_.heads * s_.head_dim, kv_dim = s_.kv_heads * s_.head_dim;
    embd_ = RandomWeight(s_.vocab, s_.dim);
    output_ = RandomWeight(s_.vocab, s_.dim);
    out_norm_ = RandomF32(s_.dim, 1.0f, 0.1f);
    layers_.resize(s_.layers);
    for (Layer& l : layers_) {
      l.wq = RandomWeight(q_dim, s_.dim);
      l.wk = RandomWeight(kv_dim, s_.dim);
      l.wv = RandomWeight(kv_dim, s_.dim);
      l.wo = RandomWeight(s_.dim, q_dim);
      l.gate = RandomWeight(s_.ffn, s_.dim);
      l.up = RandomWeight(s_.ffn, s_.dim);
      l.down = RandomWeight(s_.dim, s_.ffn);
      l.attn_norm = RandomF32(s_.dim, 1.0f, 0.1f);
      l.ffn_norm = RandomF32(s_.dim, 1.0f, 0.1f);
    }
    weight_bytes_ = 0;
    for (const Layer& l : layers_) {
      for (const WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down}) {
        weight_bytes_ += w->rows * w->cols * 2;
      }
    }
    weight_bytes_ += output_.rows * output_.cols * 2;
    inv_freq_.resize(s_.head_dim / 2);
    for (int i = 0; i < s_.head_dim / 2; ++i) {
      inv_freq_[i] = static_cast<float>(std::pow(10000.0, -2.0 * i / s_.head_dim));
    }
    rope_ = {s_.head_dim, false, inv_freq_.data()};
    be_->Synchronize();
    BENCH_CHECK(be_->status());
    std::printf("weights: %.2f GB fp16 made on the device in %.2f s\n", weight_bytes_ / 1e9,
                Now() - t0);
  }

  // Bytes of the K and V pools of one layer for max_seqs sequences of up to
  // max_len positions (blocks of kBlock; K pages for every KV head, CHAI runs
  // use fewer of them).
  int64_t PoolBytes(int64_t max_seqs, int64_t max_len) const {
    const int64_t blocks = max_seqs * ((max_len + kBlock - 1) / kBlock);
    return blocks * kBlock * s_.kv_heads * s_.head_dim * 4 * 2;
  }

  // Allocates (replacing the previous) cache pools filled with random keys
  // and values (a realistic softmax, and no NaN from stale memory); false
  // when they would not fit, keeping 2 GiB free for scratch.
  bool MakeCache(int64_t max_seqs, int64_t max_len) {
    cache_.clear();
    be_->Synchronize();
    size_t free_b = 0, total_b = 0;
    BENCH_CHECK(DeviceMemoryInfo(be_->device(), &free_b, &total_b));
    const int64_t per_layer = PoolBytes(max_seqs, max_len);
    if (per_layer * s_.layers + (int64_t{2} << 30) > static_cast<int64_t>(free_b)) return false;
    max_blocks_ = static_cast<int32_t>((max_len + kBlock - 1) / kBlock);
    const int64_t blocks = max_seqs * max_blocks_;
    kv_.assign(s_.layers, KvLayer{});
    for (int l = 0; l < s_.layers; ++l) {
      cache_.push_back(Alloc(static_cast<size_t>(per_layer)));
      float* k = static_cast<float*>(cache_.back()->data());
      BENCH_CHECK(
          CudaOk(LaunchFillRandomF32(k, per_layer / 4, 0.0f, 1.0f, ++seed_, stream_), "fill"));
      kv_[l].k = k;
      kv_[l].v = k + per_layer / 8;
      kv_[l].n_q_heads = s_.heads;
      kv_[l].n_kv_heads = s_.kv_heads;
      kv_[l].head_dim = s_.head_dim;
      kv_[l].block_size = kBlock;
      kv_[l].num_blocks = static_cast<int32_t>(blocks);
      kv_[l].num_k_pages = static_cast<int32_t>(blocks * s_.kv_heads);
    }
    return true;
  }

  // Head maps for `seqs` sequences: plain, or CHAI in layers >= chai_first
  // (random clusters of the query heads, fixed by the seed; representative =
  // lowest head of a cluster; only representatives' KV heads keep K pages).
  void MakeMaps(int seqs, bool chai) {
    const int nq = s_.heads, nkv = s_.kv_heads, group = nq / nkv;
    std::mt19937 rng(static_cast<uint32_t>(f_.seed));
    maps_.clear();
    std::vector<int32_t> plain_pages(static_cast<size_t>(seqs) * max_blocks_ * nkv);
    std::vector<int32_t> plain_src(static_cast<size_t>(seqs) * nkv), plain_head(seqs * nq),
        plain_slot(seqs * nq);
    for (int s = 0; s < seqs; ++s) {
      for (int b = 0; b < max_blocks_; ++b) {
        for (int j = 0; j < nkv; ++j) {
          plain_pages[(int64_t{s} * max_blocks_ + b) * nkv + j] =
              static_cast<int32_t>((int64_t{s} * max_blocks_ + b) * nkv + j);
        }
      }
      for (int j = 0; j < nkv; ++j) plain_src[s * nkv + j] = j;
      for (int h = 0; h < nq; ++h) {
        plain_head[s * nq + h] = h;
        plain_slot[s * nq + h] = h / group;
      }
    }
    chai_k_fraction_ = 1.0;
    for (int l = 0; l < s_.layers; ++l) {
      std::vector<int32_t> pages = plain_pages, src = plain_src, head = plain_head,
                           slot = plain_slot;
      if (chai && l >= f_.chai_first && f_.chai_clusters < nq) {
        for (int s = 0; s < seqs; ++s) {
          // Random partition of the heads into chai_clusters non-empty clusters.
          std::vector<int> order(nq);
          std::iota(order.begin(), order.end(), 0);
          std::shuffle(order.begin(), order.end(), rng);
          std::vector<int> cluster(nq);
          for (int i = 0; i < nq; ++i)
            cluster[order[i]] = i < f_.chai_clusters ? i : rng() % f_.chai_clusters;
          std::vector<int> rep(f_.chai_clusters, -1);
          for (int h = 0; h < nq; ++h) {
            if (rep[cluster[h]] < 0) rep[cluster[h]] = h;
          }
          // K slots: one per distinct representative KV head, packed from 0.
          std::vector<int> slot_of_kv(nkv, -1);
          int width = 0;
          for (int c = 0; c < f_.chai_clusters; ++c) {
            const int kvh = rep[c] / group;
            if (slot_of_kv[kvh] < 0) slot_of_kv[kvh] = width++;
          }
          for (int j = 0; j < nkv; ++j) src[s * nkv + j] = -1;
          for (int kvh = 0; kvh < nkv; ++kvh) {
            if (slot_of_kv[kvh] >= 0) src[s * nkv + slot_of_kv[kvh]] = kvh;
          }
          for (int h = 0; h < nq; ++h) {
            const int r = rep[cluster[h]];
            head[s * nq + h] = r;
            slot[s * nq + h] = slot_of_kv[r / group];
          }
          // This sequence's K pages: `width` per block, packed.
          for (int b = 0; b < max_blocks_; ++b) {
            for (int j = 0; j < nkv; ++j) {
              pages[(int64_t{s} * max_blocks_ + b) * nkv + j] =
                  j < width ? static_cast<int32_t>((int64_t{s} * max_blocks_ + b) * width + j) : 0;
            }
          }
          if (s == 0) chai_k_fraction_ -= (1.0 - double(width) / nkv) / s_.layers;
        }
      }
      Maps m;
      m.pages = Upload(pages);
      m.src = Upload(src);
      m.head = Upload(head);
      m.slot = Upload(slot);
      maps_.push_back(std::move(m));
      kv_[l].k_pages = static_cast<const int32_t*>(maps_.back().pages->data());
      kv_[l].k_src = static_cast<const int32_t*>(maps_.back().src->data());
      kv_[l].score_head = static_cast<const int32_t*>(maps_.back().head->data());
      kv_[l].k_slot = static_cast<const int32_t*>(maps_.back().slot->data());
    }
    be_->Synchronize();
  }

  std::unique_ptr<Buffer> Upload(const std::vector<int32_t>& v) {
    std::unique_ptr<Buffer> b = Alloc(v.size() * 4);
    be_->CopyToDevice(b->data(), v.data(), v.size() * 4);
    return b;
  }

  void MakeScratch(int max_tokens) {
    const int64_t t = max_tokens;
    const int64_t q_dim = s_.heads * s_.head_dim, kv_dim = s_.kv_heads * s_.head_dim;
    x_ = Alloc(t * s_.dim * 4);
    h_ = Alloc(t * s_.dim * 4);
    q_ = Alloc(t * q_dim * 4);
    k_ = Alloc(t * kv_dim * 4);
    v_ = Alloc(t * kv_dim * 4);
    attn_ = Alloc(t * q_dim * 4);
    gate_ = Alloc(t * s_.ffn * 4);
    up_ = Alloc(t * s_.ffn * 4);
    ints_ = Alloc(t * 4 * 4);
    logits_ = Alloc(static_cast<size_t>(std::max(64, 1)) * s_.vocab * 4);
    host_logits_.resize(static_cast<size_t>(64) * s_.vocab);
  }

  // Op classes of the time breakdown.
  enum Cls { kMatMul, kAttention, kOther, kClasses };
  static constexpr const char* kClsName[kClasses] = {"matmul", "attention", "other"};

  // When `profile` is set, Ops() records an event after every op and the
  // time between consecutive events is charged to that op's class. (The
  // events themselves add a little time; the breakdown is for shares.)
  struct Profile {
    std::vector<cudaEvent_t> events;
    std::vector<int> cls;
    double ms[kClasses] = {0, 0, 0};
  };

  // Step inputs to the device (outside any graph, as ModelRunner does).
  void Upload(const std::vector<int32_t>& tokens, const std::vector<int32_t>& seq,
              const std::vector<int32_t>& pos, const std::vector<int32_t>& logit_rows,
              const std::vector<int32_t>& tables) {
    const int n = static_cast<int>(tokens.size());
    int32_t* ip = static_cast<int32_t*>(ints_->data());
    be_->CopyToDevice(ip, tokens.data(), n * 4);
    be_->CopyToDevice(ip + n, seq.data(), n * 4);
    be_->CopyToDevice(ip + 2 * n, pos.data(), n * 4);
    be_->CopyToDevice(ip + 3 * n, logit_rows.data(), logit_rows.size() * 4);
    if (tables_ == nullptr || tables_->size() < tables.size() * 4)
      tables_ = Alloc(tables.size() * 4);
    be_->CopyToDevice(tables_->data(), tables.data(), tables.size() * 4);
  }

  // The ops of one forward step over n tokens with n_out logit rows, in
  // engine/model_runner.cc's order.
  void Ops(int n, int n_out, Profile* prof = nullptr) {
    int32_t* ip = static_cast<int32_t*>(ints_->data());
    const TokenPlacement place{n, ip + n, ip + 2 * n, static_cast<int32_t*>(tables_->data()),
                               max_blocks_};
    auto mark = [&](Cls c) {
      if (prof == nullptr) return;
      cudaEvent_t e;
      BENCH_CHECK(CudaOk(cudaEventCreate(&e), "cudaEventCreate"));
      BENCH_CHECK(CudaOk(cudaEventRecord(e, stream_), "cudaEventRecord"));
      prof->events.push_back(e);
      prof->cls.push_back(c);
    };
    float *x = F(x_), *h = F(h_);
    mark(kOther);  // the start
    be_->Embed(embd_, ip, n, x);
    mark(kOther);
    for (int l = 0; l < s_.layers; ++l) {
      Layer& w = layers_[l];
      be_->RmsNorm(x, w.attn_norm, n, s_.dim, 1e-5f, h);
      mark(kOther);
      be_->MatMul(w.wq, h, n, F(q_));
      be_->MatMul(w.wk, h, n, F(k_));
      be_->MatMul(w.wv, h, n, F(v_));
      mark(kMatMul);
      be_->Rope(F(q_), ip + 2 * n, n, s_.heads, rope_);
      be_->Rope(F(k_), ip + 2 * n, n, s_.kv_heads, rope_);
      mark(kOther);
      be_->StoreKv(F(k_), F(v_), place, kv_[l]);
      be_->Attention(F(q_), s_.heads, place, kv_[l], F(attn_));
      mark(kAttention);
      be_->MatMul(w.wo, F(attn_), n, h);
      mark(kMatMul);
      be_->Add(x, h, int64_t{n} * s_.dim);
      be_->RmsNorm(x, w.ffn_norm, n, s_.dim, 1e-5f, h);
      mark(kOther);
      be_->MatMul(w.gate, h, n, F(gate_));
      be_->MatMul(w.up, h, n, F(up_));
      mark(kMatMul);
      be_->SwiGlu(F(gate_), F(up_), int64_t{n} * s_.ffn, F(gate_));
      mark(kOther);
      be_->MatMul(w.down, F(gate_), n, h);
      mark(kMatMul);
      be_->Add(x, h, int64_t{n} * s_.dim);
      mark(kOther);
    }
    be_->GatherRows(x, ip + 3 * n, n_out, s_.dim, F(attn_));
    be_->RmsNorm(F(attn_), out_norm_, n_out, s_.dim, 1e-5f, h);
    mark(kOther);
    be_->MatMul(output_, h, n_out, F(logits_));
    mark(kMatMul);
  }

  void FinishProfile(Profile* prof) {
    be_->Synchronize();
    for (size_t i = 1; i < prof->events.size(); ++i) {
      float ms = 0;
      BENCH_CHECK(CudaOk(cudaEventElapsedTime(&ms, prof->events[i - 1], prof->events[i]),
                         "cudaEventElapsedTime"));
      prof->ms[prof->cls[i]] += ms;
    }
    for (cudaEvent_t e : prof->events) cudaEventDestroy(e);
    prof->events.clear();
  }

  void Logits(int n_out) {
    be_->CopyToHost(host_logits_.data(), logits_->data(),
                    static_cast<size_t>(n_out) * s_.vocab * 4);
    BENCH_CHECK(be_->status());
  }

  std::vector<int32_t> Tables(int seqs) const {
    std::vector<int32_t> t(static_cast<size_t>(seqs) * max_blocks_);
    for (int s = 0; s < seqs; ++s) {
      for (int b = 0; b < max_blocks_; ++b) t[s * max_blocks_ + b] = s * max_blocks_ + b;
    }
    return t;
  }

  struct DecodeTimes {
    double graph_s = 0;   // median step, ops replayed from a CUDA graph
    double eager_s = 0;   // median step, ops issued one by one
    double logits_s = 0;  // median of the logits' copy to the host alone
  };

  // Median seconds of one decode step of `batch` sequences at context `ctx`
  // (inputs up, ops, logits down), issued and replayed.
  DecodeTimes Decode(int batch, int ctx) {
    std::vector<int32_t> tokens(batch), seq(batch), pos(batch, ctx), rows(batch);
    for (int i = 0; i < batch; ++i) {
      tokens[i] = (i * 7919 + 13) % s_.vocab;
      seq[i] = i;
      rows[i] = i;
    }
    const std::vector<int32_t> tables = Tables(batch);
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    DecodeTimes out;
    std::vector<double> eager, graph, copy;
    for (int it = 0; it < f_.steps + 2; ++it) {
      const double t0 = Now();
      Upload(tokens, seq, pos, rows, tables);
      Ops(batch, batch);
      Logits(batch);
      if (it >= 2) eager.push_back(Now() - t0);
    }
    out.eager_s = median(eager);
    BENCH_CHECK(be_->BeginCapture());
    Ops(batch, batch);
    absl::StatusOr<std::unique_ptr<OpGraph>> g = be_->EndCapture();
    BENCH_CHECK(g.status());
    for (int it = 0; it < f_.steps + 2; ++it) {
      const double t0 = Now();
      Upload(tokens, seq, pos, rows, tables);
      BENCH_CHECK((*g)->Replay());
      be_->Synchronize();
      const double t1 = Now();
      Logits(batch);
      if (it >= 2) {
        graph.push_back(Now() - t0);
        copy.push_back(Now() - t1);
      }
    }
    out.graph_s = median(graph);
    out.logits_s = median(copy);
    return out;
  }

  // Where one issued decode step's device time goes (batch, ctx as Decode).
  Profile DecodeBreakdown(int batch, int ctx) {
    std::vector<int32_t> tokens(batch, 1), seq(batch), pos(batch, ctx), rows(batch);
    for (int i = 0; i < batch; ++i) seq[i] = rows[i] = i;
    Upload(tokens, seq, pos, rows, Tables(batch));
    Profile p;
    Ops(batch, batch, &p);
    FinishProfile(&p);
    return p;
  }

  // Seconds from a prompt of `len` tokens (one sequence, one batch) to its
  // first token's logits; median of 3 after a warm-up. With `prof`, one more
  // run is profiled.
  double Prefill(int len, Profile* prof = nullptr) {
    std::vector<int32_t> tokens(len), seq(len, 0), pos(len), rows = {len - 1};
    for (int i = 0; i < len; ++i) {
      tokens[i] = (i * 104729 + 7) % s_.vocab;
      pos[i] = i;
    }
    const std::vector<int32_t> tables = Tables(1);
    std::vector<double> times;
    for (int it = 0; it < 4; ++it) {
      const double t0 = Now();
      Upload(tokens, seq, pos, rows, tables);
      Ops(len, 1);
      Logits(1);
      if (it >= 1) times.push_back(Now() - t0);
    }
    if (prof != nullptr) {
      Upload(tokens, seq, pos, rows, tables);
      Ops(len, 1, prof);
      FinishProfile(prof);
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  }

  // Device-to-device copy of 1 GiB; GB/s counting bytes read + written.
  double CopyBandwidth() {
    const size_t bytes = size_t{1} << 30;
    std::unique_ptr<Buffer> a = Alloc(bytes), b = Alloc(bytes);
    std::vector<double> times;
    for (int it = 0; it < 12; ++it) {
      be_->Synchronize();
      const double t0 = Now();
      BENCH_CHECK(
          CudaOk(cudaMemcpyAsync(b->data(), a->data(), bytes, cudaMemcpyDeviceToDevice, stream_),
                 "cudaMemcpyAsync"));
      be_->Synchronize();
      if (it >= 2) times.push_back(Now() - t0);
    }
    std::sort(times.begin(), times.end());
    return 2.0 * bytes / times[times.size() / 2] / 1e9;
  }

  int64_t weight_bytes() const { return weight_bytes_; }
  double chai_k_fraction() const { return chai_k_fraction_; }
  int64_t KvBytesPerToken(bool chai) const {
    const int64_t per_layer = int64_t{s_.kv_heads} * s_.head_dim * 4;
    return static_cast<int64_t>(per_layer * s_.layers * (1.0 + (chai ? chai_k_fraction_ : 1.0)));
  }

 private:
  static constexpr int kBlock = 16;
  struct Layer {
    WeightView wq, wk, wv, wo, gate, up, down;
    float* attn_norm = nullptr;
    float* ffn_norm = nullptr;
  };
  struct Maps {
    std::unique_ptr<Buffer> pages, src, head, slot;
  };
  static float* F(const std::unique_ptr<Buffer>& b) { return static_cast<float*>(b->data()); }

  CudaBackend* be_;
  const Flags& f_;
  Shape s_;
  cudaStream_t stream_;
  uint64_t seed_ = 0;
  std::vector<std::unique_ptr<Buffer>> owned_, cache_;
  std::vector<Layer> layers_;
  std::vector<KvLayer> kv_;
  std::vector<Maps> maps_;
  WeightView embd_, output_;
  float* out_norm_ = nullptr;
  std::vector<float> inv_freq_;
  RopeParams rope_;
  int32_t max_blocks_ = 0;
  int64_t weight_bytes_ = 0;
  double chai_k_fraction_ = 1.0;
  std::unique_ptr<Buffer> x_, h_, q_, k_, v_, attn_, gate_, up_, ints_, logits_, tables_;
  std::vector<float> host_logits_;
};

std::vector<int> IntList(const char* s) {
  std::vector<int> out;
  for (absl::string_view p : absl::StrSplit(s, ','))
    out.push_back(std::atoi(std::string(p).c_str()));
  return out;
}

void Usage() {
  std::fprintf(stderr,
               "usage: chai_cuda_bench [--json FILE] [--quick] [--steps N] [--batches 1,16,64]\n"
               "         [--contexts 512,2048] [--prefill N] [--layers N] [--seed N]\n"
               "  --quick: 8 layers, contexts 512 only, prefill 512 (a smoke run)\n");
}

int Main(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        Usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--json") {
      f.json = next();
    } else if (a == "--quick") {
      f.shape.layers = 8;
      f.contexts = {512};
      f.prefill = 512;
      f.steps = 4;
    } else if (a == "--steps") {
      f.steps = std::max(1, std::atoi(next()));
    } else if (a == "--batches") {
      f.batches = IntList(next());
    } else if (a == "--contexts") {
      f.contexts = IntList(next());
    } else if (a == "--prefill") {
      f.prefill = std::atoi(next());
    } else if (a == "--layers") {
      f.shape.layers = std::atoi(next());
    } else if (a == "--seed") {
      f.seed = std::strtoull(next(), nullptr, 10);
    } else if (a == "--help" || a == "-h") {
      Usage();
      return 0;
    } else {
      Usage();
      return 2;
    }
  }
  for (int v : f.batches) {
    if (v < 1 || v > 64) return Usage(), 2;
  }
  for (int v : f.contexts) {
    if (v < 1 || v > 32768) return Usage(), 2;
  }
  if (f.prefill < 1 || f.prefill > 8192 || f.shape.layers < 1 || f.shape.layers > 32) {
    return Usage(), 2;
  }
  // Layers 18-31 of 32; the same fraction of a smaller --layers.
  f.chai_first = 18 * f.shape.layers / 32;
  setvbuf(stdout, nullptr, _IOLBF, 0);

  std::string device;
  if (absl::Status s = ProbeDevice(0, &device); !s.ok()) {
    std::printf("%s\n", std::string(s.message()).c_str());  // "no CUDA device: ..."
    return 3;
  }
  absl::StatusOr<std::unique_ptr<CudaBackend>> created = CudaBackend::Create({});
  if (!created.ok()) {
    std::fprintf(stderr, "chai_cuda_bench: %s\n", std::string(created.status().message()).c_str());
    return 1;
  }
  std::unique_ptr<CudaBackend> be = *std::move(created);
  std::printf("device: %s\n", device.c_str());
  const Shape& sh = f.shape;
  std::printf("shape: %d layers, dim %d, %d heads (%d KV), head_dim %d, ffn %d, vocab %d\n",
              sh.layers, sh.dim, sh.heads, sh.kv_heads, sh.head_dim, sh.ffn, sh.vocab);
  const double t_start = Now();

  Bench b(be.get(), f);
  const double copy_gbs = b.CopyBandwidth();
  std::printf("d2d cudaMemcpy 1 GiB: %.0f GB/s (read + write)\n", copy_gbs);
  b.MakeModel();
  const int max_batch = *std::max_element(f.batches.begin(), f.batches.end());
  b.MakeScratch(std::max(f.prefill, max_batch));

  std::string rows_json;
  auto add_row = [&rows_json](const std::string& row) {
    absl::StrAppend(&rows_json, rows_json.empty() ? "" : ",\n    ", row);
  };
  std::printf("%-8s %-6s %-5s %12s %12s %s\n", "batch", "ctx", "chai", "graph_ms", "tokens/s",
              "note");
  // Caches are sized per context so each configuration that fits runs.
  for (int ctx : f.contexts) {
    // The largest batch whose cache fits, trying from the largest down.
    std::vector<int> by_size = f.batches;
    std::sort(by_size.rbegin(), by_size.rend());
    int fits_batch = 0;
    for (int batch : by_size) {
      if (b.MakeCache(batch, ctx + 1)) {
        fits_batch = batch;
        break;
      }
    }
    for (int batch : f.batches) {
      for (bool chai : {false, true}) {
        if (batch > fits_batch) {
          const double gb = double(b.PoolBytes(batch, ctx + 1)) * sh.layers / 1e9;
          std::printf("%-8d %-6d %-5s %12s %12s fp32 KV cache %.0f GB does not fit\n", batch, ctx,
                      chai ? "on" : "off", "-", "-", gb);
          add_row(absl::StrCat("{\"batch\": ", batch, ", \"context\": ", ctx,
                               ", \"chai\": ", chai ? "true" : "false",
                               ", \"skipped\": \"KV cache does not fit\"}"));
          continue;
        }
        b.MakeMaps(batch, chai);
        const Bench::DecodeTimes dt = b.Decode(batch, ctx);
        const double step = dt.graph_s;
        const double tps = batch / step;
        std::string note = absl::StrFormat("issued %.3f ms, logits copy %.3f ms", dt.eager_s * 1e3,
                                           dt.logits_s * 1e3);
        std::string share_json = absl::StrCat(", \"eager_step_ms\": ", dt.eager_s * 1e3,
                                              ", \"logits_copy_ms\": ", dt.logits_s * 1e3);
        if (batch == 1) {
          // Bytes one step must read: every weight once plus the context's K/V.
          const double bytes = double(b.weight_bytes()) + double(b.KvBytesPerToken(chai)) * ctx;
          const double share = bytes / step / 1e9 / copy_gbs;
          absl::StrAppend(&note, "; reads ", static_cast<int>(bytes / 1e6),
                          " MB: ", static_cast<int>(bytes / step / 1e9),
                          " GB/s = ", static_cast<int>(100 * share), "% of copy bandwidth");
          absl::StrAppend(&share_json, ", \"bytes_read\": ", bytes,
                          ", \"bandwidth_share\": ", share);
        }
        std::printf("%-8d %-6d %-5s %12.3f %12.1f %s\n", batch, ctx, chai ? "on" : "off",
                    step * 1e3, tps, note.c_str());
        add_row(absl::StrCat("{\"batch\": ", batch, ", \"context\": ", ctx,
                             ", \"chai\": ", chai ? "true" : "false", ", \"step_ms\": ", step * 1e3,
                             ", \"tokens_per_s\": ", tps, share_json, "}"));
      }
    }
  }

  // Device time by op class: one issued batch-1 decode step at the longest
  // context, and one prefill.
  auto breakdown = [](const char* what, const Bench::Profile& p) {
    double total = 0;
    for (double ms : p.ms) total += ms;
    std::string text = absl::StrFormat("breakdown %s: %.2f ms device time:", what, total);
    std::string json = absl::StrFormat("\"%s\": {\"total_ms\": %.4f", what, total);
    for (int c = 0; c < Bench::kClasses; ++c) {
      absl::StrAppendFormat(&text, " %s %.2f ms (%.0f%%)", Bench::kClsName[c], p.ms[c],
                            100 * p.ms[c] / total);
      absl::StrAppendFormat(&json, ", \"%s_ms\": %.4f", Bench::kClsName[c], p.ms[c]);
    }
    std::printf("%s\n", text.c_str());
    return json + "}";
  };
  std::string breakdown_json;
  const int long_ctx = *std::max_element(f.contexts.begin(), f.contexts.end());
  if (b.MakeCache(1, long_ctx + 1)) {
    b.MakeMaps(1, false);
    breakdown_json =
        breakdown(absl::StrCat("decode_b1_ctx", long_ctx).c_str(), b.DecodeBreakdown(1, long_ctx));
  }
  std::string ttft_json;
  if (b.MakeCache(1, f.prefill)) {
    for (bool chai : {false, true}) {
      b.MakeMaps(1, chai);
      Bench::Profile prof;
      const double ttft = b.Prefill(f.prefill, &prof);
      std::printf("TTFT %d tokens, CHAI %s: %.1f ms (%.0f prompt tokens/s)\n", f.prefill,
                  chai ? "on" : "off", ttft * 1e3, f.prefill / ttft);
      absl::StrAppend(&ttft_json, ttft_json.empty() ? "" : ", ", "\"", chai ? "chai" : "plain",
                      "\": {\"ms\": ", ttft * 1e3, ", \"prompt_tokens_per_s\": ", f.prefill / ttft,
                      "}");
      absl::StrAppend(
          &breakdown_json, breakdown_json.empty() ? "" : ", ",
          breakdown(absl::StrCat("prefill", f.prefill, chai ? "_chai" : "").c_str(), prof));
    }
  }
  const double total_s = Now() - t_start;
  std::printf("CHAI K cache: %.1f%% of plain (%.1f%% of the KV cache saved)\n",
              100 * b.chai_k_fraction(), 50 * (1 - b.chai_k_fraction()));
  std::printf("total %.1f s\n", total_s);

  if (!f.json.empty()) {
    FILE* out = std::fopen(f.json.c_str(), "w");
    if (out == nullptr) {
      std::fprintf(stderr, "chai_cuda_bench: cannot write %s\n", f.json.c_str());
      return 1;
    }
    std::fprintf(
        out,
        "{\n  \"device\": \"%s\",\n  \"shape\": {\"layers\": %d, \"dim\": %d, \"heads\": "
        "%d, \"kv_heads\": %d, \"head_dim\": %d, \"ffn\": %d, \"vocab\": %d},\n"
        "  \"weights_gb\": %.3f,\n  \"copy_gbs_read_write\": %.1f,\n"
        "  \"chai\": {\"first_layer\": %d, \"clusters\": %d, \"k_cache_fraction\": %.4f},\n"
        "  \"decode\": [\n    %s\n  ],\n  \"ttft_%d\": {%s},\n  \"breakdown\": {%s},\n"
        "  \"total_s\": %.1f\n}\n",
        device.c_str(), sh.layers, sh.dim, sh.heads, sh.kv_heads, sh.head_dim, sh.ffn, sh.vocab,
        b.weight_bytes() / 1e9, copy_gbs, f.chai_first, f.chai_clusters, b.chai_k_fraction(),
        rows_json.c_str(), f.prefill, ttft_json.c_str(), breakdown_json.c_str(), total_s);
    std::fclose(out);
    std::printf("wrote %s\n", f.json.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace chai::kernels::cuda

int main(int argc, char** argv) { return chai::kernels::cuda::Main(argc, argv); }
