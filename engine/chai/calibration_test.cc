// Calibration: the per-layer choice rule, the data reader, and an end-to-end
// run on the tiny random LLaMA (tests/golden/tiny_llama/) whose config,
// CSV and SVG are checked for consistency.
#include "engine/chai/calibration.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/chai/calibration_data.h"
#include "engine/chai/calibration_report.h"
#include "engine/chai/model_fingerprint.h"
#include "engine/loaded_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/calibration_test_", getpid(), "_", name);
}

std::string WriteJsonl(const std::string& name, const std::vector<std::string>& texts) {
  const std::string path = TempPath(name);
  std::ofstream out(path);
  for (const std::string& t : texts)
    out << nlohmann::json{{"text", t}, {"url", "x"}}.dump() << "\n";
  return path;
}

std::vector<std::string> Texts(int n) {
  static const char* kWords[] = {"river", "stone",  "the",   "light",   "7",
                                 "cat",   "market", "blue",  "quietly", "2024",
                                 "and",   "north",  "paper", "we'll",   "sing"};
  std::vector<std::string> out;
  for (int d = 0; d < n; ++d) {
    std::string t;
    for (int w = 0; w < 60; ++w) absl::StrAppend(&t, kWords[(d * 7 + w * (d + 3)) % 15], " ");
    out.push_back(t);
  }
  return out;
}

// ---- ChooseLayer ----

TEST(ChooseLayerTest, KvBudgetIsClampedToWhatTheClustersNeed) {
  const std::vector<double> heads_knee3 = {100, 50, 5, 4, 3, 2, 1, 0.5, 0};
  const std::vector<double> groups_knee2 = {1, 0.001, 0};  // knee at 2
  absl::StatusOr<LayerCalibration> r = ChooseLayer(heads_knee3, {1, 0.1, 0}, 9, 3, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->clusters, 3);
  EXPECT_EQ(r->group_knee.k, 2);
  EXPECT_EQ(r->k_heads, 2);  // in [ceil(3/3), min(3, 3)]
  // Groups want 3 but 2 clusters can use at most 2 KV heads.
  r = ChooseLayer({10, 1, 0.8, 0.5, 0.2, 0.1, 0.05, 0.01, 0}, {1, 0.5, 0}, 9, 3, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->clusters, 2);
  EXPECT_EQ(r->group_knee.k, 3);
  EXPECT_EQ(r->k_heads, 2);
  // No knee over heads: plain attention needs every KV head.
  r = ChooseLayer({8, 7, 6, 5, 4, 3, 2, 1, 0}, groups_knee2, 9, 3, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->clusters, 9);
  EXPECT_EQ(r->k_heads, 3);
}

TEST(ChooseLayerTest, MultiHeadAttentionKeepsOneKeyHeadPerCluster) {
  const std::vector<double> c = {100, 50, 5, 4, 3, 2, 1, 0.5, 0};
  absl::StatusOr<LayerCalibration> r = ChooseLayer(c, c, 9, 9, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->clusters, 3);
  EXPECT_EQ(r->k_heads, 3);
}

TEST(ChooseLayerTest, RejectsMismatchedCurves) {
  EXPECT_FALSE(ChooseLayer({1, 0}, {1, 0}, 9, 3, {}).ok());
  EXPECT_FALSE(ChooseLayer({1, 0.5, 0}, {1, 0}, 3, 2, {}).ok());
}

// ---- data ----

class CalibrationModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LoadedModel> m =
        LoadModel(chai::testing::SourceDir() + "/tests/golden/tiny_llama/tiny_llama.gguf");
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LoadedModel(*std::move(m));
    backend_ = kernels::CreateCpuBackend({.threads = 2}).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete backend_;
  }
  static LoadedModel* model_;
  static kernels::Backend* backend_;
};
LoadedModel* CalibrationModelTest::model_ = nullptr;
kernels::Backend* CalibrationModelTest::backend_ = nullptr;

TEST_F(CalibrationModelTest, DataTakesLongEnoughRecordsInOrder) {
  std::vector<std::string> texts = Texts(4);
  texts.insert(texts.begin() + 1, "short");
  const std::string path = WriteJsonl("data.jsonl", texts);
  absl::StatusOr<CalibrationData> d = LoadCalibrationData(path, *model_->tokenizer, 3, 20);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->samples.size(), 3u);
  EXPECT_EQ(d->records_read, 4);  // stops after the third long record
  EXPECT_EQ(d->records_skipped, 1);
  const Tokenizer& tok = *model_->tokenizer;
  std::vector<int32_t> want;
  if (tok.add_bos()) want.push_back(tok.bos_id());
  const std::vector<int32_t> body = tok.Encode(texts[2], false, false);
  want.insert(want.end(), body.begin(), body.end());
  want.resize(20);
  EXPECT_EQ(d->samples[1], want);  // texts[2] is the second long record
  for (const auto& s : d->samples) EXPECT_EQ(s.size(), 20u);
  std::filesystem::remove(path);
}

TEST_F(CalibrationModelTest, DataErrorsAreClear) {
  const Tokenizer& tok = *model_->tokenizer;
  EXPECT_EQ(LoadCalibrationData("/nonexistent.jsonl", tok, 1, 8).status().code(),
            absl::StatusCode::kNotFound);
  const std::string path = TempPath("bad.jsonl");
  {
    std::ofstream out(path);
    out << nlohmann::json{{"text", Texts(1)[0]}}.dump() << "\n\n{\"text\": 5}\n";
  }
  absl::StatusOr<CalibrationData> d = LoadCalibrationData(path, tok, 2, 8);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(path + ":3:"));
  {
    std::ofstream out(path);
    out << "plain text, not JSON\n";
  }
  d = LoadCalibrationData(path, tok, 1, 8);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr(":1: not a JSON object"));
  const std::string few = WriteJsonl("few.jsonl", Texts(2));
  d = LoadCalibrationData(few, tok, 5, 8);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("has only 2 records"));
  EXPECT_FALSE(LoadCalibrationData(few, tok, 0, 8).ok());
  std::filesystem::remove(path);
  std::filesystem::remove(few);
}

// ---- end to end ----

// Minimal XML well-formedness: every tag closed in order, one root <svg>.
bool BalancedXml(const std::string& s, std::string* error) {
  std::vector<std::string> stack;
  size_t i = 0;
  int roots = 0;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return *error = "unterminated tag", false;
    const std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?") || tag.starts_with("!")) continue;
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1))
        return *error = "mismatched " + tag, false;
      stack.pop_back();
      continue;
    }
    if (tag.find('<') != std::string::npos) return *error = "'<' inside a tag", false;
    const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
    if (stack.empty()) ++roots;
    if (!tag.ends_with("/")) stack.push_back(name);
  }
  if (!stack.empty()) return *error = "unclosed " + stack.back(), false;
  if (roots != 1) return *error = "not one root element", false;
  return true;
}

size_t Count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t at = s.find(needle); at != std::string::npos; at = s.find(needle, at + 1)) ++n;
  return n;
}

TEST_F(CalibrationModelTest, EndToEndOnTinyModel) {
  const ModelWeights& w = *model_->weights;
  const std::string path = WriteJsonl("e2e.jsonl", Texts(6));
  absl::StatusOr<CalibrationData> d = LoadCalibrationData(path, *model_->tokenizer, 4, 24);
  ASSERT_TRUE(d.ok()) << d.status();
  CalibrationOptions opt;
  opt.samples = 4;
  opt.tokens = 24;
  opt.threads = 2;
  std::vector<int32_t> progress;
  absl::StatusOr<CalibrationResult> r =
      Calibrate(w, *backend_, d->samples, "e2e.jsonl", opt, [&](int32_t done, int32_t total) {
        EXPECT_EQ(total, 4);
        progress.push_back(done);
      });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(progress, (std::vector<int32_t>{1, 2, 3, 4}));

  // The config: valid, for exactly this model, provenance recorded.
  const ChaiConfig& c = r->config;
  ASSERT_TRUE(c.Validate().ok()) << c.Validate();
  absl::StatusOr<std::string> fp = ModelFingerprint(w);
  ASSERT_TRUE(fp.ok());
  EXPECT_TRUE(c.Matches(w.config, *fp));
  ASSERT_TRUE(c.calibration.has_value());
  EXPECT_EQ(c.calibration->data, "e2e.jsonl");
  EXPECT_EQ(c.calibration->samples, 4);
  EXPECT_EQ(c.calibration->tokens_per_sample, 24);
  EXPECT_EQ(c.calibration->tool, kCalibrationTool);

  // Curves: k = 1..H and 1..KV, zero error with one cluster per point,
  // non-increasing, knees within range and equal to the config.
  const int32_t h = static_cast<int32_t>(w.config.n_heads);
  const int32_t kv = static_cast<int32_t>(w.config.n_kv_heads);
  ASSERT_EQ(r->layers.size(), static_cast<size_t>(w.config.n_layers));
  for (size_t l = 0; l < r->layers.size(); ++l) {
    SCOPED_TRACE(l);
    const LayerCalibration& lc = r->layers[l];
    ASSERT_EQ(lc.head_error.size(), static_cast<size_t>(h));
    ASSERT_EQ(lc.group_error.size(), static_cast<size_t>(kv));
    EXPECT_GT(lc.head_error[0], 0.0);  // random heads do differ
    EXPECT_EQ(lc.head_error.back(), 0.0);
    EXPECT_EQ(lc.group_error.back(), 0.0);
    for (size_t k = 1; k < lc.head_error.size(); ++k) {
      EXPECT_LE(lc.head_error[k], lc.head_error[k - 1] * (1 + 1e-12));
    }
    // One cluster of all KV groups (member m of every group around its own
    // mean) is a finer partition than one cluster of all heads: never more.
    EXPECT_LE(lc.group_error[0], lc.head_error[0] * (1 + 1e-12));
    EXPECT_GE(lc.clusters, 1);
    EXPECT_LE(lc.clusters, h);
    EXPECT_GE(lc.k_heads, 1);
    EXPECT_LE(lc.k_heads, kv);
    EXPECT_EQ(c.layers[l].clusters, lc.clusters);
    EXPECT_EQ(c.layers[l].k_heads, lc.k_heads);
  }

  // Deterministic: a second run gives the same curves.
  absl::StatusOr<CalibrationResult> again = Calibrate(w, *backend_, d->samples, "e2e.jsonl", opt);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->layers[1].head_error, r->layers[1].head_error);
  EXPECT_TRUE(again->config == r->config);

  // CSV: header + one row per curve point; exactly the chosen k marked.
  const std::string csv = CalibrationCsv(*r);
  std::vector<std::string> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1 + r->layers.size() * static_cast<size_t>(h + kv));
  EXPECT_EQ(lines[0], "layer,curve,k,error,normalized,chosen");
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ',');
    ASSERT_EQ(f.size(), 6u) << lines[i];
    const int layer = std::stoi(f[0]), k = std::stoi(f[2]);
    const double err = std::stod(f[3]), norm = std::stod(f[4]);
    const bool chosen = f[5] == "1";
    ASSERT_TRUE(f[1] == "heads" || f[1] == "kv_groups") << lines[i];
    const LayerCalibration& lc = r->layers[static_cast<size_t>(layer)];
    const bool heads = f[1] == "heads";
    const std::vector<double>& curve = heads ? lc.head_error : lc.group_error;
    EXPECT_NEAR(err, curve[static_cast<size_t>(k - 1)], 1e-8 * (1 + curve[0]));
    EXPECT_GE(norm, 0.0);
    EXPECT_LE(norm, 1.0);
    EXPECT_EQ(chosen, k == (heads ? lc.clusters : lc.k_heads)) << lines[i];
  }

  // SVG: well formed, one panel and one knee marker per layer.
  const std::string svg = CalibrationSvg(*r);
  std::string error;
  EXPECT_TRUE(BalancedXml(svg, &error)) << error;
  EXPECT_TRUE(svg.starts_with("<?xml"));
  EXPECT_EQ(Count(svg, "<g class=\"layer\""), r->layers.size());
  EXPECT_EQ(Count(svg, "<circle class=\"knee\""), r->layers.size());
  EXPECT_THAT(svg,
              HasSubstr(absl::StrCat("L0: k=", c.layers[0].clusters, " s=", c.layers[0].k_heads)));
  std::filesystem::remove(path);
}

TEST_F(CalibrationModelTest, RejectsBadRequests) {
  const ModelWeights& w = *model_->weights;
  CalibrationOptions opt;
  opt.samples = 1;
  opt.tokens = 8;
  std::vector<std::vector<int32_t>> samples = {std::vector<int32_t>(8, 1)};
  EXPECT_TRUE(Calibrate(w, *backend_, samples, "x", opt).ok());
  samples[0].pop_back();
  EXPECT_EQ(Calibrate(w, *backend_, samples, "x", opt).status().code(),
            absl::StatusCode::kInvalidArgument);
  samples = {std::vector<int32_t>(8, 1), std::vector<int32_t>(8, 1)};
  EXPECT_FALSE(Calibrate(w, *backend_, samples, "x", opt).ok());  // 2 samples, options say 1
  opt.samples = 1;
  opt.tokens = static_cast<int32_t>(w.config.context_length) + 1;
  samples = {std::vector<int32_t>(static_cast<size_t>(opt.tokens), 1)};
  EXPECT_THAT(std::string(Calibrate(w, *backend_, samples, "x", opt).status().message()),
              HasSubstr("exceed the model's context"));
  opt.tokens = 8;
  samples = {std::vector<int32_t>(8, static_cast<int32_t>(w.config.vocab_size))};
  EXPECT_FALSE(Calibrate(w, *backend_, samples, "x", opt).ok());  // token outside the vocab
  opt.threads = 0;
  EXPECT_FALSE(Calibrate(w, *backend_, {std::vector<int32_t>(8, 1)}, "x", opt).ok());
}

}  // namespace
}  // namespace chai::engine
