// chai_chai_bench: CHAI on versus off in the CPU engine at long contexts
// (issue 3 item 9), as ratios from the same run.
//
//   chai_chai_bench [--model PATH] [--threads N] [--contexts 512,2048,4096]
//       [--chai-config FILE | --plan FIRST-LAST:CLUSTERS:KHEADS] [--decode-steps 16]
//       [--decode-batch 1] [--reps 2] [--baseline plain|identity] [--json]
//
// For each context C, --reps rounds; each round runs "off" and "on" back to
// back (the order alternates between rounds, so drift and warm-up do not
// favour one side) and measures for each:
//   prefill    one C-token prompt in runner-sized chunks (clustering included)
//   decode     --decode-batch sequences at context C, --decode-steps steps
//   attention  the Attention calls' share of both (ModelRunner's
//              SetTimeAttention): the only part CHAI's sharing can speed up,
//              so its ratio is the least diluted view of the saving
//   K bytes    the K cache the sequences hold at the end
// and the time the online clustering took per request. Tokens/s are the
// median over rounds; each ratio is the median of the rounds' on/off ratios,
// reported with their min and max so noise is visible. Without --chai-config
// or --plan the plan is the default model's shipped config. --baseline
// identity runs "off" as a CHAI cache whose every layer keeps all heads: the
// same code path as "on" with nothing shared or saved, so the ratio isolates
// what CHAI's sharing buys (plain and CHAI caches take different attention
// paths).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/bench/bench_util.h"
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

// One round of one side.
struct Sample {
  double prefill_s = 0, decode_s = 0;
  double prefill_attention_s = 0, decode_attention_s = 0;
  double clustering_s = 0;  // per request
  int64_t k_bytes = 0, k_bytes_full = 0;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

class ChaiBench {
 public:
  ChaiBench(const ModelWeights* w, kernels::Backend* be, ModelRunner* r) : w_(w), be_(be), r_(r) {
    r_->SetTimeAttention(true);
  }

  // One context, one plan (empty = plain), one round.
  Sample Run(const ChaiPlan& plan, int64_t context, int32_t batch, int64_t steps) {
    Sample out;
    KvCacheOptions o;
    o.max_seqs = batch;
    o.max_seq_len = context + steps;
    o.num_blocks = batch * ((o.max_seq_len + o.block_size - 1) / o.block_size);
    o.chai = plan;
    std::unique_ptr<KvCache> cache = *KvCache::Create(be_, w_->config, o);
    std::vector<float> logits(batch * w_->config.vocab_size);
    double clustering = 0;
    for (int32_t s = 0; s < batch; ++s) {
      CheckOrExit(cache->AddSequence(plan.enabled()).status(), "AddSequence");
      CheckOrExit(cache->Reserve(s, context + steps), "Reserve");
      const std::vector<int32_t> toks = RandomTokens(context);
      const auto t0 = Clock::now();
      double attention = 0;
      PrefillPrompt(*r_, *cache, s, toks, logits, [&] {
        clustering += r_->last_forward_stats().clustering_s;
        attention += r_->last_forward_stats().attention_s;
      });
      if (s == 0) {
        out.prefill_s = Since(t0);
        out.prefill_attention_s = attention;
      }
    }
    std::vector<int32_t> slots(batch), rows(batch), pos(batch);
    std::iota(slots.begin(), slots.end(), 0);
    std::iota(rows.begin(), rows.end(), 0);
    const auto t0 = Clock::now();
    for (int64_t step = 0; step < steps; ++step) {
      const std::vector<int32_t> toks = RandomTokens(batch);
      std::fill(pos.begin(), pos.end(), static_cast<int32_t>(context + step));
      CheckOrExit(r_->Forward({toks, slots, pos, rows}, *cache, logits), "decode Forward");
      out.decode_attention_s += r_->last_forward_stats().attention_s;
    }
    out.decode_s = Since(t0);
    out.clustering_s = clustering / batch;
    out.k_bytes = cache->k_bytes_in_use();
    out.k_bytes_full = cache->k_bytes_full_in_use();
    return out;
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
  (void)bench.Run({}, 64, 1, 2);  // page in the weights
  ChaiPlan off_plan;              // empty: plain attention
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
    std::printf("%8s %12s %12s %7s %12s %12s %7s %7s %7s %10s %8s\n", "context", "prefill off",
                "prefill on", "ratio", "decode off", "decode on", "ratio", "p-attn", "d-attn",
                "K saved", "cluster");
  }
  for (int64_t ctx : contexts) {
    std::vector<Sample> offs, ons;
    for (int rep = 0; rep < reps; ++rep) {
      if (rep % 2 == 0) {
        offs.push_back(bench.Run(off_plan, ctx, batch, steps));
        ons.push_back(bench.Run(plan, ctx, batch, steps));
      } else {
        ons.push_back(bench.Run(plan, ctx, batch, steps));
        offs.push_back(bench.Run(off_plan, ctx, batch, steps));
      }
    }
    // Median over rounds of a per-sample quantity, and of the rounds' on/off
    // ratios of it (with their range).
    using Of = std::function<double(const Sample&)>;
    auto med = [](const std::vector<Sample>& v, const Of& f) {
      std::vector<double> x;
      for (const Sample& s : v) x.push_back(f(s));
      return Median(x);
    };
    auto ratio = [&](const Of& speed) {
      std::vector<double> r;
      for (int i = 0; i < reps; ++i) r.push_back(speed(ons[i]) / speed(offs[i]));
      return nlohmann::json{{"median", Median(r)},
                            {"min", *std::min_element(r.begin(), r.end())},
                            {"max", *std::max_element(r.begin(), r.end())}};
    };
    // Speeds as rates so that every ratio reads "on is Nx faster".
    const double decoded = batch * static_cast<double>(steps);
    const Of prefill = [&](const Sample& s) { return ctx / s.prefill_s; };
    const Of decode = [&](const Sample& s) { return decoded / s.decode_s; };
    const Of prefill_attn = [](const Sample& s) { return 1.0 / s.prefill_attention_s; };
    const Of decode_attn = [](const Sample& s) { return 1.0 / s.decode_attention_s; };
    // A field of a Sample, as a quantity med() can take.
    auto field = [](double Sample::*m) { return Of([m](const Sample& s) { return s.*m; }); };
    const Sample& last_on = ons.back();
    const double saved = 1.0 - static_cast<double>(last_on.k_bytes) / last_on.k_bytes_full;
    const double clustering = med(ons, field(&Sample::clustering_s));
    nlohmann::json& o = out["contexts"][std::to_string(ctx)];
    o = {{"prefill_tokens_per_s_off", med(offs, prefill)},
         {"prefill_tokens_per_s_on", med(ons, prefill)},
         {"prefill_ratio", ratio(prefill)},
         {"decode_tokens_per_s_off", med(offs, decode)},
         {"decode_tokens_per_s_on", med(ons, decode)},
         {"decode_ratio", ratio(decode)},
         {"prefill_attention_s_off", med(offs, field(&Sample::prefill_attention_s))},
         {"prefill_attention_s_on", med(ons, field(&Sample::prefill_attention_s))},
         {"prefill_attention_share_off",
          med(offs, [](const Sample& s) { return s.prefill_attention_s / s.prefill_s; })},
         {"prefill_attention_ratio", ratio(prefill_attn)},
         {"decode_attention_s_off", med(offs, field(&Sample::decode_attention_s))},
         {"decode_attention_s_on", med(ons, field(&Sample::decode_attention_s))},
         {"decode_attention_share_off",
          med(offs, [](const Sample& s) { return s.decode_attention_s / s.decode_s; })},
         {"decode_attention_ratio", ratio(decode_attn)},
         {"k_cache_bytes_off", offs.back().k_bytes},
         {"k_cache_bytes_on", last_on.k_bytes},
         {"k_saved_ratio", saved},
         {"clustering_s_per_request", clustering},
         {"rounds", reps}};
    if (!json) {
      std::printf(
          "%8ld %10.1f/s %10.1f/s %6.2fx %10.1f/s %10.1f/s %6.2fx %6.2fx %6.2fx %9.1f%% %6.2fms\n",
          static_cast<long>(ctx), o["prefill_tokens_per_s_off"].get<double>(),
          o["prefill_tokens_per_s_on"].get<double>(), o["prefill_ratio"]["median"].get<double>(),
          o["decode_tokens_per_s_off"].get<double>(), o["decode_tokens_per_s_on"].get<double>(),
          o["decode_ratio"]["median"].get<double>(),
          o["prefill_attention_ratio"]["median"].get<double>(),
          o["decode_attention_ratio"]["median"].get<double>(), 100 * saved, 1e3 * clustering);
    }
  }
  if (json) std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

}  // namespace
}  // namespace chai::engine

int main(int argc, char** argv) { return chai::engine::Main(argc, argv); }
