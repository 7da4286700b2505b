// chai_engine_bench: end-to-end CPU engine throughput on a real model, with
// the machine's memory bandwidth measured in the same run (issue 2 item 9).
//
//   chai_engine_bench [--model PATH] [--threads N] [--batches 1,8,32] [--prompt-len 128]
//   [--no-prefill] [--activations int16|float|int8] [--kv-cache-dtype f16|f32] [--op-times]
//   [--weights-only] [--json]
//
// Measures (one process, same machine state):
//   bandwidth   best-of-5 streaming read of a buffer the size of the decode
//               weights (the roofline's denominator: same cache level as the
//               weights), and of 512 MiB (DRAM on most machines), both with
//               and without software prefetching (kernels/cpu/memory_bandwidth.h)
//   prefill     one 512-token prompt, tokens/s (best of 3)
//   decode@B    B sequences with 128-token prompts (--prompt-len), 32 decode steps of B
//               tokens each; aggregate tokens/s (best of 3)
// and reports batch-1 decode as a share of the roofline: (weight bytes read
// per token / bandwidth) / measured time per token. Weight bytes are every
// matrix the decode step streams (all layer matrices plus the output
// projection; the embedding lookup reads one row). --activations picks the
// CPU matmul's activation mode (kernels/cpu/matmul.h; default: the
// backend's, int16). --op-times adds where a decode step's time goes at
// each batch size: the same decode run through TimedBackend
// (engine/bench/timed_backend.h), milliseconds per step by op, and the rest
// of the step (ModelRunner's own work, logits copy) as "other".
// --weights-only adds batch 1's matrix products timed alone, back to back
// (WeightsOnlyStepSeconds), and their share of the same roofline.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/bench/bench_util.h"
#include "engine/bench/timed_backend.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/memory_bandwidth.h"
#include "kernels/cpu/thread_pool.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int64_t MatrixBytes(const kernels::WeightView& w) {
  return w.rows * kernels::RowBytes(w.dtype, w.cols);
}

// *out = the parsed flag value, or prints why it is invalid and returns false.
template <typename T>
bool TakeParsed(absl::StatusOr<T> parsed, T* out) {
  if (!parsed.ok()) {
    std::fprintf(stderr, "chai_engine_bench: %s\n", std::string(parsed.status().message()).c_str());
    return false;
  }
  *out = *parsed;
  return true;
}

int64_t DecodeWeightBytes(const ModelWeights& m) {
  int64_t total = MatrixBytes(m.output);
  for (const LayerWeights& l : m.layers) {
    for (const kernels::WeightView* w :
         {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      total += MatrixBytes(*w);
    }
  }
  return total;
}

// Seconds per decode step of batch 1's matrix products alone: every matrix
// of DecodeWeightBytes, prepared by the backend as ModelRunner prepares them
// (copies of their own), in the order and groupings of a step (Q/K/V and
// gate/up each one shared call), with nothing between the calls. Best of 3
// windows of `steps` steps, as the decode measurement. Set against the full
// step it splits batch 1's distance from the roofline into the products'
// own (call overheads, imbalance, the weights' streaming) and the rest of
// the step (attention, norms, RoPE, the KV store, the runner).
double WeightsOnlyStepSeconds(const ModelWeights& m, kernels::Backend& backend, int64_t steps) {
  struct Layer {
    kernels::PreparedWeight q, k, v, o, gate, up, down;
  };
  const auto prepare = [&](const kernels::WeightView& w) {
    absl::StatusOr<kernels::PreparedWeight> p =
        backend.PrepareWeight(w, kernels::WeightUse::kMatMul);
    CheckOrExit(p.status(), "PrepareWeight");
    return *std::move(p);
  };
  std::vector<Layer> layers;
  for (const LayerWeights& l : m.layers) {
    layers.push_back({prepare(l.wq), prepare(l.wk), prepare(l.wv), prepare(l.wo), prepare(l.w_gate),
                      prepare(l.w_up), prepare(l.w_down)});
  }
  const kernels::PreparedWeight output = prepare(m.output);
  const LlamaConfig& c = m.config;
  // Inputs of the products' widths (values do not change the work).
  std::vector<float> x(c.dim), ffn(c.ffn_dim), q(c.n_heads * c.head_dim),
      k(c.n_kv_heads * c.head_dim), v(k.size()), h(c.dim), gate(c.ffn_dim), up(c.ffn_dim),
      logits(c.vocab_size);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < ffn.size(); ++i) ffn[i] = std::cos(0.11f * static_cast<float>(i));
  const auto step = [&] {
    for (const Layer& l : layers) {
      const kernels::WeightView qkv[3] = {l.q.view, l.k.view, l.v.view};
      float* const qkv_out[3] = {q.data(), k.data(), v.data()};
      backend.MatMulShared(qkv, x.data(), 1, qkv_out);
      backend.MatMul(l.o.view, q.data(), 1, h.data());
      const kernels::WeightView gate_up[2] = {l.gate.view, l.up.view};
      float* const gate_up_out[2] = {gate.data(), up.data()};
      backend.MatMulShared(gate_up, x.data(), 1, gate_up_out);
      backend.MatMul(l.down.view, ffn.data(), 1, h.data());
    }
    backend.MatMul(output.view, x.data(), 1, logits.data());
  };
  step();  // page in the copies
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < steps; ++i) step();
    backend.Synchronize();
    best = std::min(best, Since(t0) / static_cast<double>(steps));
  }
  return best;
}

// The process's anonymous memory in transparent huge pages
// (/proc/self/smaps_rollup), or -1 where the file cannot be read.
int64_t AnonHugePageBytes() {
  std::FILE* f = std::fopen("/proc/self/smaps_rollup", "r");
  if (f == nullptr) return -1;
  char line[256];
  int64_t kb = -1;
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    long long v = 0;
    if (std::sscanf(line, "AnonHugePages: %lld kB", &v) == 1) kb = v;
  }
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

struct Bench {
  const ModelWeights* weights;
  kernels::Backend* backend;
  ModelRunner* runner;
  std::mt19937 rng{1234};
  // Called by Decode() after the prompts' prefill, right before the timed steps.
  std::function<void()> on_steps_start;

  std::vector<int32_t> RandomTokens(int64_t n) {
    std::uniform_int_distribution<int32_t> d(0,
                                             static_cast<int32_t>(weights->config.vocab_size) - 1);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = d(rng);
    return t;
  }

  std::unique_ptr<KvCache> Cache(int32_t seqs, int64_t len) {
    KvCacheOptions o;
    o.max_seqs = seqs;
    o.max_seq_len = len;
    o.num_blocks = seqs * ((len + o.block_size - 1) / o.block_size);
    return *KvCache::Create(backend, weights->config, o);
  }

  // Seconds to prefill `n` tokens of one sequence in runner-sized chunks.
  double Prefill(int64_t n) {
    auto cache = Cache(1, n);
    CheckOrExit(cache->AddSequence().status(), "AddSequence");
    CheckOrExit(cache->Reserve(0, n), "Reserve");
    std::vector<int32_t> toks = RandomTokens(n);
    std::vector<float> logits(weights->config.vocab_size);
    const auto t0 = Clock::now();
    PrefillPrompt(*runner, *cache, 0, toks, logits);
    return Since(t0);
  }

  // Seconds for `steps` decode steps of `batch` sequences (prompts prefilled
  // beforehand in runner-sized chunks, untimed). Before session 13 a prompt
  // longer than one Forward call went in whole and failed unnoticed: the
  // steps then attended over never-written cache memory (the kernel's shared
  // zero page, always in cache), and long-context decode read far faster
  // than it is.
  double Decode(int32_t batch, int64_t prompt, int64_t steps) {
    auto cache = Cache(batch, prompt + steps);
    std::vector<float> logits(batch * weights->config.vocab_size);
    for (int32_t s = 0; s < batch; ++s) {
      CheckOrExit(cache->AddSequence().status(), "AddSequence");
      CheckOrExit(cache->Reserve(s, prompt + steps), "Reserve");
      PrefillPrompt(*runner, *cache, s, RandomTokens(prompt), logits);
    }
    std::vector<int32_t> slots(batch), rows(batch), pos(batch);
    std::iota(slots.begin(), slots.end(), 0);
    std::iota(rows.begin(), rows.end(), 0);
    if (on_steps_start) on_steps_start();
    const auto t0 = Clock::now();
    for (int64_t step = 0; step < steps; ++step) {
      std::vector<int32_t> toks = RandomTokens(batch);
      std::fill(pos.begin(), pos.end(), static_cast<int32_t>(prompt + step));
      CheckOrExit(runner->Forward({toks, slots, pos, rows}, *cache, logits), "decode Forward");
    }
    return Since(t0);
  }
};

int Main(int argc, char** argv) {
  std::string model_path = std::string(CHAI_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int threads = 0;
  bool json = false;
  bool prefill = true;
  bool op_times = false;
  bool weights_only = false;
  int64_t prompt_len = 128;
  std::vector<int32_t> batches = {1, 8, 32};
  kernels::cpu::ActivationMode mode = kernels::CpuBackendOptions{}.activation_mode;
  std::string mode_name = "default";
  kernels::DType kv_dtype = kernels::CpuBackendOptions{}.kv_dtype;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--activations" && i + 1 < argc) {
      mode_name = argv[++i];
      if (!TakeParsed(kernels::cpu::ParseActivationMode(mode_name), &mode)) return 2;
      continue;
    }
    if (a == "--kv-cache-dtype" && i + 1 < argc) {
      if (!TakeParsed(kernels::ParseKvDtype(argv[++i]), &kv_dtype)) return 2;
      continue;
    }
    if (a == "--model" && i + 1 < argc) {
      model_path = argv[++i];
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--json") {
      json = true;
    } else if (a == "--prompt-len" && i + 1 < argc) {
      prompt_len = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--op-times") {
      op_times = true;
    } else if (a == "--weights-only") {
      weights_only = true;
    } else if (a == "--no-prefill") {
      prefill = false;
    } else if (a == "--batches" && i + 1 < argc) {
      batches.clear();
      for (absl::string_view b : absl::StrSplit(argv[++i], ',')) {
        int32_t v;
        if (!absl::SimpleAtoi(b, &v) || v <= 0 || v > 256) {
          std::fprintf(stderr, "chai_engine_bench: bad --batches\n");
          return 2;
        }
        batches.push_back(v);
      }
    } else {
      std::fprintf(stderr,
                   "usage: chai_engine_bench [--model PATH] [--threads N] [--batches 1,8,32] "
                   "[--prompt-len 128] [--no-prefill] [--activations int16|float|int8] "
                   "[--kv-cache-dtype f16|f32] [--op-times] [--weights-only] [--json]\n");
      return 2;
    }
  }
  absl::StatusOr<LoadedModel> model = LoadModel(model_path);
  if (!model.ok()) {
    std::fprintf(stderr, "chai_engine_bench: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  auto backend = kernels::CreateCpuBackend(
      {.threads = threads, .activation_mode = mode, .kv_dtype = kv_dtype});
  auto runner = *ModelRunner::Create(model->weights.get(), backend.get(), 512);
  const int n_threads =
      threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  const int64_t weight_bytes = DecodeWeightBytes(*model->weights);
  double bandwidth, bandwidth_512mib;
  {
    kernels::cpu::ThreadPool pool(n_threads);
    bandwidth = kernels::cpu::MeasureReadBandwidth(pool, static_cast<size_t>(weight_bytes));
    bandwidth_512mib = kernels::cpu::MeasureReadBandwidth(pool, size_t{512} << 20);
  }
  Bench b{model->weights.get(), backend.get(), runner.get()};

  auto best_of = [](int reps, auto fn) {
    double best = 1e30;
    for (int i = 0; i < reps; ++i) best = std::min(best, fn());
    return best;
  };
  (void)b.Decode(1, 16, 4);  // warm caches and page in the weights
  const int64_t huge_bytes = AnonHugePageBytes();
  const double prefill_s = prefill ? best_of(3, [&] { return b.Prefill(512); }) : 0.0;
  nlohmann::json out = {
      {"model", model_path},
      {"threads", n_threads},
      {"activations", mode_name},
      {"kv_cache_dtype", kernels::Name(kv_dtype)},
      {"bandwidth_gbps", bandwidth / 1e9},
      {"bandwidth_512mib_gbps", bandwidth_512mib / 1e9},
      {"decode_weight_bytes", weight_bytes},
      // Where the weights' huge-page slabs were granted
      // (kernels/cpu/weight_arena.h); null if unknown.
      {"anon_huge_pages_mb", huge_bytes >= 0 ? nlohmann::json(huge_bytes / 1e6) : nlohmann::json()},
      {"prefill_512_tokens_per_s", prefill ? 512 / prefill_s : 0.0}};
  const int64_t steps = 32;
  double tps1 = 0;
  for (int32_t batch : batches) {
    const double s = best_of(3, [&] { return b.Decode(batch, prompt_len, steps); });
    const double tps = batch * steps / s;
    if (tps1 == 0) tps1 = tps;  // the first batch size listed is the baseline
    out["decode"][std::to_string(batch)] = {{"tokens_per_s", tps}, {"ratio_to_batch1", tps / tps1}};
  }
  if (op_times) {
    TimedBackend timed(backend.get());
    auto timed_runner = *ModelRunner::Create(model->weights.get(), &timed, 512);
    Bench tb{model->weights.get(), &timed, timed_runner.get()};
    tb.on_steps_start = [&timed] { timed.Reset(); };  // charge only the decode steps
    (void)tb.Decode(1, prompt_len, 4);
    for (int32_t batch : batches) {
      const double step_s = tb.Decode(batch, prompt_len, steps) / steps;
      nlohmann::json& ms = out["op_times_ms_per_step"][std::to_string(batch)];
      nlohmann::json& calls = out["op_calls_per_step"][std::to_string(batch)];
      double ops_s = 0;
      for (const auto& [name, op] : timed.ops()) {
        ms[name] = 1e3 * op.seconds / steps;
        calls[name] = op.calls / steps;
        ops_s += op.seconds / steps;
      }
      ms["other"] = 1e3 * (step_s - ops_s);
      ms["step"] = 1e3 * step_s;
    }
  }
  const double roofline_tps = bandwidth / static_cast<double>(weight_bytes);
  out["decode_batch1_roofline_tokens_per_s"] = roofline_tps;
  if (weights_only) {
    const double s = WeightsOnlyStepSeconds(*model->weights, *backend, steps);
    out["weights_only_batch1"] = {{"step_ms", 1e3 * s},
                                  {"share_of_roofline", 1.0 / s / roofline_tps}};
  }
  // The share is batch 1's: without it in --batches there is none (null).
  const bool has_batch1 = std::find(batches.begin(), batches.end(), 1) != batches.end();
  const double share =
      has_batch1 ? out["decode"]["1"]["tokens_per_s"].get<double>() / roofline_tps : 0.0;
  out["decode_batch1_share_of_roofline"] = has_batch1 ? nlohmann::json(share) : nlohmann::json();
  if (json) {
    std::printf("%s\n", out.dump(1).c_str());
    return 0;
  }
  std::printf("model %s, %d threads, %s activations\n", model_path.c_str(), n_threads,
              mode_name.c_str());
  std::printf("memory read bandwidth      %8.2f GB/s over the weights' size (%.2f over 512 MiB)\n",
              bandwidth / 1e9, bandwidth_512mib / 1e9);
  std::printf("decode weight bytes/token  %8.2f MB\n", weight_bytes / 1e6);
  if (huge_bytes >= 0) {
    std::printf("anonymous huge pages       %8.2f MB (weights in huge pages where granted)\n",
                huge_bytes / 1e6);
  }
  if (prefill) std::printf("prefill (512 tokens)       %8.1f tokens/s\n", 512 / prefill_s);
  for (int32_t batch : batches) {
    const std::string k = std::to_string(batch);
    std::printf("decode batch %-3s           %8.1f tokens/s  (x%.2f batch %d)\n", k.c_str(),
                out["decode"][k]["tokens_per_s"].get<double>(),
                out["decode"][k]["ratio_to_batch1"].get<double>(), batches[0]);
  }
  if (has_batch1) {
    std::printf("batch-1 roofline           %8.1f tokens/s; measured share %.0f%%\n", roofline_tps,
                100 * share);
  } else {
    std::printf("batch-1 roofline           %8.1f tokens/s; share not measured (no batch 1)\n",
                roofline_tps);
  }
  if (weights_only) {
    std::printf("batch-1 products alone     %8.3f ms/step; share %.0f%% (nothing between calls)\n",
                out["weights_only_batch1"]["step_ms"].get<double>(),
                100 * out["weights_only_batch1"]["share_of_roofline"].get<double>());
  }
  if (op_times) {
    for (int32_t batch : batches) {
      const std::string k = std::to_string(batch);
      std::printf("batch-%s decode step by op (ms/step, calls/step; timed separately):\n",
                  k.c_str());
      const auto& calls = out["op_calls_per_step"][k];
      for (const auto& [name, ms] : out["op_times_ms_per_step"][k].items()) {
        std::printf("  %-12s %7.3f ms  %5s\n", name.c_str(), ms.get<double>(),
                    calls.contains(name) ? std::to_string(calls[name].get<int64_t>()).c_str() : "");
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace chai::engine

int main(int argc, char** argv) { return chai::engine::Main(argc, argv); }
