// chai_chai_bench: CHAI on versus off in the CPU engine at long contexts
// (issue 3 item 9), as ratios from the same run.
//
//   chai_chai_bench [--model PATH] [--threads N] [--contexts 512,2048,4096]
//       [--chai-config FILE | --plan FIRST-LAST:CLUSTERS:KHEADS] [--decode-steps 16]
//       [--decode-batch 1] [--baseline plain|identity] [--json]
//
// For each context C, plain attention and CHAI each:
//   prefill  one C-token prompt in runner-sized chunks (clustering included),
//            tokens/s, best of --reps
//   decode   --decode-batch sequences at context C, --decode-steps steps,
//            tokens/s, best of --reps
//   K bytes  the K cache the sequences hold at the end
// and the time the online clustering took per request. Without
// --chai-config or --plan the plan is the default model's shipped config.
// --baseline identity runs "off" as a CHAI cache whose every layer keeps all
// heads: the same code path as "on" with nothing shared or saved, so the
// ratio isolates what CHAI's sharing buys (plain and CHAI caches take
// different attention paths, which moved the plain-baseline ratios by up to
// 1.3x on their own: docs/PERFORMANCE.md).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/chai/chai_config.h"
#include "engine/chai/chai_config_resolve.h"
#include "engine/chai/model_fingerprint.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Result {
  double prefill_s = 1e30, decode_s = 1e30, clustering_s = 1e30;
  int64_t k_bytes = 0, k_bytes_full = 0;
};

class ChaiBench {
 public:
  ChaiBench(const ModelWeights* w, kernels::Backend* be, ModelRunner* r) : w_(w), be_(be), r_(r) {}

  // One context, one plan (empty = plain).
  Result Run(const ChaiPlan& plan, int64_t context, int32_t batch, int64_t steps, int reps) {
    Result best;
    for (int rep = 0; rep < reps; ++rep) {
      KvCacheOptions o;
      o.max_seqs = batch;
      o.max_seq_len = context + steps;
      o.num_blocks = batch * ((o.max_seq_len + o.block_size - 1) / o.block_size);
      o.chai = plan;
      std::unique_ptr<KvCache> cache = *KvCache::Create(be_, w_->config, o);
      std::vector<float> logits(batch * w_->config.vocab_size);
      double prefill = 0, clustering = 0;
      for (int32_t s = 0; s < batch; ++s) {
        (void)cache->AddSequence(plan.enabled());
        (void)cache->Reserve(s, context + steps);
        const std::vector<int32_t> toks = RandomTokens(context);
        const auto t0 = Clock::now();
        for (int64_t p = 0; p < context; p += r_->max_batch_tokens()) {
          const int64_t c = std::min<int64_t>(r_->max_batch_tokens(), context - p);
          std::vector<int32_t> slots(c, s), pos(c);
          std::iota(pos.begin(), pos.end(), static_cast<int32_t>(p));
          std::vector<int32_t> rows;
          if (p + c == context) rows.push_back(static_cast<int32_t>(c - 1));
          (void)r_->Forward({std::span(toks).subspan(p, c), slots, pos, rows}, *cache, logits);
          clustering += r_->last_forward_stats().clustering_s;
        }
        if (s == 0) prefill = Since(t0);
      }
      std::vector<int32_t> slots(batch), rows(batch), pos(batch);
      std::iota(slots.begin(), slots.end(), 0);
      std::iota(rows.begin(), rows.end(), 0);
      const auto t0 = Clock::now();
      for (int64_t step = 0; step < steps; ++step) {
        const std::vector<int32_t> toks = RandomTokens(batch);
        std::fill(pos.begin(), pos.end(), static_cast<int32_t>(context + step));
        (void)r_->Forward({toks, slots, pos, rows}, *cache, logits);
      }
      const double decode = Since(t0);
      best.prefill_s = std::min(best.prefill_s, prefill);
      best.decode_s = std::min(best.decode_s, decode);
      best.clustering_s = std::min(best.clustering_s, clustering / batch);
      best.k_bytes = cache->k_bytes_in_use();
      best.k_bytes_full = cache->k_bytes_full_in_use();
    }
    return best;
  }

 private:
  std::vector<int32_t> RandomTokens(int64_t n) {
    std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(w_->config.vocab_size) - 1);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = d(rng_);
    return t;
  }

  const ModelWeights* w_;
  kernels::Backend* be_;
  ModelRunner* r_;
  std::mt19937 rng_{99};
};

// "FIRST-LAST:CLUSTERS:KHEADS", e.g. "15-29:3:1".
bool ParsePlan(absl::string_view text, const LlamaConfig& c, ChaiPlan* plan) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() != 3) return false;
  std::vector<std::string> range = absl::StrSplit(parts[0], '-');
  int32_t first, last, clusters, k_heads;
  if (range.size() != 2 || !absl::SimpleAtoi(range[0], &first) ||
      !absl::SimpleAtoi(range[1], &last) || !absl::SimpleAtoi(parts[1], &clusters) ||
      !absl::SimpleAtoi(parts[2], &k_heads)) {
    return false;
  }
  plan->clusters.assign(c.n_layers, static_cast<int32_t>(c.n_heads));
  plan->k_heads.assign(c.n_layers, static_cast<int32_t>(c.n_kv_heads));
  for (int32_t l = std::max(first, 0); l <= std::min<int64_t>(last, c.n_layers - 1); ++l) {
    plan->clusters[l] = clusters;
    plan->k_heads[l] = k_heads;
  }
  return true;
}

int Main(int argc, char** argv) {
  std::string model_path = std::string(CHAI_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string config_flag, plan_flag, baseline = "plain";
  int threads = 0, reps = 2;
  int32_t batch = 1;
  int64_t steps = 16;
  bool json = false;
  std::vector<int64_t> contexts = {512, 2048, 4096};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has = i + 1 < argc;
    if (a == "--model" && has) {
      model_path = argv[++i];
    } else if (a == "--threads" && has) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--reps" && has) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--decode-steps" && has) {
      steps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--decode-batch" && has) {
      batch = std::clamp(std::atoi(argv[++i]), 1, 256);
    } else if (a == "--chai-config" && has) {
      config_flag = argv[++i];
    } else if (a == "--plan" && has) {
      plan_flag = argv[++i];
    } else if (a == "--baseline" && has) {
      baseline = argv[++i];
      if (baseline != "plain" && baseline != "identity") {
        std::fprintf(stderr, "chai_chai_bench: --baseline takes plain or identity\n");
        return 2;
      }
    } else if (a == "--json") {
      json = true;
    } else if (a == "--contexts" && has) {
      contexts.clear();
      for (absl::string_view c : absl::StrSplit(argv[++i], ',')) {
        int64_t v;
        if (!absl::SimpleAtoi(c, &v) || v < 8 || v > 32768) {
          std::fprintf(stderr, "chai_chai_bench: bad --contexts\n");
          return 2;
        }
        contexts.push_back(v);
      }
    } else {
      std::fprintf(stderr,
                   "usage: chai_chai_bench [--model PATH] [--threads N] [--contexts 512,2048,4096] "
                   "[--chai-config FILE | --plan FIRST-LAST:CLUSTERS:KHEADS] [--decode-steps N] "
                   "[--decode-batch B] [--reps R] [--baseline plain|identity] [--json]\n");
      return 2;
    }
  }
  absl::StatusOr<LoadedModel> model = LoadModel(model_path);
  if (!model.ok()) {
    std::fprintf(stderr, "chai_chai_bench: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const LlamaConfig& c = model->weights->config;
  ChaiPlan plan;
  std::string plan_source;
  if (!plan_flag.empty()) {
    if (!ParsePlan(plan_flag, c, &plan)) {
      std::fprintf(stderr, "chai_chai_bench: bad --plan\n");
      return 2;
    }
    plan_source = "plan " + plan_flag;
  } else {
    absl::StatusOr<std::string> fp = ModelFingerprint(*model->weights);
    if (!fp.ok()) return 1;
    absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig(config_flag, c, *fp);
    if (!r.ok() || !r->config.has_value()) {
      std::fprintf(stderr, "chai_chai_bench: no CHAI config (%s)\n",
                   r.ok() ? r->source.c_str() : std::string(r.status().message()).c_str());
      return 1;
    }
    plan = r->config->plan();
    plan_source = r->source;
  }
  auto backend = kernels::CreateCpuBackend({.threads = threads});
  auto runner = *ModelRunner::Create(model->weights.get(), backend.get(), 512);
  ChaiBench bench(model->weights.get(), backend.get(), runner.get());
  (void)bench.Run({}, 64, 1, 2, 1);  // page in the weights
  ChaiPlan off_plan;                 // empty: plain attention
  if (baseline == "identity") {
    off_plan.clusters.assign(c.n_layers, static_cast<int32_t>(c.n_heads));
    off_plan.k_heads.assign(c.n_layers, static_cast<int32_t>(c.n_kv_heads));
  }
  nlohmann::json out = {{"model", model_path},
                        {"plan", plan_source},
                        {"decode_batch", batch},
                        {"baseline", baseline}};
  if (!json) {
    std::printf("%s, CHAI %s, decode batch %d\n", model_path.c_str(), plan_source.c_str(), batch);
    std::printf("%8s %12s %12s %7s %12s %12s %7s %10s %8s\n", "context", "prefill off",
                "prefill on", "ratio", "decode off", "decode on", "ratio", "K saved", "cluster");
  }
  for (int64_t ctx : contexts) {
    const Result off = bench.Run(off_plan, ctx, batch, steps, reps);
    const Result on = bench.Run(plan, ctx, batch, steps, reps);
    const double p_off = ctx / off.prefill_s, p_on = ctx / on.prefill_s;
    const double d_off = batch * steps / off.decode_s, d_on = batch * steps / on.decode_s;
    const double saved = 1.0 - static_cast<double>(on.k_bytes) / on.k_bytes_full;
    out["contexts"][std::to_string(ctx)] = {{"prefill_tokens_per_s_off", p_off},
                                            {"prefill_tokens_per_s_on", p_on},
                                            {"prefill_ratio", p_on / p_off},
                                            {"decode_tokens_per_s_off", d_off},
                                            {"decode_tokens_per_s_on", d_on},
                                            {"decode_ratio", d_on / d_off},
                                            {"k_cache_bytes_off", off.k_bytes},
                                            {"k_cache_bytes_on", on.k_bytes},
                                            {"k_saved_ratio", saved},
                                            {"clustering_s_per_request", on.clustering_s}};
    if (!json) {
      std::printf("%8ld %10.1f/s %10.1f/s %6.2fx %10.1f/s %10.1f/s %6.2fx %9.1f%% %6.2fms\n",
                  static_cast<long>(ctx), p_off, p_on, p_on / p_off, d_off, d_on, d_on / d_off,
                  100 * saved, 1e3 * on.clustering_s);
    }
  }
  if (json) std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace
}  // namespace chai::engine

int main(int argc, char** argv) { return chai::engine::Main(argc, argv); }
