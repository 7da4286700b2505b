// ChaiConfig: JSON round trip, plan(), shape matching, and strict rejection
// of hostile files (one test per class of defect).
#include "engine/chai/chai_config.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kFp[] = "2012adc4b457e0b34d55cdce940715d4622d10f8af07fdfdb0528803bf43b97b";

// SmolLM2-135M's shape: 30 layers, 9 heads, 3 KV heads.
ChaiConfig Smol() {
  ChaiConfig c;
  c.model = {"SmolLM2 135M", "llama", 30, 9, 3, 64, 49152, kFp};
  c.calibration = ChaiCalibrationInfo{"c4_sample.jsonl", 64, 128, "kmeans", "chai calibrate 1"};
  for (int l = 0; l < 30; ++l) {
    c.layers.push_back(l < 4 ? ChaiLayerConfig{9, 3} : ChaiLayerConfig{2 + l % 3, 1 + l % 3});
  }
  return c;
}

LlamaConfig SmolShape() {
  LlamaConfig c;
  c.name = "whatever";
  c.architecture = "llama";
  c.n_layers = 30;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.dim = 576;
  return c;
}

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/chai_config_test_", getpid(), "_", name);
}

// The config as JSON, for tests that break one field.
json SmolJson() { return json::parse(Smol().ToJson()); }

void ExpectInvalid(const std::string& text, const std::string& needle) {
  absl::StatusOr<ChaiConfig> c = ChaiConfig::FromJson(text);
  ASSERT_FALSE(c.ok()) << "accepted: " << text.substr(0, 200);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(needle));
}

TEST(ChaiConfigTest, ValidConfigValidates) { EXPECT_TRUE(Smol().Validate().ok()); }

TEST(ChaiConfigTest, JsonRoundTripIsExact) {
  const ChaiConfig c = Smol();
  absl::StatusOr<ChaiConfig> back = ChaiConfig::FromJson(c.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == c);
  EXPECT_EQ(back->ToJson(), c.ToJson());
}

TEST(ChaiConfigTest, RoundTripWithoutCalibrationSection) {
  ChaiConfig c = Smol();
  c.calibration.reset();
  const std::string text = c.ToJson();
  EXPECT_EQ(text.find("calibration"), std::string::npos);
  absl::StatusOr<ChaiConfig> back = ChaiConfig::FromJson(text);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->calibration.has_value());
  EXPECT_TRUE(*back == c);
}

TEST(ChaiConfigTest, SaveAndLoadFile) {
  const std::string path = TempPath("roundtrip.json");
  const ChaiConfig c = Smol();
  ASSERT_TRUE(c.Save(path).ok());
  absl::StatusOr<ChaiConfig> back = ChaiConfig::Load(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == c);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::filesystem::remove(path);
}

TEST(ChaiConfigTest, SaveRefusesInvalidConfig) {
  ChaiConfig c = Smol();
  c.layers.pop_back();
  const std::string path = TempPath("invalid.json");
  EXPECT_EQ(c.Save(path).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(ChaiConfigTest, SaveToMissingDirectoryFails) {
  absl::Status s = Smol().Save("/nonexistent-dir-chai/x.json");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("/nonexistent-dir-chai/x.json"));
}

TEST(ChaiConfigTest, PlanCarriesPerLayerNumbers) {
  const ChaiConfig c = Smol();
  const ChaiPlan p = c.plan();
  ASSERT_EQ(p.clusters.size(), 30u);
  ASSERT_EQ(p.k_heads.size(), 30u);
  for (size_t l = 0; l < 30; ++l) {
    EXPECT_EQ(p.clusters[l], c.layers[l].clusters);
    EXPECT_EQ(p.k_heads[l], c.layers[l].k_heads);
  }
  EXPECT_TRUE(p.enabled());
}

TEST(ChaiConfigTest, ShapeAndFingerprintMatching) {
  const ChaiConfig c = Smol();
  LlamaConfig m = SmolShape();
  EXPECT_TRUE(c.CheckShape(m).ok());
  EXPECT_TRUE(c.Matches(m, kFp));
  EXPECT_FALSE(c.Matches(m, std::string(64, 'a')));  // other weights, same shape
  m.name = "a different display name";               // names are not compared
  EXPECT_TRUE(c.Matches(m, kFp));
  m.n_kv_heads = 9;
  absl::Status s = c.CheckShape(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("n_kv_heads 3 vs 9"));
  EXPECT_FALSE(c.Matches(m, kFp));
  m = SmolShape();
  m.n_layers = 32;
  EXPECT_THAT(std::string(c.CheckShape(m).message()), HasSubstr("n_layers 30 vs 32"));
  m = SmolShape();
  m.architecture = "mistral";
  EXPECT_FALSE(c.CheckShape(m).ok());
}

// ---- hostile files: one test per class ----

TEST(ChaiConfigBadFileTest, NotJson) {
  ExpectInvalid("{\"format\": ", "not valid JSON");
  ExpectInvalid("", "not valid JSON");
  ExpectInvalid("\xff\xfe", "not valid JSON");
}

TEST(ChaiConfigBadFileTest, TopLevelNotAnObject) {
  ExpectInvalid("[1, 2, 3]", "must be a JSON object");
  ExpectInvalid("42", "must be a JSON object");
}

TEST(ChaiConfigBadFileTest, WrongFormatOrVersion) {
  json j = SmolJson();
  j["format"] = "something-else";
  ExpectInvalid(j.dump(), "config.format");
  j = SmolJson();
  j["version"] = 2;
  ExpectInvalid(j.dump(), "config.version");
  j["version"] = "1";
  ExpectInvalid(j.dump(), "config.version: must be an integer");
}

TEST(ChaiConfigBadFileTest, MissingField) {
  json j = SmolJson();
  j["model"].erase("n_heads");
  ExpectInvalid(j.dump(), "model.n_heads: missing");
  j = SmolJson();
  j.erase("layers");
  ExpectInvalid(j.dump(), "config.layers: missing");
  j = SmolJson();
  j["layers"][3].erase("k_heads");
  ExpectInvalid(j.dump(), "layers[3].k_heads: missing");
}

TEST(ChaiConfigBadFileTest, UnknownKey) {
  json j = SmolJson();
  j["model"]["n_experts"] = 8;
  ExpectInvalid(j.dump(), "model.n_experts: unknown key");
  j = SmolJson();
  j["layers"][0]["skip"] = true;
  ExpectInvalid(j.dump(), "layers[0].skip: unknown key");
}

TEST(ChaiConfigBadFileTest, DuplicateKey) {
  std::string text = Smol().ToJson();
  // A second "clusters" in layer 5's object, after the first.
  const std::string needle = "{\"layer\": 5, \"clusters\": ";
  const size_t at = text.find(needle);
  ASSERT_NE(at, std::string::npos);
  text.insert(at + 1, "\"clusters\": 1, ");
  ExpectInvalid(text, "clusters: duplicate key");
}

TEST(ChaiConfigBadFileTest, WrongTypes) {
  json j = SmolJson();
  j["model"]["n_heads"] = "9";
  ExpectInvalid(j.dump(), "model.n_heads: must be an integer");
  j = SmolJson();
  j["model"]["name"] = 7;
  ExpectInvalid(j.dump(), "model.name: must be a string");
  j = SmolJson();
  j["layers"] = json::object();
  ExpectInvalid(j.dump(), "layers: must be an array");
  j = SmolJson();
  j["layers"][2] = json::array({9, 3});
  ExpectInvalid(j.dump(), "layers[2]: must be a JSON object");
  j = SmolJson();
  j["layers"][2]["clusters"] = nullptr;
  ExpectInvalid(j.dump(), "layers[2].clusters: must be an integer");
  j = SmolJson();
  j["calibration"]["samples"] = true;
  ExpectInvalid(j.dump(), "calibration.samples: must be an integer");
}

TEST(ChaiConfigBadFileTest, FractionalAndHugeNumbers) {
  json j = SmolJson();
  j["layers"][1]["clusters"] = 4.5;
  ExpectInvalid(j.dump(), "layers[1].clusters: must be an integer");
  j["layers"][1]["clusters"] = 4.0;  // still a float in JSON
  ExpectInvalid(j.dump(), "layers[1].clusters: must be an integer");
  std::string text = SmolJson().dump();
  text = absl::StrReplaceAll(text, {{"\"vocab_size\":49152", "\"vocab_size\":1e300"}});
  ExpectInvalid(text, "model.vocab_size: must be an integer");
  text = absl::StrReplaceAll(SmolJson().dump(),
                             {{"\"n_layers\":30", "\"n_layers\":18446744073709551615"}});
  ExpectInvalid(text, "model.n_layers");
  text = absl::StrReplaceAll(SmolJson().dump(),
                             {{"\"n_layers\":30", "\"n_layers\":99999999999999999999999"}});
  ExpectInvalid(text, "model.n_layers");
}

TEST(ChaiConfigBadFileTest, CountsOutOfRange) {
  json j = SmolJson();
  j["model"]["n_heads"] = 0;
  ExpectInvalid(j.dump(), "model.n_heads");
  j = SmolJson();
  j["model"]["n_kv_heads"] = -3;
  ExpectInvalid(j.dump(), "model.n_kv_heads");
  j = SmolJson();
  j["model"]["n_kv_heads"] = 4;  // does not divide 9
  ExpectInvalid(j.dump(), "does not divide");
  j = SmolJson();
  j["model"]["head_dim"] = 1 << 20;
  ExpectInvalid(j.dump(), "model.head_dim");
  j = SmolJson();
  j["calibration"]["tokens_per_sample"] = 0;
  ExpectInvalid(j.dump(), "calibration.tokens_per_sample");
}

TEST(ChaiConfigBadFileTest, LayerCountsOutOfRange) {
  json j = SmolJson();
  j["layers"][7]["clusters"] = 0;
  ExpectInvalid(j.dump(), "layers[7].clusters");
  j["layers"][7]["clusters"] = 10;  // > n_heads
  ExpectInvalid(j.dump(), "layers[7].clusters: is 10, must be in [1, n_heads = 9]");
  j = SmolJson();
  j["layers"][7]["k_heads"] = 4;  // > n_kv_heads
  ExpectInvalid(j.dump(), "layers[7].k_heads: is 4, must be in [1, n_kv_heads = 3]");
  j["layers"][7]["k_heads"] = -1;
  ExpectInvalid(j.dump(), "layers[7].k_heads");
}

TEST(ChaiConfigBadFileTest, ClustersNeedEnoughKeyHeads) {
  // 7 clusters need representatives on ceil(7 / 3) = 3 KV heads.
  json j = SmolJson();
  j["layers"][10]["clusters"] = 7;
  j["layers"][10]["k_heads"] = 2;
  ExpectInvalid(j.dump(), "layers[10]: 7 clusters need representatives from at least 3 KV heads");
  // Plain attention (9 clusters) needs all 3 KV heads.
  j["layers"][10]["clusters"] = 9;
  ExpectInvalid(j.dump(), "layers[10]");
  j["layers"][10]["k_heads"] = 3;
  EXPECT_TRUE(ChaiConfig::FromJson(j.dump()).ok());
}

TEST(ChaiConfigBadFileTest, WrongLayerCount) {
  json j = SmolJson();
  j["layers"].erase(j["layers"].size() - 1);
  ExpectInvalid(j.dump(), "layers: has 29 entries, model.n_layers is 30");
  j = SmolJson();
  j["layers"].push_back({{"layer", 30}, {"clusters", 9}, {"k_heads", 3}});
  ExpectInvalid(j.dump(), "layers: has 31 entries");
  j = SmolJson();
  j["model"]["n_layers"] = 2000;
  ExpectInvalid(j.dump(), "model.n_layers");
}

TEST(ChaiConfigBadFileTest, LayerIndicesOutOfOrder) {
  json j = SmolJson();
  std::swap(j["layers"][3], j["layers"][4]);
  ExpectInvalid(j.dump(), "layers[3].layer: is 4, expected 3");
}

TEST(ChaiConfigBadFileTest, BadFingerprintOrStrings) {
  json j = SmolJson();
  j["model"]["fingerprint"] = "abc";
  ExpectInvalid(j.dump(), "model.fingerprint");
  j["model"]["fingerprint"] = std::string(64, 'G');
  ExpectInvalid(j.dump(), "model.fingerprint");
  j["model"]["fingerprint"] = std::string(64, 'A');  // upper case is not the canonical form
  ExpectInvalid(j.dump(), "model.fingerprint");
  j = SmolJson();
  j["model"]["architecture"] = "";
  ExpectInvalid(j.dump(), "model.architecture: must not be empty");
  j = SmolJson();
  j["model"]["name"] = std::string(5000, 'x');
  ExpectInvalid(j.dump(), "model.name: is too long");
}

TEST(ChaiConfigBadFileTest, OversizeFile) {
  std::string text = Smol().ToJson();
  text.insert(1, std::string(kMaxChaiConfigBytes, ' '));
  ExpectInvalid(text, "the limit is");
  const std::string path = TempPath("huge.json");
  {
    std::ofstream out(path);
    out << text;
  }
  absl::StatusOr<ChaiConfig> c = ChaiConfig::Load(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(path));
  std::filesystem::remove(path);
}

TEST(ChaiConfigBadFileTest, LoadMissingFileIsNotFound) {
  absl::StatusOr<ChaiConfig> c = ChaiConfig::Load("/nonexistent/chai.json");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
}

TEST(ChaiConfigBadFileTest, LoadPrefixesPath) {
  const std::string path = TempPath("bad.json");
  {
    std::ofstream out(path);
    out << "{}";
  }
  absl::StatusOr<ChaiConfig> c = ChaiConfig::Load(path);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(path + ": CHAI config: config."));
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace chai::engine
