#include "server/calibrate_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/chai/calibration.h"
#include "engine/chai/calibration_data.h"
#include "engine/chai/calibration_report.h"
#include "engine/eval/kl_gate.h"
#include "engine/loaded_model.h"
#include "kernels/cpu/cpu_backend.h"
#include "server/activations_flag.h"
#include "server/cli_flags.h"
#include "server/kv_dtype_flag.h"

namespace chai::server {
namespace {

constexpr char kSynopsis[] =
    "chai calibrate --model PATH --data FILE.jsonl --out FILE.json [--samples N] [--tokens T] "
    "[--threads N] [--activations int16|float] [--kv-cache-dtype f16|f32] [--seed S] "
    "[--min-strength F] [--max-residual F] "
    "[--kl-budget B [--kl-samples N] [--kl-tokens T]]";

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "chai calibrate: %s (see --help)\n", msg.c_str());
  return 2;
}

int Failure(const absl::Status& s) {
  std::fprintf(stderr, "chai calibrate: %s\n", std::string(s.message()).c_str());
  return 1;
}

std::string Duration(double s) {
  if (s < 60) return absl::StrFormat("%.0fs", s);
  return absl::StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
}

// "\r[#####.....] 12/64 samples  7s elapsed  ETA 30s" on a terminal; a plain
// line per 10% otherwise, so logs stay readable.
class Progress {
 public:
  Progress() : tty_(isatty(fileno(stderr)) != 0), start_(std::chrono::steady_clock::now()) {}
  void Update(int32_t done, int32_t total) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double eta = done > 0 ? elapsed / done * (total - done) : 0;
    constexpr int kWidth = 30;
    const int filled = total > 0 ? kWidth * done / total : kWidth;
    const std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    const std::string line = absl::StrFormat("calibrate [%s] %d/%d samples  %s elapsed  ETA %s",
                                             bar, done, total, Duration(elapsed), Duration(eta));
    if (tty_) {
      std::fprintf(stderr, "\r%s", line.c_str());
      if (done == total) std::fputc('\n', stderr);
    } else if (done == total || (10 * done / total) != (10 * (done - 1) / total)) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  }

 private:
  bool tty_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

int RunCalibrate(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("model", "GGUF file, or Hugging Face checkpoint directory");
  f.Value("data", "calibration text, JSON Lines with a \"text\" field (e.g. the C4 sample)");
  f.Value("out", "cluster config to write (FILE.json; FILE.csv and FILE.svg go beside it)");
  f.Value("samples", "documents to calibrate on", "64");
  f.Value("tokens", "tokens per sample (each document's first T tokens)", "128");
  f.Value("threads", "CPU threads; 0 = all cores", "0");
  DeclareActivationsFlag(f);
  DeclareKvDtypeFlag(f);
  f.Value("seed", "K-means seed", "0");
  f.Value("min-strength", "weakest knee (Kneedle difference, 0-1) that counts; else keep all heads",
          "0.1");
  f.Value("max-residual",
          "largest normalised K-means error (0-1) a layer's k may leave; 1 = pure knee", "1");
  f.Value("kl-budget",
          "gate the knee choices by fidelity: admit layers (last first) while the mean KL from "
          "plain attention on held-out calibration documents stays <= B nats");
  f.Value("kl-samples", "with --kl-budget: documents the KL is measured on", "8");
  f.Value("kl-tokens", "with --kl-budget: tokens per KL document (second half scored)", "256");
  if (absl::Status s = f.Parse(args); !s.ok()) return UsageError(std::string(s.message()));
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  for (const char* required : {"model", "data", "out"}) {
    if (!f.Has(required)) return UsageError(absl::StrCat("--", required, " is required"));
  }
  absl::StatusOr<int64_t> samples = f.Int("samples", 1, 1 << 20);
  absl::StatusOr<int64_t> tokens = f.Int("tokens", 2, 4096);
  absl::StatusOr<int64_t> threads = f.Int("threads", 0, 1024);
  absl::StatusOr<int64_t> seed = f.Int("seed", 0, INT64_MAX);
  absl::StatusOr<double> min_strength = f.Double("min-strength", 0, 1);
  absl::StatusOr<double> max_residual = f.Double("max-residual", 0, 1);
  const bool gate = f.Has("kl-budget");
  absl::StatusOr<double> kl_budget = gate ? f.Double("kl-budget", 0, 100) : 0.0;
  absl::StatusOr<int64_t> kl_samples = f.Int("kl-samples", 1, 4096);
  absl::StatusOr<int64_t> kl_tokens = f.Int("kl-tokens", 8, 4096);
  for (const absl::Status& s :
       {samples.status(), tokens.status(), threads.status(), seed.status(), min_strength.status(),
        max_residual.status(), kl_budget.status(), kl_samples.status(), kl_tokens.status()}) {
    if (!s.ok()) return UsageError(std::string(s.message()));
  }
  const std::string out = f.Str("out");
  if (out.empty()) return UsageError("--out must name a file");
  const std::string stem = absl::EndsWith(out, ".json") ? out.substr(0, out.size() - 5) : out;
  const std::string csv_path = stem + ".csv", svg_path = stem + ".svg";

  auto t0 = std::chrono::steady_clock::now();
  absl::StatusOr<engine::LoadedModel> model = engine::LoadModel(f.Str("model"));
  if (!model.ok()) return Failure(model.status());
  const std::string data_path = f.Str("data");
  absl::StatusOr<engine::CalibrationData> data = engine::LoadCalibrationData(
      data_path, *model->tokenizer, static_cast<int32_t>(*samples), static_cast<int32_t>(*tokens));
  if (!data.ok()) return Failure(data.status());

  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int n_threads = *threads == 0 ? hw : static_cast<int>(*threads);
  absl::StatusOr<kernels::cpu::ActivationMode> activations = ActivationsFlag(f);
  if (!activations.ok()) return UsageError(std::string(activations.status().message()));
  absl::StatusOr<kernels::DType> kv_dtype = KvDtypeFlag(f);
  if (!kv_dtype.ok()) return UsageError(std::string(kv_dtype.status().message()));
  std::unique_ptr<kernels::Backend> backend = kernels::CreateCpuBackend(
      {.threads = n_threads, .activation_mode = *activations, .kv_dtype = *kv_dtype});
  engine::CalibrationOptions opt;
  opt.samples = static_cast<int32_t>(*samples);
  opt.tokens = static_cast<int32_t>(*tokens);
  opt.threads = n_threads;
  opt.kmeans.seed = static_cast<uint64_t>(*seed);
  opt.knee.min_strength = *min_strength;
  opt.knee.max_residual = *max_residual;
  const std::string data_name = std::filesystem::path(data_path).filename().string();
  std::fprintf(stderr,
               "chai calibrate: %s, %d samples x %d tokens from %s (%lld records read, %lld "
               "shorter ones skipped)\n",
               model->weights->config.name.c_str(), opt.samples, opt.tokens, data_name.c_str(),
               static_cast<long long>(data->records_read),
               static_cast<long long>(data->records_skipped));
  Progress progress;
  absl::StatusOr<engine::CalibrationResult> result =
      engine::Calibrate(*model->weights, *backend, data->samples, data_name, opt,
                        [&](int32_t done, int32_t total) { progress.Update(done, total); });
  if (!result.ok()) return Failure(result.status());

  if (gate) {
    // Held-out text: documents after the ones the K-means saw (a document
    // long enough for both can appear in each; both are calibration data).
    const int32_t n_kl = static_cast<int32_t>(*kl_samples);
    absl::StatusOr<engine::CalibrationData> kl_data = engine::LoadCalibrationData(
        data_path, *model->tokenizer, opt.samples + n_kl, static_cast<int32_t>(*kl_tokens));
    if (!kl_data.ok()) return Failure(kl_data.status());
    std::vector<std::vector<int32_t>> held_out(kl_data->samples.end() - n_kl,
                                               kl_data->samples.end());
    engine::eval::KlGateOptions gate_opt;
    gate_opt.budget = *kl_budget;
    gate_opt.score_from = static_cast<int32_t>(*kl_tokens / 2);
    const engine::ChaiPlan knee = result->config.plan();
    std::fprintf(stderr, "chai calibrate: KL gate, budget %g nats, %d documents x %lld tokens\n",
                 gate_opt.budget, n_kl, static_cast<long long>(*kl_tokens));
    absl::StatusOr<engine::eval::KlGateResult> gated = engine::eval::RunKlGate(
        knee, model->weights->config, gate_opt,
        engine::eval::ModelPlanScorer(model->weights.get(), backend.get(), &held_out,
                                      gate_opt.score_from),
        [](const engine::eval::KlGateTrial& t) {
          std::fprintf(stderr, "  layer %2d at %d/%d: KL %.4f top-1 %.3f %s\n", t.layer, t.clusters,
                       t.k_heads, t.mean_kl, t.top1_agreement,
                       t.accepted ? "admitted" : "over budget");
        });
    if (!gated.ok()) return Failure(gated.status());
    for (size_t l = 0; l < result->config.layers.size(); ++l) {
      result->config.layers[l] = {gated->plan.clusters[l], gated->plan.k_heads[l]};
      result->layers[l].clusters = gated->plan.clusters[l];
      result->layers[l].k_heads = gated->plan.k_heads[l];
    }
    absl::StrAppend(&result->config.calibration->method, "; KL gate: layers admitted last first ",
                    "while mean KL <= ", gate_opt.budget, " nats on ", n_kl, " held-out documents ",
                    "x ", *kl_tokens, " tokens (second half scored); final KL ",
                    absl::StrFormat("%.4f", gated->mean_kl));
  }
  // The CPU numerics the features came from (--activations).
  absl::StrAppend(&result->config.calibration->method, "; CPU activations ", f.Str("activations"),
                  ", KV cache ", f.Str("kv-cache-dtype"));
  if (absl::Status s = result->config.Save(out); !s.ok()) return Failure(s);
  if (absl::Status s = engine::WriteTextFile(csv_path, engine::CalibrationCsv(*result)); !s.ok()) {
    return Failure(s);
  }
  if (absl::Status s = engine::WriteTextFile(svg_path, engine::CalibrationSvg(*result)); !s.ok()) {
    return Failure(s);
  }
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string per_layer;
  for (const engine::ChaiLayerConfig& l : result->config.layers) {
    absl::StrAppend(&per_layer, per_layer.empty() ? "" : " ", l.clusters, "/", l.k_heads);
  }
  std::fprintf(stderr, "chai calibrate: wrote %s, %s, %s in %s\n", out.c_str(), csv_path.c_str(),
               svg_path.c_str(), Duration(total_s).c_str());
  std::fprintf(stderr, "chai calibrate: clusters/k_heads per layer: %s\n", per_layer.c_str());
  return 0;
}

}  // namespace chai::server
