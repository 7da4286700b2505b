// --chai-config resolution (DESIGN.md section 3): absent -> the matching
// shipped config, else plain; "none" -> plain; FILE -> that file, which must
// fit the model's shape.
#include "engine/chai/chai_config_resolve.h"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

const std::string kFpA(64, 'a');
const std::string kFpB(64, 'b');

LlamaConfig Shape(int64_t layers, int64_t heads, int64_t kv) {
  LlamaConfig c;
  c.architecture = "llama";
  c.n_layers = layers;
  c.n_heads = heads;
  c.n_kv_heads = kv;
  c.head_dim = 64;
  c.vocab_size = 1000;
  return c;
}

ChaiConfig Config(const LlamaConfig& m, const std::string& fp, int32_t clusters, int32_t k_heads) {
  ChaiConfig c;
  c.model = ChaiModelIdentity::Of(m, fp);
  c.model.name = "test model";
  c.layers.assign(static_cast<size_t>(m.n_layers), {clusters, k_heads});
  return c;
}

class ResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Shape(4, 8, 4);
    // Two shipped configs of the same shape, told apart by fingerprint, and
    // one of another shape.
    texts_ = {Config(Shape(6, 8, 8), kFpA, 2, 2).ToJson(), Config(model_, kFpB, 3, 2).ToJson(),
              Config(model_, kFpA, 2, 1).ToJson()};
    shipped_ = {{"other-shape.json", texts_[0].c_str()},
                {"model-b.json", texts_[1].c_str()},
                {"model-a.json", texts_[2].c_str()}};
  }
  std::string WriteTemp(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/resolve_", getpid(), "_", name);
    EXPECT_TRUE(WriteFile(path, text));
    paths_.push_back(path);
    return path;
  }
  static bool WriteFile(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return false;
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    return std::fclose(f) == 0 && ok;
  }
  void TearDown() override {
    for (const std::string& p : paths_) std::filesystem::remove(p);
  }

  LlamaConfig model_;
  std::vector<std::string> texts_;
  std::vector<ShippedChaiConfig> shipped_;
  std::vector<std::string> paths_;
};

TEST_F(ResolveTest, AbsentPicksTheShippedConfigWithTheSameFingerprint) {
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig("", model_, kFpA, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->config.has_value());
  EXPECT_EQ(r->source, "shipped:model-a.json");
  EXPECT_EQ(r->config->layers[0].clusters, 2);
  EXPECT_EQ(r->config->layers[0].k_heads, 1);
  EXPECT_TRUE(r->warning.empty());

  r = ResolveChaiConfig("", model_, kFpB, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, "shipped:model-b.json");
  EXPECT_EQ(r->config->layers[0].clusters, 3);

  r = ResolveChaiConfig("auto", model_, kFpB, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->source, "shipped:model-b.json");
}

TEST_F(ResolveTest, AbsentWithoutMatchRunsPlain) {
  // Same shape, unknown weights.
  absl::StatusOr<ResolvedChaiConfig> r =
      ResolveChaiConfig("", model_, std::string(64, 'c'), shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->config.has_value());
  EXPECT_THAT(r->source, HasSubstr("no shipped config matches"));
  // Known fingerprint, other shape.
  r = ResolveChaiConfig("", Shape(4, 8, 2), kFpA, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->config.has_value());
  // Nothing shipped at all.
  r = ResolveChaiConfig("", model_, kFpA, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->config.has_value());
}

TEST_F(ResolveTest, NoneForcesPlainEvenWhenAShippedConfigMatches) {
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig("none", model_, kFpA, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->config.has_value());
  EXPECT_EQ(r->source, "none");
}

TEST_F(ResolveTest, FileIsUsedInsteadOfShipped) {
  const std::string path = WriteTemp("mine.json", Config(model_, kFpA, 4, 2).ToJson());
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig(path, model_, kFpA, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->config.has_value());
  EXPECT_EQ(r->source, "file:" + path);
  EXPECT_EQ(r->config->layers[0].clusters, 4);
  EXPECT_TRUE(r->warning.empty());
}

TEST_F(ResolveTest, FileFromOtherWeightsOfTheSameShapeWarns) {
  const std::string path = WriteTemp("other-weights.json", Config(model_, kFpB, 4, 2).ToJson());
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig(path, model_, kFpA, shipped_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->config.has_value());
  EXPECT_THAT(r->warning, HasSubstr("calibrated on other weights"));
}

TEST_F(ResolveTest, FileOfAnotherShapeIsAnError) {
  const std::string path =
      WriteTemp("wrong-shape.json", Config(Shape(6, 8, 8), kFpA, 2, 2).ToJson());
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig(path, model_, kFpA, shipped_);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("n_layers 6 vs 4"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("n_kv_heads 8 vs 4"));
}

TEST_F(ResolveTest, MissingOrInvalidFileIsAnError) {
  absl::StatusOr<ResolvedChaiConfig> r =
      ResolveChaiConfig("/nonexistent/x.json", model_, kFpA, shipped_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  const std::string path = WriteTemp("garbage.json", "not json");
  r = ResolveChaiConfig(path, model_, kFpA, shipped_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ResolveTest, BrokenShippedConfigIsAnInternalError) {
  std::vector<ShippedChaiConfig> broken = {{"broken.json", "{\"format\": 1}"}};
  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig("", model_, kFpA, broken);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("broken.json"));
}

// The configs compiled into the binary parse, and each is named after its
// file in engine/chai/configs/.
TEST(ShippedConfigsTest, EveryShippedConfigIsValid) {
  for (const ShippedChaiConfig& s : ShippedChaiConfigs()) {
    SCOPED_TRACE(s.file_name);
    absl::StatusOr<ChaiConfig> c = ChaiConfig::FromJson(s.json);
    EXPECT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(std::string(s.file_name).ends_with(".json"));
  }
}

}  // namespace
}  // namespace chai::engine
