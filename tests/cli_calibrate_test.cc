// `chai calibrate` as a user runs it: usage errors exit 2 with one line,
// runtime errors exit 1 with one line, and a run on the tiny LLaMA writes a
// valid config for that model plus the CSV and SVG beside it.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/chai/chai_config.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/cli_runner.h"
#include "tests/testing/golden.h"

namespace {

namespace fs = std::filesystem;

using chai::testing::CliRun;
using chai::testing::ReadFile;

CliRun Calibrate(std::vector<std::string> args) {
  args.insert(args.begin(), "calibrate");
  return chai::testing::RunCli(CHAI_BINARY, args);
}

int Lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

std::string TinyModel() {
  return chai::testing::SourceDir() + "/tests/golden/tiny_llama/tiny_llama.gguf";
}

class CliCalibrateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/cli_calibrate_", getpid());
    fs::create_directories(dir_);
    data_ = dir_ + "/calib.jsonl";
    std::ofstream out(data_);
    for (int d = 0; d < 8; ++d) {
      std::string text;
      for (int w = 0; w < 50; ++w) absl::StrAppend(&text, "word", (d * 13 + w * 7) % 31, " and ");
      out << nlohmann::json{{"text", text}}.dump() << "\n";
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_, data_;
};

TEST_F(CliCalibrateTest, Help) {
  CliRun r = Calibrate({"--help"});
  EXPECT_EQ(r.status, 0);
  for (const char* flag : {"--model", "--data", "--out", "--samples", "--tokens", "--threads"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST_F(CliCalibrateTest, BadCommandLinesExit2WithOneLine) {
  const std::string out = dir_ + "/x.json";
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"--model", TinyModel(), "--data", data_},  // no --out
      {"--model", TinyModel(), "--out", out},     // no --data
      {"--model", TinyModel(), "--data", data_, "--out", out, "--samples", "0"},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--samples", "many"},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--tokens", "1"},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--threads", "-1"},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--frobnicate"},
  };
  for (const auto& args : cases) {
    CliRun r = Calibrate(args);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(CliCalibrateTest, RuntimeErrorsExit1WithOneLine) {
  const std::string out = dir_ + "/x.json";
  // Missing model, missing data, and (twice) too few documents that long.
  const std::vector<std::vector<std::string>> cases = {
      {"--model", dir_ + "/none.gguf", "--data", data_, "--out", out},
      {"--model", TinyModel(), "--data", dir_ + "/none.jsonl", "--out", out},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--samples", "50", "--tokens", "16"},
      {"--model", TinyModel(), "--data", data_, "--out", out, "--samples", "1", "--tokens", "4000"},
  };
  for (const auto& args : cases) {
    CliRun r = Calibrate(args);
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(Lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST_F(CliCalibrateTest, WritesConfigCsvAndSvg) {
  const std::string out = dir_ + "/tiny.json";
  CliRun r = Calibrate({"--model", TinyModel(), "--data", data_, "--out", out, "--samples", "3",
                        "--tokens", "32", "--threads", "2"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("3/3 samples"), std::string::npos) << r.err;

  absl::StatusOr<chai::engine::ChaiConfig> c = chai::engine::ChaiConfig::Load(out);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.n_layers, 2);
  EXPECT_EQ(c->model.n_heads, 4);
  EXPECT_EQ(c->model.n_kv_heads, 2);
  EXPECT_EQ(c->model.fingerprint,
            chai::testing::LoadGoldenJson("chai/calib_golden.json")["tiny_llama_fingerprint"]
                .get<std::string>());
  ASSERT_TRUE(c->calibration.has_value());
  EXPECT_EQ(c->calibration->data, "calib.jsonl");
  EXPECT_EQ(c->calibration->samples, 3);
  EXPECT_EQ(c->calibration->tokens_per_sample, 32);

  const std::string csv = ReadFile(dir_ + "/tiny.csv");
  EXPECT_EQ(csv.rfind("layer,curve,k,error,normalized,chosen\n", 0), 0u);
  EXPECT_EQ(Lines(csv), 1 + 2 * (4 + 2));
  const std::string svg = ReadFile(dir_ + "/tiny.svg");
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find(absl::StrCat("L1: k=", c->layers[1].clusters)), std::string::npos);
}

// --kl-budget: with room for anything, every layer whose knee allows a K
// saving takes the most saving candidate (G = 2 here: k = 2 s); with a zero
// budget nothing is admitted. The knee run fixes what "allows" means.
TEST_F(CliCalibrateTest, KlBudgetGatesTheKneeChoices) {
  const std::vector<std::string> common = {"--model",        TinyModel(), "--data",   data_,
                                           "--samples",      "3",         "--tokens", "32",
                                           "--min-strength", "0"};
  auto run = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.push_back("--out");
    args.push_back(dir_ + "/" + name + ".json");
    args.insert(args.end(), extra.begin(), extra.end());
    CliRun r = Calibrate(args);
    EXPECT_EQ(r.status, 0) << r.err;
    absl::StatusOr<chai::engine::ChaiConfig> c =
        chai::engine::ChaiConfig::Load(dir_ + "/" + name + ".json");
    EXPECT_TRUE(c.ok()) << c.status();
    return std::make_pair(r, c.ok() ? *c : chai::engine::ChaiConfig{});
  };
  const auto [knee_run, knee] = run("knee", {});
  const auto [open_run, open] =
      run("open", {"--kl-budget", "100", "--kl-samples", "2", "--kl-tokens", "32"});
  const auto [shut_run, shut] =
      run("shut", {"--kl-budget", "0", "--kl-samples", "2", "--kl-tokens", "32"});
  ASSERT_EQ(knee.layers.size(), 2u);
  ASSERT_EQ(open.layers.size(), 2u);
  ASSERT_EQ(shut.layers.size(), 2u);
  int saving_layers = 0;
  for (size_t l = 0; l < 2; ++l) {
    const int32_t s0 = (knee.layers[l].clusters + 1) / 2;
    const bool can_save = knee.layers[l].clusters < 4 && s0 < 2;
    saving_layers += can_save;
    EXPECT_EQ(open.layers[l].clusters, can_save ? 2 * s0 : 4) << l;
    EXPECT_EQ(open.layers[l].k_heads, can_save ? s0 : 2) << l;
    EXPECT_EQ(shut.layers[l].clusters, 4) << l;
    EXPECT_EQ(shut.layers[l].k_heads, 2) << l;
  }
  ASSERT_GT(saving_layers, 0) << "the knee left nothing to gate; the test proves nothing";
  EXPECT_NE(open_run.err.find("admitted"), std::string::npos) << open_run.err;
  EXPECT_NE(shut_run.err.find("over budget"), std::string::npos) << shut_run.err;
  ASSERT_TRUE(shut.calibration.has_value());
  EXPECT_NE(shut.calibration->method.find("KL gate"), std::string::npos);
  // The default CPU numerics are recorded with the config.
  EXPECT_NE(shut.calibration->method.find("CPU activations int16"), std::string::npos)
      << shut.calibration->method;
}

}  // namespace
