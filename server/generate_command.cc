#include "server/generate_command.h"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/generate.h"
#include "engine/loaded_model.h"
#include "kernels/backend_registry.h"
#include "nlohmann/json.hpp"
#include "server/activations_flag.h"
#include "server/chai_config_flag.h"
#include "server/cli_flags.h"
#include "server/kv_dtype_flag.h"

namespace chai::server {
namespace {

constexpr char kSynopsis[] =
    "chai generate --model PATH --prompt TEXT [--chat] [--max-tokens N] [--temperature T] "
    "[--top-k K] [--top-p P] [--min-p P] [--seed S] [--ignore-eos] [--chai-config none|FILE] "
    "[--backend auto|cpu|cuda] [--threads N] [--activations int16|float] [--kv-cache-dtype "
    "f16|f32] [--json]";

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "chai generate: %s (see --help)\n", msg.c_str());
  return 2;
}

int Failure(const absl::Status& s) {
  std::fprintf(stderr, "chai generate: %s\n", std::string(s.message()).c_str());
  return 1;
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int RunGenerate(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("model", "GGUF file, or Hugging Face checkpoint directory (config.json + safetensors)");
  f.Value("prompt", "prompt text (raw; BOS added as the model's metadata says)");
  f.Bool("chat", "wrap the prompt as one user message in the model's chat template");
  f.Value("max-tokens", "tokens to generate at most", "128");
  f.Value("temperature", "sampling temperature; 0 = greedy", "0.8");
  f.Value("top-k", "keep the k most likely tokens; 0 = off", "0");
  f.Value("top-p", "nucleus sampling mass in (0, 1]", "1");
  f.Value("min-p", "drop tokens below min-p x the top probability", "0");
  f.Value("repetition-penalty", "HF-style repetition penalty; 1 = off", "1");
  f.Value("presence-penalty", "OpenAI-style presence penalty in [-2, 2]", "0");
  f.Value("frequency-penalty", "OpenAI-style frequency penalty in [-2, 2]", "0");
  f.Value("seed", "sampler seed (default: random, reported in --json output)");
  f.Bool("ignore-eos", "keep generating past end-of-sequence tokens");
  f.Value("chai-config",
          "CHAI cluster config: none, or a FILE (default: the shipped config matching the model)",
          "");
  f.Value("backend", "auto, cpu or cuda", "auto");
  f.Value("threads", "CPU threads; 0 = all cores", "0");
  DeclareActivationsFlag(f);
  DeclareKvDtypeFlag(f);
  f.Bool("json", "print JSON Lines: one object per token, then a summary");
  if (absl::Status s = f.Parse(args); !s.ok()) return UsageError(std::string(s.message()));
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  if (!f.Has("model")) return UsageError("--model is required");
  if (!f.Has("prompt")) return UsageError("--prompt is required");

  engine::GenerateOptions opts;
  absl::StatusOr<int64_t> max_tokens = f.Int("max-tokens", 0, 1 << 24);
  absl::StatusOr<double> temperature = f.Double("temperature", 0, 1e6);
  absl::StatusOr<int64_t> top_k = f.Int("top-k", 0, 1 << 30);
  absl::StatusOr<double> top_p = f.Double("top-p", 0, 1);
  absl::StatusOr<double> min_p = f.Double("min-p", 0, 1);
  absl::StatusOr<double> rep = f.Double("repetition-penalty", 1e-6, 1e6);
  absl::StatusOr<double> pres = f.Double("presence-penalty", -2, 2);
  absl::StatusOr<double> freq = f.Double("frequency-penalty", -2, 2);
  absl::StatusOr<int64_t> threads = f.Int("threads", 0, 1024);
  for (const absl::Status& s :
       {max_tokens.status(), temperature.status(), top_k.status(), top_p.status(), min_p.status(),
        rep.status(), pres.status(), freq.status(), threads.status()}) {
    if (!s.ok()) return UsageError(std::string(s.message()));
  }
  if (*top_p <= 0) return UsageError("--top-p must be in (0, 1]");
  opts.max_tokens = static_cast<int32_t>(*max_tokens);
  opts.ignore_eos = f.On("ignore-eos");
  opts.sampling.temperature = static_cast<float>(*temperature);
  opts.sampling.top_k = static_cast<int32_t>(*top_k);
  opts.sampling.top_p = static_cast<float>(*top_p);
  opts.sampling.min_p = static_cast<float>(*min_p);
  opts.sampling.repetition_penalty = static_cast<float>(*rep);
  opts.sampling.presence_penalty = static_cast<float>(*pres);
  opts.sampling.frequency_penalty = static_cast<float>(*freq);
  if (f.Has("seed")) {
    absl::StatusOr<int64_t> seed = f.Int("seed", 0, INT64_MAX);
    if (!seed.ok()) return UsageError(std::string(seed.status().message()));
    opts.sampling.seed = static_cast<uint64_t>(*seed);
  }
  absl::StatusOr<kernels::BackendKind> backend_kind = kernels::ParseBackendKind(f.Str("backend"));
  if (!backend_kind.ok()) return UsageError(std::string(backend_kind.status().message()));
  absl::StatusOr<kernels::cpu::ActivationMode> activations = ActivationsFlag(f);
  if (!activations.ok()) return UsageError(std::string(activations.status().message()));
  absl::StatusOr<kernels::DType> kv_dtype = KvDtypeFlag(f);
  if (!kv_dtype.ok()) return UsageError(std::string(kv_dtype.status().message()));

  auto t_load = std::chrono::steady_clock::now();
  absl::StatusOr<engine::LoadedModel> model = engine::LoadModel(f.Str("model"));
  if (!model.ok()) return Failure(model.status());
  absl::StatusOr<ResolvedChaiPlan> chai =
      ResolveChaiPlan(f.Str("chai-config"), *model, "chai generate");
  if (!chai.ok()) return Failure(chai.status());
  opts.chai = chai->plan;
  // auto: CUDA when its module loads and finds a device, else the CPU.
  absl::StatusOr<std::unique_ptr<kernels::Backend>> created =
      kernels::CreateBackend(*backend_kind, {.cpu_threads = static_cast<int>(*threads),
                                             .cpu_activations = *activations,
                                             .cpu_kv_dtype = *kv_dtype});
  if (!created.ok()) return Failure(created.status());
  std::unique_ptr<kernels::Backend> backend = *std::move(created);
  absl::StatusOr<std::unique_ptr<engine::ModelRunner>> runner =
      engine::ModelRunner::Create(model->weights.get(), backend.get(), 512);
  if (!runner.ok()) return Failure(runner.status());
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();

  const engine::Tokenizer& tok = *model->tokenizer;
  std::string text = f.Str("prompt");
  bool parse_special = false;
  if (f.On("chat")) {
    engine::ChatMessage msg{"user", text};
    absl::StatusOr<std::string> rendered =
        tok.ApplyChatTemplate(std::span<const engine::ChatMessage>(&msg, 1), true);
    if (!rendered.ok()) return Failure(rendered.status());
    text = *rendered;
    parse_special = true;  // the template's control tokens are real tokens
  }
  std::vector<int32_t> prompt = tok.Encode(text, /*add_special=*/true, parse_special);

  const bool json = f.On("json");
  absl::StatusOr<engine::GenerateResult> result =
      engine::Generate(**runner, *backend, tok, prompt, opts, [&](const engine::GeneratedToken& t) {
        if (json) {
          std::cout << Dump({{"id", t.id}, {"text", t.text}, {"logprob", t.logprob}}) << "\n";
        } else {
          std::cout << t.text;
        }
        std::cout.flush();
      });
  if (!result.ok()) return Failure(result.status());
  // A device error turns later ops into no-ops (kernels/backend_registry.h).
  if (absl::Status s = kernels::BackendStatus(*backend); !s.ok()) return Failure(s);
  const int64_t decode_steps = std::max<int64_t>(result->completion_tokens - 1, 0);
  if (json) {
    nlohmann::json summary = {
        {"finish_reason", result->finish_reason},
        {"usage",
         {{"prompt_tokens", result->prompt_tokens},
          {"completion_tokens", result->completion_tokens}}},
        {"timings",
         {{"load_s", load_s},
          {"prefill_s", result->prefill_s},
          {"decode_s", result->decode_s},
          {"prefill_tokens_per_s",
           result->prefill_s > 0 ? result->prompt_tokens / result->prefill_s : 0.0},
          {"decode_tokens_per_s", result->decode_s > 0 ? decode_steps / result->decode_s : 0.0}}},
        {"chai",
         {{"enabled", result->chai},
          {"k_cache_bytes", result->k_cache_bytes},
          {"k_cache_bytes_full", result->k_cache_bytes_full},
          {"config", chai->source},
          {"clustering_s", result->clustering_s}}},
        {"seed", result->seed}};
    std::cout << Dump(summary) << "\n";
  } else {
    std::cout << "\n";
  }
  return 0;
}

}  // namespace chai::server
