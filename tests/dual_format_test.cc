// The same tiny LLaMA in GGUF (Q/K permuted for interleaved RoPE, as
// llama.cpp's converter writes it) and in Hugging Face safetensors
// (rotate-half), loaded through LoadModel and run by ModelRunner on the CPU
// backend, against each other and against a float64 numpy reference
// (validated against transformers when the files were made). Files and
// reference: tests/golden/make_tiny_model.py -> tests/golden/tiny_llama/.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/model/hf_config.h"
#include "engine/model/safetensors.h"
#include "engine/model/safetensors_test_util.h"
#include "engine/model_runner.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

namespace fs = std::filesystem;

// DESIGN.md section 3: safetensors vs GGUF of the same weights, float32.
constexpr double kSameWeightsTolerance = 1e-4;
// F16 weights run in float32 against the float64 reference on the same
// F16-rounded weights: the kernels' float32 accumulation (and any F16-specific
// conversion path) is all that differs. Stated looser bound: 1e-3 x max|logit|.
constexpr double kF16Tolerance = 1e-3;

std::string GoldenDir() {
  const char* env = std::getenv("CHAI_SOURCE_DIR");
  return absl::StrCat(env != nullptr ? env : CHAI_SOURCE_DIR, "/tests/golden/tiny_llama");
}

struct Logits {
  std::vector<float> v;  // [rows, vocab], every position of every sequence
  int64_t vocab = 0;
};

class DualFormatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::ifstream in(GoldenDir() + "/golden.json");
    ASSERT_TRUE(in.good()) << "missing " << GoldenDir() << "/golden.json";
    golden_ = new nlohmann::json(nlohmann::json::parse(in));
    // DESIGN.md's 1e-4 bound is for float32 end to end: a float32 KV cache
    // (the CPU default, fp16, rounds keys and values: ~2e-4 here).
    backend_ =
        kernels::CreateCpuBackend({.threads = 2, .kv_dtype = kernels::DType::kF32}).release();
    // The HF Llama-3.1 variant: the f32 weights with llama3_config.json.
    tmp_ = new std::string(absl::StrCat(::testing::TempDir(), "/dual_format_", getpid()));
    fs::remove_all(*tmp_);
    fs::create_directories(*tmp_ + "/hf_llama3");
    for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
      fs::create_symlink(GoldenDir() + "/f32/" + f, *tmp_ + "/hf_llama3/" + f);
    }
    fs::copy_file(GoldenDir() + "/llama3_config.json", *tmp_ + "/hf_llama3/config.json");
  }
  static void TearDownTestSuite() {
    fs::remove_all(*tmp_);
    delete golden_;
    delete backend_;
    delete tmp_;
  }

  static LoadedModel Load(const std::string& path) {
    absl::StatusOr<LoadedModel> m = LoadModel(path);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? *std::move(m) : LoadedModel{};
  }

  // Logits at every position of every golden sequence (one prefill each).
  static Logits Run(const ModelWeights& w) {
    Logits out;
    out.vocab = w.config.vocab_size;
    absl::StatusOr<std::unique_ptr<ModelRunner>> runner = ModelRunner::Create(&w, backend_, 64);
    EXPECT_TRUE(runner.ok()) << runner.status();
    if (!runner.ok()) return out;
    for (const auto& seq : (*golden_)["sequences"]) {
      const std::vector<int32_t> ids = seq["ids"].get<std::vector<int32_t>>();
      const int32_t n = static_cast<int32_t>(ids.size());
      KvCacheOptions o;
      o.block_size = 16;
      o.max_seqs = 1;
      o.max_seq_len = n;
      o.num_blocks = (n + 15) / 16;
      absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(backend_, w.config, o);
      EXPECT_TRUE(cache.ok()) << cache.status();
      EXPECT_TRUE((*cache)->AddSequence().ok());
      EXPECT_TRUE((*cache)->Reserve(0, n).ok());
      std::vector<int32_t> slots(n, 0), pos(n), rows(n);
      std::iota(pos.begin(), pos.end(), 0);
      std::iota(rows.begin(), rows.end(), 0);
      std::vector<float> logits(static_cast<size_t>(n) * out.vocab);
      absl::Status s = (*runner)->Forward({ids, slots, pos, rows}, **cache, logits);
      EXPECT_TRUE(s.ok()) << s;
      out.v.insert(out.v.end(), logits.begin(), logits.end());
    }
    return out;
  }

  static Logits Golden(const std::string& variant) {
    Logits g;
    g.vocab = (*golden_)["config"]["vocab"].get<int64_t>();
    g.v.resize((*golden_)["rows"].get<size_t>() * g.vocab);
    std::ifstream in(absl::StrCat(GoldenDir(), "/logits_", variant, ".bin"), std::ios::binary);
    in.read(reinterpret_cast<char*>(g.v.data()), static_cast<std::streamsize>(g.v.size() * 4));
    EXPECT_TRUE(in.good()) << variant;
    return g;
  }

  // max |a - b| / max |b|, printed with its label.
  static double RelDiff(const char* label, const Logits& a, const Logits& b) {
    EXPECT_EQ(a.v.size(), b.v.size()) << label;
    if (a.v.size() != b.v.size() || b.v.empty()) return INFINITY;
    double max_diff = 0, max_abs = 0;
    for (size_t i = 0; i < a.v.size(); ++i) {
      max_diff = std::max(max_diff, std::fabs(static_cast<double>(a.v[i]) - b.v[i]));
      max_abs = std::max(max_abs, std::fabs(static_cast<double>(b.v[i])));
    }
    std::printf("%-34s max |diff| %.3e, max |logit| %.2f, ratio %.3e\n", label, max_diff, max_abs,
                max_diff / max_abs);
    ::testing::Test::RecordProperty(label, std::to_string(max_diff / max_abs));
    return max_diff / max_abs;
  }

  static nlohmann::json* golden_;
  static kernels::Backend* backend_;
  static std::string* tmp_;
};

nlohmann::json* DualFormatTest::golden_ = nullptr;
kernels::Backend* DualFormatTest::backend_ = nullptr;
std::string* DualFormatTest::tmp_ = nullptr;

TEST_F(DualFormatTest, LoadsBothFormatsWithTheirRopeLayouts) {
  LoadedModel gguf = Load(GoldenDir() + "/tiny_llama.gguf");
  LoadedModel st = Load(GoldenDir() + "/f32");
  ASSERT_NE(gguf.weights, nullptr);
  ASSERT_NE(st.weights, nullptr);
  EXPECT_TRUE(gguf.weights->config.rope_interleaved);
  EXPECT_FALSE(st.weights->config.rope_interleaved);
  for (const LlamaConfig* c : {&gguf.weights->config, &st.weights->config}) {
    EXPECT_EQ(c->dim, 32);
    EXPECT_EQ(c->head_dim, 16);  // explicit: != dim / n_heads
    EXPECT_EQ(c->n_kv_heads, 2);
    EXPECT_TRUE(c->tied_embeddings);
  }
  // The safetensors tokenizer (tokenizer.json) gives the golden ids.
  for (const auto& seq : (*golden_)["sequences"]) {
    const std::vector<int32_t> ids = seq["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = st.tokenizer->Encode(seq["text"].get<std::string>(), true, false);
    got.resize(std::min(got.size(), ids.size()));
    EXPECT_EQ(got, ids) << seq["text"];
    EXPECT_EQ(gguf.tokenizer->Encode(seq["text"].get<std::string>(), true, false),
              st.tokenizer->Encode(seq["text"].get<std::string>(), true, false));
  }
}

TEST_F(DualFormatTest, GgufMatchesF32SafetensorsAndReference) {
  LoadedModel gguf = Load(GoldenDir() + "/tiny_llama.gguf");
  LoadedModel st = Load(GoldenDir() + "/f32");
  ASSERT_NE(gguf.weights, nullptr);
  ASSERT_NE(st.weights, nullptr);
  const Logits a = Run(*gguf.weights), b = Run(*st.weights), ref = Golden("f32");
  EXPECT_LE(RelDiff("gguf vs safetensors f32", a, b), kSameWeightsTolerance);
  EXPECT_LE(RelDiff("gguf vs numpy reference", a, ref), kSameWeightsTolerance);
  EXPECT_LE(RelDiff("safetensors f32 vs numpy reference", b, ref), kSameWeightsTolerance);
}

// The comparison can fail: reading the rotate-half weights as if they were
// permuted for interleaved RoPE changes the logits far beyond the tolerance.
TEST_F(DualFormatTest, WrongRopeLayoutIsDetected) {
  LoadedModel st = Load(GoldenDir() + "/f32");
  ASSERT_NE(st.weights, nullptr);
  st.weights->config.rope_interleaved = true;
  EXPECT_GT(RelDiff("wrong rope layout vs reference", Run(*st.weights), Golden("f32")),
            100 * kSameWeightsTolerance);
}

TEST_F(DualFormatTest, F16ShardedMatchesItsReference) {
  LoadedModel st = Load(GoldenDir() + "/f16_sharded");
  ASSERT_NE(st.weights, nullptr);
  EXPECT_EQ(st.weights->layers[0].wq.dtype, kernels::DType::kF16);
  EXPECT_FALSE(st.weights->config.tied_embeddings);
  EXPECT_NE(st.weights->output.data, st.weights->token_embd.data);
  EXPECT_LE(RelDiff("safetensors f16 sharded vs reference", Run(*st.weights), Golden("f16")),
            kF16Tolerance);
}

// The two shards rewritten as one model.safetensors give bit-identical logits.
TEST_F(DualFormatTest, ShardedEqualsUnsharded) {
  const std::string src = GoldenDir() + "/f16_sharded";
  absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> ckpt = SafetensorsCheckpoint::Open(src);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  ASSERT_EQ((*ckpt)->shards().size(), 2u);
  std::vector<testing::StTensor> all;
  for (const auto& shard : (*ckpt)->shards()) {
    for (const SafetensorsTensor& t : shard->tensors()) {
      all.push_back({t.name, t.dtype, t.shape,
                     std::string(reinterpret_cast<const char*>(t.data), t.end - t.begin)});
    }
  }
  const std::string dir = *tmp_ + "/f16_single";
  fs::create_directories(dir);
  testing::WriteFile(dir + "/model.safetensors", testing::BuildSafetensors(all));
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(src + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  }
  LoadedModel sharded = Load(src);
  LoadedModel single = Load(dir + "/model.safetensors");
  ASSERT_NE(sharded.weights, nullptr);
  ASSERT_NE(single.weights, nullptr);
  const Logits a = Run(*sharded.weights), b = Run(*single.weights);
  ASSERT_EQ(a.v.size(), b.v.size());
  EXPECT_EQ(0, std::memcmp(a.v.data(), b.v.data(), a.v.size() * sizeof(float)));
}

TEST_F(DualFormatTest, Llama31ScalingGgufRopeFreqsMatchesHfRopeScaling) {
  LoadedModel gguf = Load(GoldenDir() + "/tiny_llama_llama3.gguf");
  LoadedModel hf = Load(*tmp_ + "/hf_llama3");
  ASSERT_NE(gguf.weights, nullptr);
  ASSERT_NE(hf.weights, nullptr);
  EXPECT_FALSE(gguf.weights->config.rope_freq_factors.empty());
  EXPECT_GT(hf.weights->config.rope_scaling.factor, 0);
  const Logits a = Run(*gguf.weights), b = Run(*hf.weights), ref = Golden("llama3");
  EXPECT_LE(RelDiff("llama3: gguf vs safetensors", a, b), kSameWeightsTolerance);
  EXPECT_LE(RelDiff("llama3: gguf vs numpy reference", a, ref), kSameWeightsTolerance);
  EXPECT_LE(RelDiff("llama3: safetensors vs reference", b, ref), kSameWeightsTolerance);
  // The scaling matters at these positions, so ignoring it would fail.
  EXPECT_GT(RelDiff("llama3 vs unscaled reference", b, Golden("f32")), 100 * kSameWeightsTolerance);
}

// LlamaConfig::RopeInvFreq for llama3 scaling against transformers' own rope
// init (float32) and the script's float64 port, from both formats' configs.
TEST_F(DualFormatTest, RopeInvFreqMatchesTransformersLlama3) {
  absl::StatusOr<LlamaConfig> hf = LlamaConfigFromHfFile(GoldenDir() + "/llama3_config.json");
  ASSERT_TRUE(hf.ok()) << hf.status();
  LoadedModel gguf = Load(GoldenDir() + "/tiny_llama_llama3.gguf");
  ASSERT_NE(gguf.weights, nullptr);
  const auto tf = (*golden_)["rope_inv_freq_llama3_transformers"].get<std::vector<double>>();
  const auto np = (*golden_)["rope_inv_freq_llama3"].get<std::vector<double>>();
  const auto plain = (*golden_)["rope_inv_freq_default"].get<std::vector<double>>();
  for (const LlamaConfig* c : {&*hf, &gguf.weights->config}) {
    const std::vector<float> got = c->RopeInvFreq();
    ASSERT_EQ(got.size(), tf.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], tf[i], 1e-6 * tf[i]) << "transformers, i = " << i;
      EXPECT_NEAR(got[i], np[i], 1e-6 * np[i]) << "numpy, i = " << i;
    }
    // All three bands occur: kept (i = 0), smoothed (i = 1, 2), divided (i >= 3).
    EXPECT_NEAR(got[0], plain[0], 1e-7);
    EXPECT_LT(got[1], plain[1] * 0.99);
    EXPECT_GT(got[1], plain[1] / 8 * 1.01);
    EXPECT_NEAR(got.back(), plain.back() / 8, 1e-6 * plain.back());
  }
}

}  // namespace
}  // namespace chai::engine
