// `chai generate` as a user runs it: exit codes and one-line errors for bad
// command lines and bad files, the --json contract, and greedy output on the
// real model equal to the transformers reference (tests/golden/logits).
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "engine/loaded_model.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/cli_runner.h"
#include "tests/testing/golden.h"

namespace {

using chai::testing::SourceDir;
std::string ModelPath() { return chai::testing::DefaultModelPath(); }
bool HaveModel() { return std::ifstream(ModelPath()).good(); }

using chai::testing::CliRun;

CliRun Chai(const std::vector<std::string>& args) {
  return chai::testing::RunCli(CHAI_BINARY, args);
}

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(CliTest, TopLevelUsage) {
  EXPECT_EQ(Chai({"--help"}).status, 0);
  EXPECT_EQ(Chai({}).status, 2);
  CliRun r = Chai({"frobnicate"});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(Lines(r.err), 1);
}

TEST(CliTest, GenerateHelp) {
  CliRun r = Chai({"generate", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--max-tokens"), std::string::npos);
  EXPECT_NE(r.out.find("--json"), std::string::npos);
}

TEST(CliTest, BadFlagsExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {"generate", "--model", "m", "--prompt", "p", "--nope"},
      {"generate", "--model", "m", "--prompt", "p", "--temperature", "-1"},
      {"generate", "--model", "m", "--prompt", "p", "--temperature", "nan"},
      {"generate", "--model", "m", "--prompt", "p", "--top-p", "0"},
      {"generate", "--model", "m", "--prompt", "p", "--top-p", "1.5"},
      {"generate", "--model", "m", "--prompt", "p", "--max-tokens", "abc"},
      {"generate", "--model", "m", "--prompt", "p", "--backend", "tpu"},
      {"generate", "--model", "m", "--prompt", "p", "--activations", "int8"},
      {"generate", "--model", "m", "--prompt", "p", "--activations", "fast"},
      {"generate", "--model", "m", "--prompt", "p", "--kv-cache-dtype", "bf16"},
      {"generate", "--model", "m", "--prompt", "p", "--kv-cache-dtype", "F16"},
      {"generate", "--model", "m", "--prompt", "p", "--json=maybe"},
      {"generate", "--model", "m", "--prompt"},
      {"generate", "--prompt", "p"},
      {"generate", "--model", "m", "stray"},
  };
  for (const auto& c : cases) {
    CliRun r = Chai(c);
    EXPECT_EQ(r.status, 2) << c.back();
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_TRUE(r.out.empty());
  }
}

TEST(CliTest, BadModelFilesExitOneWithOneLine) {
  const std::string garbage = ::testing::TempDir() + "/garbage.gguf";
  std::ofstream(garbage) << "this is not a model file at all";
  const std::string truncated = ::testing::TempDir() + "/truncated.gguf";
  {
    std::ofstream t(truncated, std::ios::binary);
    t.write("GGUF\x03\0\0\0", 8);  // valid magic and version, then nothing
  }
  for (const std::string& path :
       {std::string("/nonexistent/model.gguf"), garbage, truncated, ::testing::TempDir()}) {
    CliRun r = Chai({"generate", "--model", path, "--prompt", "hi"});
    EXPECT_EQ(r.status, 1) << path;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("chai generate:"), std::string::npos);
  }
}

class CliModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveModel()) GTEST_SKIP() << "default model missing: run deploy/setup.sh";
    std::ifstream in(SourceDir() + "/tests/golden/logits/golden.json");
    golden_ = nlohmann::json::parse(in);
  }
  nlohmann::json golden_;
};

// Our tokenizer must give the reference's prompt ids, or the CLI comparison
// below would compare different inputs.
TEST_F(CliModelTest, TokenizerReproducesGoldenPromptIds) {
  absl::StatusOr<chai::engine::LoadedModel> m = chai::engine::LoadModel(ModelPath());
  ASSERT_TRUE(m.ok()) << m.status();
  for (const auto& c : golden_["cases"]) {
    EXPECT_EQ(m->tokenizer->Encode(c["prompt"].get<std::string>(), true, false),
              c["ids"].get<std::vector<int32_t>>())
        << c["prompt"];
  }
}

TEST_F(CliModelTest, GreedyJsonMatchesReference) {
  const auto& c = golden_["cases"][0];
  const int n = 24;
  CliRun r = Chai({"generate", "--model", ModelPath(), "--prompt", c["prompt"].get<std::string>(),
                   "--temperature", "0", "--max-tokens", std::to_string(n), "--ignore-eos",
                   "--json", "--threads", "2", "--chai-config", "none"});
  ASSERT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<int32_t> ids;
  std::string text;
  nlohmann::json summary;
  while (std::getline(lines, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains("id")) {
      ids.push_back(j["id"].get<int32_t>());
      text += j["text"].get<std::string>();
      EXPECT_LE(j["logprob"].get<double>(), 0.0);
    } else {
      summary = j;
    }
  }
  const std::vector<int32_t> ref = c["greedy"].get<std::vector<int32_t>>();
  ASSERT_EQ(ids.size(), static_cast<size_t>(n));
  EXPECT_EQ(ids, std::vector<int32_t>(ref.begin(), ref.begin() + n));
  EXPECT_EQ(summary["finish_reason"], "length");
  EXPECT_EQ(summary["usage"]["prompt_tokens"], c["ids"].size());
  EXPECT_EQ(summary["usage"]["completion_tokens"], n);
  for (const char* k :
       {"load_s", "prefill_s", "decode_s", "prefill_tokens_per_s", "decode_tokens_per_s"}) {
    EXPECT_GT(summary["timings"][k].get<double>(), 0.0) << k;
  }
  EXPECT_EQ(summary["chai"]["enabled"], false);
  // 5 prompt + 23 decoded tokens cached; SmolLM2: 30 layers x 3 KV heads x 64
  // x 2 bytes (the CPU's fp16 cache).
  const int64_t cached = static_cast<int64_t>(c["ids"].size()) + n - 1;
  EXPECT_EQ(summary["chai"]["k_cache_bytes"], cached * 30 * 3 * 64 * 2);
  EXPECT_EQ(summary["chai"]["k_cache_bytes_full"], summary["chai"]["k_cache_bytes"]);

  // The same greedy run with one more CPU backend flag, line by line against
  // the default run: every token id must match; visit(ours, default) sees
  // each token line pair. Returns the run's summary line.
  auto rerun_with =
      [&](const std::string& flag, const std::string& value,
          const std::function<void(const nlohmann::json&, const nlohmann::json&)>& visit) {
        CliRun other =
            Chai({"generate", "--model", ModelPath(), "--prompt", c["prompt"].get<std::string>(),
                  "--temperature", "0", "--max-tokens", std::to_string(n), "--ignore-eos", "--json",
                  "--threads", "2", "--chai-config", "none", flag, value});
        EXPECT_EQ(other.status, 0) << other.err;
        std::istringstream in(other.out), in_default(r.out);
        std::string a, b;
        nlohmann::json ja;
        while (std::getline(in, a) && std::getline(in_default, b)) {
          ja = nlohmann::json::parse(a);
          if (!ja.contains("id")) break;
          const nlohmann::json jb = nlohmann::json::parse(b);
          EXPECT_EQ(ja["id"], jb["id"]);
          visit(ja, jb);
        }
        return ja;
      };

  // --activations float (exact weights) reaches the CPU backend: the same
  // greedy tokens, log-probabilities that differ from int16's (the default)
  // in the last digits only.
  double max_diff = 0;
  rerun_with("--activations", "float", [&](const nlohmann::json& ja, const nlohmann::json& jb) {
    max_diff =
        std::max(max_diff, std::fabs(ja["logprob"].get<double>() - jb["logprob"].get<double>()));
  });
  EXPECT_GT(max_diff, 0.0) << "--activations float changed nothing";
  EXPECT_LT(max_diff, 0.05);

  // --kv-cache-dtype f32 reaches the CPU backend: a float32 cache, twice the
  // bytes, the same greedy tokens.
  const nlohmann::json f32_summary =
      rerun_with("--kv-cache-dtype", "f32", [](const nlohmann::json&, const nlohmann::json&) {});
  EXPECT_EQ(f32_summary["chai"]["k_cache_bytes"], cached * 30 * 3 * 64 * 4) << f32_summary;

  // Plain mode prints the same text.
  CliRun plain = Chai({"generate", "--model", ModelPath(), "--prompt",
                       c["prompt"].get<std::string>(), "--temperature", "0", "--max-tokens",
                       std::to_string(n), "--ignore-eos", "--chai-config", "none"});
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, text + "\n");
}

// Without --chai-config the shipped config for the default model turns CHAI
// on; the K bytes follow its per-layer key budgets.
TEST_F(CliModelTest, ShippedChaiConfigIsOnByDefault) {
  const int n = 8;
  CliRun r = Chai({"generate", "--model", ModelPath(), "--prompt",
                   "The quick brown fox jumps over the lazy dog", "--temperature", "0",
                   "--max-tokens", std::to_string(n), "--ignore-eos", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string last = chai::testing::LastLine(r.out);
  const nlohmann::json summary = nlohmann::json::parse(last);
  ASSERT_EQ(summary["chai"]["enabled"], true) << last;
  std::ifstream in(SourceDir() + "/engine/chai/configs/SmolLM2-135M-Instruct.json");
  const nlohmann::json config = nlohmann::json::parse(in);
  int64_t k_heads = 0;
  for (const auto& l : config["layers"]) k_heads += l["k_heads"].get<int64_t>();
  const int64_t cached = summary["usage"]["prompt_tokens"].get<int64_t>() + n - 1;
  EXPECT_EQ(summary["chai"]["k_cache_bytes"], cached * k_heads * 64 * 2);  // fp16
  EXPECT_EQ(summary["chai"]["k_cache_bytes_full"], cached * 30 * 3 * 64 * 2);
  EXPECT_LT(k_heads, 30 * 3);

  // A config of another shape is a one-line error and exit 1.
  const std::string bad = ::testing::TempDir() + "/bad_chai.json";
  std::ofstream(bad) << "{\"format\": \"chai-cluster-config\", \"version\": 1}";
  CliRun e = Chai({"generate", "--model", ModelPath(), "--prompt", "hi", "--chai-config", bad});
  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.err.find("chai generate:"), std::string::npos) << e.err;
}

TEST_F(CliModelTest, SeededSamplingIsReproducible) {
  auto run = [](const std::string& seed) {
    return Chai({"generate", "--model", ModelPath(), "--prompt", "Once upon a time",
                 "--temperature", "1.0", "--top-p", "0.95", "--max-tokens", "16", "--seed", seed,
                 "--ignore-eos"});
  };
  CliRun a = run("7"), b = run("7"), c = run("8");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
}

TEST_F(CliModelTest, PromptPlusMaxTokensOverContextFails) {
  CliRun r = Chai({"generate", "--model", ModelPath(), "--prompt", "hi", "--max-tokens", "9000"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("context"), std::string::npos) << r.err;
}

TEST_F(CliModelTest, ChatModeUsesTemplate) {
  CliRun r = Chai({"generate", "--model", ModelPath(), "--prompt", "Say hello.", "--chat",
                   "--temperature", "0", "--max-tokens", "8", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const size_t end = r.out.find_last_not_of('\n');
  std::string last = r.out.substr(r.out.rfind('\n', end) + 1);
  nlohmann::json summary = nlohmann::json::parse(last);
  // ChatML with the template's default system prompt is far longer than the
  // 4 tokens of the bare prompt.
  EXPECT_GT(summary["usage"]["prompt_tokens"].get<int>(), 20);
}

}  // namespace
