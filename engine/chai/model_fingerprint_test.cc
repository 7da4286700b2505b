// SHA-256 against hashlib, and the model fingerprint against numpy/gguf-py
// (tests/golden/make_calib_golden.py): the same weights in GGUF and
// safetensors share a fingerprint, other weights of the same shape do not.
#include "engine/chai/model_fingerprint.h"

#include <filesystem>
#include <string>

#include "engine/chai/chai_config_resolve.h"
#include "engine/chai/sha256.h"
#include "engine/loaded_model.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

nlohmann::json Golden() { return chai::testing::LoadGoldenJson("chai/calib_golden.json"); }

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) % 256);
  return s;
}

std::string Tiny(const std::string& rel) {
  return chai::testing::SourceDir() + "/tests/golden/tiny_llama/" + rel;
}

std::string FingerprintOf(const std::string& path) {
  absl::StatusOr<LoadedModel> m = LoadModel(path);
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return "";
  absl::StatusOr<std::string> fp = ModelFingerprint(*m->weights);
  EXPECT_TRUE(fp.ok()) << fp.status();
  return fp.ok() ? *fp : "";
}

TEST(Sha256Test, MatchesHashlibAtPaddingBoundaries) {
  const nlohmann::json g = Golden();
  ASSERT_GE(g["sha256"].size(), 5u);
  for (const nlohmann::json& v : g["sha256"]) {
    const size_t n = v["length"].get<size_t>();
    EXPECT_EQ(Sha256::HexDigest(Pattern(n)), v["hex"].get<std::string>()) << "length " << n;
  }
  EXPECT_EQ(Sha256::HexDigest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalUpdatesEqualOneShot) {
  const std::string data = Pattern(1000);
  for (size_t split : {size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{500}}) {
    Sha256 s;
    for (size_t at = 0; at < data.size(); at += split) {
      s.Update(absl::string_view(data).substr(at, split));
    }
    EXPECT_EQ(Sha256::ToHex(s.Finish()), Sha256::HexDigest(data)) << "split " << split;
  }
}

TEST(ModelFingerprintTest, GgufAndSafetensorsOfTheSameWeightsAgreeWithReference) {
  const std::string want = Golden()["tiny_llama_fingerprint"].get<std::string>();
  EXPECT_EQ(FingerprintOf(Tiny("tiny_llama.gguf")), want);
  EXPECT_EQ(FingerprintOf(Tiny("f32")), want);
}

TEST(ModelFingerprintTest, OtherWeightsOfTheSameShapeDiffer) {
  // F16-rounded weights with an untied lm_head: same shape, other values.
  const std::string f16 = FingerprintOf(Tiny("f16_sharded"));
  ASSERT_EQ(f16.size(), 64u);
  EXPECT_NE(f16, Golden()["tiny_llama_fingerprint"].get<std::string>());
}

TEST(ModelFingerprintTest, RejectsWeightsWithoutLayers) {
  ModelWeights w;
  w.config.dim = 4;
  w.config.vocab_size = 4;
  EXPECT_EQ(ModelFingerprint(w).status().code(), absl::StatusCode::kInvalidArgument);
}

// The default model: its fingerprint matches gguf-py's, and the shipped
// config is chosen for it when --chai-config is absent.
TEST(ModelFingerprintTest, DefaultModelAndItsShippedConfig) {
  const std::string path = chai::testing::DefaultModelPath();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "default model missing: run deploy/setup.sh";
  const nlohmann::json g = Golden();
  ASSERT_TRUE(g.contains("default_model_fingerprint"));
  absl::StatusOr<LoadedModel> m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<std::string> fp = ModelFingerprint(*m->weights);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(*fp, g["default_model_fingerprint"].get<std::string>());

  absl::StatusOr<ResolvedChaiConfig> r = ResolveChaiConfig("", m->weights->config, *fp);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->config.has_value()) << "no shipped config for the default model";
  EXPECT_EQ(r->source, "shipped:SmolLM2-135M-Instruct.json");
  EXPECT_EQ(r->config->layers.size(), 30u);
}

}  // namespace
}  // namespace chai::engine
