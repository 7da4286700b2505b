#include "server/eval_command.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/chai/chai_config_resolve.h"
#include "engine/chai/model_fingerprint.h"
#include "engine/eval/eval_engine.h"
#include "engine/eval/evaluate.h"
#include "engine/eval/tasks.h"
#include "engine/loaded_model.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"
#include "server/activations_flag.h"
#include "server/cli_flags.h"
#include "server/kv_dtype_flag.h"

namespace chai::server {
namespace {

namespace ev = engine::eval;
using Clock = std::chrono::steady_clock;

constexpr char kSynopsis[] =
    "chai eval --model PATH --task hellaswag|piqa|arc-easy|arc-challenge|boolq|wikitext "
    "--data DIR [--split test|dev] [--limit N] [--chai-config none|FILE] [--threads N] "
    "[--activations int16|float] [--kv-cache-dtype f16|f32] [--json]";

// WikiText-2 windows, as llama.cpp's perplexity default (-c 512).
constexpr int32_t kPerplexityContext = 512;

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "chai eval: %s (see --help)\n", msg.c_str());
  return 2;
}

int Failure(const absl::Status& s) {
  std::fprintf(stderr, "chai eval: %s\n", std::string(s.message()).c_str());
  return 1;
}

std::string Duration(double s) {
  const int64_t t = static_cast<int64_t>(std::max(0.0, s) + 0.5);
  if (t >= 3600) return absl::StrFormat("%dh%02dm", t / 3600, t / 60 % 60);
  if (t >= 60) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%ds", t);
}

// Progress and ETA on stderr, at most every few seconds and at the end.
class Progress {
 public:
  Progress(std::string what, std::string unit) : what_(std::move(what)), unit_(std::move(unit)) {}
  void operator()(int64_t done, int64_t total, int64_t tokens) {
    const auto now = Clock::now();
    if (done < total && now - last_ < std::chrono::seconds(5)) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    const std::string eta = done > 0 ? Duration(s * (total - done) / done) : "?";
    std::fprintf(stderr, "chai eval: %s %lld/%lld %s, %.0f tokens/s, elapsed %s, ETA %s\n",
                 what_.c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 unit_.c_str(), s > 0 ? tokens / s : 0.0, Duration(s).c_str(), eta.c_str());
  }

 private:
  std::string what_, unit_;
  Clock::time_point start_ = Clock::now(), last_ = Clock::now();
};

// NaN (an undefined standard error) becomes JSON null.
nlohmann::json Num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json McJson(const ev::McMetrics& m) {
  return {{"n", m.n},
          {"acc", Num(m.acc)},
          {"acc_stderr", Num(m.acc_stderr)},
          {"acc_norm", Num(m.acc_norm)},
          {"acc_norm_stderr", Num(m.acc_norm_stderr)}};
}

nlohmann::json PplJson(int64_t n_tokens, const ev::PerplexityStats& p) {
  return {{"n_tokens", n_tokens}, {"ppl", Num(p.ppl)}, {"ppl_stderr", Num(p.ppl_stderr)}};
}

std::string PlusMinus(double v, double se) {
  return std::isfinite(se) ? absl::StrFormat("%.4f +/- %.4f", v, se) : absl::StrFormat("%.4f", v);
}

}  // namespace

int RunEval(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("model", "GGUF file, or Hugging Face checkpoint directory");
  f.Value("task", "hellaswag, piqa, arc-easy, arc-challenge, boolq or wikitext");
  f.Value("data", "the task's data folder (as ../shared/data/eval/<task>/)");
  f.Value("split", "test or dev (default: test for ARC and WikiText, dev (validation) otherwise)");
  f.Value("limit", "first N items (WikiText: windows of 512 tokens); 0 = all", "0");
  f.Value("chai-config", "CHAI cluster config: none, or a FILE (default: the shipped one)", "");
  f.Value("threads", "CPU threads; 0 = all cores", "0");
  DeclareActivationsFlag(f);
  DeclareKvDtypeFlag(f);
  f.Bool("json", "print one JSON object with the results");
  if (absl::Status s = f.Parse(args); !s.ok()) return UsageError(std::string(s.message()));
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  for (const char* required : {"model", "task", "data"}) {
    if (!f.Has(required)) return UsageError(absl::StrCat("--", required, " is required"));
  }
  absl::StatusOr<ev::Task> task = ev::ParseTask(f.Str("task"));
  if (!task.ok()) return UsageError(std::string(task.status().message()));
  ev::Split split = ev::Split::kDefault;
  if (f.Has("split")) {
    absl::StatusOr<ev::Split> s = ev::ParseSplit(f.Str("split"));
    if (!s.ok()) return UsageError(std::string(s.status().message()));
    split = *s;
  }
  absl::StatusOr<int64_t> limit = f.Int("limit", 0, INT64_MAX);
  if (!limit.ok()) return UsageError(std::string(limit.status().message()));
  absl::StatusOr<int64_t> threads = f.Int("threads", 0, 1024);
  if (!threads.ok()) return UsageError(std::string(threads.status().message()));
  absl::StatusOr<kernels::cpu::ActivationMode> activations = ActivationsFlag(f);
  if (!activations.ok()) return UsageError(std::string(activations.status().message()));
  absl::StatusOr<kernels::DType> kv_dtype = KvDtypeFlag(f);
  if (!kv_dtype.ok()) return UsageError(std::string(kv_dtype.status().message()));
  const bool json = f.On("json");
  const std::string dir = f.Str("data");

  // Data first: a bad data folder fails before the model is loaded.
  std::vector<ev::McItem> items;
  std::string text;
  if (ev::IsMultipleChoice(*task)) {
    absl::StatusOr<std::vector<ev::McItem>> loaded = ev::LoadMcTask(*task, dir, split);
    if (!loaded.ok()) return Failure(loaded.status());
    items = *std::move(loaded);
    if (*limit > 0 && static_cast<int64_t>(items.size()) > *limit) items.resize(*limit);
  } else {
    absl::StatusOr<std::string> loaded = ev::LoadWikitext(dir, split);
    if (!loaded.ok()) return Failure(loaded.status());
    text = *std::move(loaded);
  }

  absl::StatusOr<engine::LoadedModel> model = engine::LoadModel(f.Str("model"));
  if (!model.ok()) return Failure(model.status());
  const engine::LlamaConfig& config = model->weights->config;
  absl::StatusOr<std::string> fingerprint = engine::ModelFingerprint(*model->weights);
  if (!fingerprint.ok()) return Failure(fingerprint.status());
  absl::StatusOr<engine::ResolvedChaiConfig> chai =
      engine::ResolveChaiConfig(f.Str("chai-config"), config, *fingerprint);
  if (!chai.ok()) return Failure(chai.status());
  if (!chai->warning.empty()) std::fprintf(stderr, "chai eval: %s\n", chai->warning.c_str());

  std::unique_ptr<kernels::Backend> backend =
      kernels::CreateCpuBackend({.threads = static_cast<int>(*threads),
                                 .activation_mode = *activations,
                                 .kv_dtype = *kv_dtype});
  ev::EvalEngineOptions eo;
  eo.max_seq_len = config.context_length;
  if (*task == ev::Task::kWikitext) {
    // One window per step, one window's positions in the cache.
    eo.max_batch_tokens = kPerplexityContext;
    eo.max_seqs = 2;
    eo.kv_positions = 2 * kPerplexityContext;
  } else {
    eo.max_batch_tokens = 512;
    eo.max_seqs = 64;
    eo.kv_positions = 4096;
  }
  if (chai->config.has_value()) eo.chai = chai->config->plan();
  absl::StatusOr<std::unique_ptr<ev::EvalEngine>> eval_engine =
      ev::EvalEngine::Create(model->weights.get(), backend.get(), eo);
  if (!eval_engine.ok()) return Failure(eval_engine.status());
  ev::EvalEngine& engine = **eval_engine;
  const char* task_name = ev::TaskName(*task);
  std::fprintf(stderr, "chai eval: %s, CHAI %s (%s)\n", task_name, engine.has_chai() ? "on" : "off",
               chai->source.c_str());

  const auto t0 = Clock::now();
  nlohmann::json out;
  std::optional<ev::KlAccumulator> kl;
  std::vector<std::string> lines;
  if (ev::IsMultipleChoice(*task)) {
    Progress progress(task_name, "items");
    absl::StatusOr<ev::McEvaluation> r =
        ev::EvaluateMultipleChoice(engine, *model->tokenizer, items,
                                   [&](int64_t d, int64_t t, int64_t n) { progress(d, t, n); });
    if (!r.ok()) return Failure(r.status());
    // Top level: the configuration in force (CHAI when on); "chai.plain":
    // plain attention over the same items.
    const ev::McMetrics& m = r->chai.has_value() ? *r->chai : r->plain;
    out = {{"task", task_name}};
    out.update(McJson(m));
    lines.push_back(absl::StrFormat("%s: %lld items, acc %s, acc_norm %s%s", task_name,
                                    static_cast<long long>(m.n), PlusMinus(m.acc, m.acc_stderr),
                                    PlusMinus(m.acc_norm, m.acc_norm_stderr),
                                    r->chai.has_value() ? " (CHAI)" : ""));
    if (r->chai.has_value()) {
      out["chai"] = {{"enabled", true}, {"config", chai->source}, {"plain", McJson(r->plain)}};
      lines.push_back(absl::StrFormat("  plain attention: acc %s, acc_norm %s",
                                      PlusMinus(r->plain.acc, r->plain.acc_stderr),
                                      PlusMinus(r->plain.acc_norm, r->plain.acc_norm_stderr)));
      kl = r->kl;
    }
  } else {
    Progress progress(task_name, "windows");
    absl::StatusOr<ev::PerplexityEvaluation> r =
        ev::EvaluatePerplexity(engine, *model->tokenizer, text, kPerplexityContext, *limit,
                               [&](int64_t d, int64_t t, int64_t n) { progress(d, t, n); });
    if (!r.ok()) return Failure(r.status());
    const ev::PerplexityStats& p = r->chai.has_value() ? *r->chai : r->plain;
    out = {{"task", task_name}};
    out.update(PplJson(r->n_tokens, p));
    lines.push_back(absl::StrFormat("%s: %lld windows of %d, %lld scored tokens, ppl %s%s",
                                    task_name, static_cast<long long>(r->n_windows),
                                    kPerplexityContext, static_cast<long long>(r->n_tokens),
                                    PlusMinus(p.ppl, p.ppl_stderr),
                                    r->chai.has_value() ? " (CHAI)" : ""));
    if (r->chai.has_value()) {
      out["chai"] = {
          {"enabled", true}, {"config", chai->source}, {"plain", PplJson(r->n_tokens, r->plain)}};
      lines.push_back(absl::StrFormat("  plain attention: ppl %s",
                                      PlusMinus(r->plain.ppl, r->plain.ppl_stderr)));
      kl = r->kl;
    }
  }
  if (kl.has_value()) {
    out["chai"]["clustering_s"] = engine.clustering_s();
    out["chai"]["sequences_clustered"] = engine.sequences_clustered();
    out["kl_vs_plain"] = {
        {"mean_kl", kl->mean_kl()}, {"top1_agreement", kl->top1_agreement()}, {"n", kl->n()}};
    lines.push_back(
        absl::StrFormat("  CHAI vs plain: mean KL %.6g, top-1 agreement %.4f over %lld "
                        "positions",
                        kl->mean_kl(), kl->top1_agreement(), static_cast<long long>(kl->n())));
  }
  std::fprintf(stderr, "chai eval: done in %s\n",
               Duration(std::chrono::duration<double>(Clock::now() - t0).count()).c_str());
  if (json) {
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    for (const std::string& l : lines) std::cout << l << "\n";
  }
  return 0;
}

}  // namespace chai::server
