// Tests for ModelFromSafetensors on small synthetic checkpoints written to a
// temporary directory: zero-copy views, F16/BF16 handling, misaligned data,
// and checkpoints whose tensors contradict config.json.
#include "engine/model/safetensors_model.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/model/safetensors_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu/dequantize.h"

namespace chai::engine {
namespace {

using ::chai::engine::testing::BuildSafetensors;
using ::chai::engine::testing::F32Bytes;
using ::chai::engine::testing::StTensor;
using ::chai::engine::testing::U16Bytes;
using ::chai::engine::testing::WriteFile;
using ::testing::HasSubstr;

// dim 8, 2 query heads and 1 KV head of head_dim 4, ffn 16, vocab 10, 1 layer.
constexpr char kConfig[] = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 8,
  "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
  "num_key_value_heads": 1, "vocab_size": 10, "tie_word_embeddings": false})";

std::vector<float> Ramp(int64_t n, float scale) {
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i % 7) - 3);
  return v;
}

// name -> (shape); every tensor of the synthetic model.
std::map<std::string, std::vector<int64_t>> Shapes() {
  return {{"model.embed_tokens.weight", {10, 8}},
          {"lm_head.weight", {10, 8}},
          {"model.norm.weight", {8}},
          {"model.layers.0.input_layernorm.weight", {8}},
          {"model.layers.0.post_attention_layernorm.weight", {8}},
          {"model.layers.0.self_attn.q_proj.weight", {8, 8}},
          {"model.layers.0.self_attn.k_proj.weight", {4, 8}},
          {"model.layers.0.self_attn.v_proj.weight", {4, 8}},
          {"model.layers.0.self_attn.o_proj.weight", {8, 8}},
          {"model.layers.0.mlp.gate_proj.weight", {16, 8}},
          {"model.layers.0.mlp.up_proj.weight", {16, 8}},
          {"model.layers.0.mlp.down_proj.weight", {8, 16}}};
}

std::vector<StTensor> Tensors(absl::string_view dtype = "F32") {
  std::vector<StTensor> out;
  for (const auto& [name, shape] : Shapes()) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    const std::vector<float> v = Ramp(n, 0.25f);
    std::string bytes = F32Bytes(v);
    if (dtype == "BF16" || dtype == "F16") {
      std::vector<uint16_t> h(n);
      for (int64_t i = 0; i < n; ++i) {
        h[i] = dtype == "BF16" ? kernels::cpu::Fp32ToBf16(v[i]) : kernels::cpu::Fp32ToFp16(v[i]);
      }
      bytes = U16Bytes(h);
    }
    out.push_back({name, std::string(dtype), shape, bytes});
  }
  return out;
}

class SafetensorsModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/st_model_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void Write(const std::vector<StTensor>& tensors, absl::string_view config = kConfig,
             size_t extra_pad = 0) {
    WriteFile(dir_ + "/config.json", config);
    WriteFile(dir_ + "/model.safetensors", BuildSafetensors(tensors, "", 8, extra_pad));
  }
  absl::Status LoadStatus() { return ModelFromSafetensors(dir_).status(); }
  std::string dir_;
};

TEST_F(SafetensorsModelTest, F32WeightsAreViewsOfTheMapping) {
  Write(Tensors());
  absl::StatusOr<std::unique_ptr<ModelWeights>> m = ModelFromSafetensors(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE((*m)->config.rope_interleaved);
  EXPECT_EQ((*m)->config.head_dim, 4);
  EXPECT_EQ((*m)->config.name, std::filesystem::path(dir_).filename().string());
  EXPECT_TRUE((*m)->owned.empty());  // nothing converted
  const auto* ckpt = static_cast<const SafetensorsCheckpoint*>((*m)->sources[0].get());
  EXPECT_EQ((*m)->layers[0].wk.data, ckpt->Find("model.layers.0.self_attn.k_proj.weight")->data);
  EXPECT_EQ((*m)->layers[0].wk.rows, 4);
  EXPECT_EQ((*m)->layers[0].wk.cols, 8);
  EXPECT_EQ((*m)->output.data, ckpt->Find("lm_head.weight")->data);
  EXPECT_EQ((*m)->layers[0].w_down.cols, 16);
  EXPECT_FLOAT_EQ((*m)->output_norm[1], 0.25f * -2);
}

TEST_F(SafetensorsModelTest, AcceptsPathToTheSafetensorsFile) {
  Write(Tensors());
  EXPECT_TRUE(ModelFromSafetensors(dir_ + "/model.safetensors").ok());
}

TEST_F(SafetensorsModelTest, Bf16AndF16MatricesInPlaceNormsConverted) {
  for (const char* dtype : {"BF16", "F16"}) {
    Write(Tensors(dtype));
    absl::StatusOr<std::unique_ptr<ModelWeights>> m = ModelFromSafetensors(dir_);
    ASSERT_TRUE(m.ok()) << m.status();
    const kernels::DType want =
        std::string(dtype) == "BF16" ? kernels::DType::kBF16 : kernels::DType::kF16;
    EXPECT_EQ((*m)->layers[0].wq.dtype, want);
    EXPECT_EQ((*m)->token_embd.dtype, want);
    EXPECT_EQ((*m)->owned.size(), 3u);               // output_norm + two layer norms
    const std::vector<float> ramp = Ramp(8, 0.25f);  // exactly representable
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ((*m)->layers[0].ffn_norm[i], ramp[i]) << dtype << " " << i;
      EXPECT_EQ((*m)->output_norm[i], ramp[i]) << dtype << " " << i;
    }
  }
}

TEST_F(SafetensorsModelTest, MisalignedDataIsCopiedToF32) {
  Write(Tensors("BF16"), kConfig, /*extra_pad=*/1);  // data starts at an odd address
  absl::StatusOr<std::unique_ptr<ModelWeights>> m = ModelFromSafetensors(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->layers[0].wq.dtype, kernels::DType::kF32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*m)->layers[0].wq.data) % alignof(float), 0u);
  const float* q = static_cast<const float*>((*m)->layers[0].wq.data);
  const std::vector<float> ramp = Ramp(64, 0.25f);
  for (int i = 0; i < 64; ++i) EXPECT_EQ(q[i], ramp[i]) << i;
}

TEST_F(SafetensorsModelTest, TiedEmbeddingsNeedNoLmHead) {
  std::vector<StTensor> t = Tensors();
  std::erase_if(t, [](const StTensor& x) { return x.name == "lm_head.weight"; });
  Write(t, absl::StrReplaceAll(kConfig, {{"false", "true"}}));
  absl::StatusOr<std::unique_ptr<ModelWeights>> m = ModelFromSafetensors(dir_);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->output.data, (*m)->token_embd.data);
  Write(t);  // untied: lm_head is required
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("missing tensor lm_head.weight"));
}

TEST_F(SafetensorsModelTest, RejectsShapesContradictingTheConfig) {
  std::vector<StTensor> t = Tensors();
  for (StTensor& x : t) {
    if (x.name == "model.layers.0.self_attn.k_proj.weight") x.shape = {8, 4};
  }
  Write(t);
  const absl::Status s = LoadStatus();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("attn_k has shape [8, 4]"));

  // The config claims more KV heads than the weights have.
  Write(Tensors(), absl::StrReplaceAll(
                       kConfig, {{"\"num_key_value_heads\": 1", "\"num_key_value_heads\": 2"}}));
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("the model config implies"));

  // vocab_size disagrees with the embedding.
  Write(Tensors(), absl::StrReplaceAll(kConfig, {{"\"vocab_size\": 10", "\"vocab_size\": 11"}}));
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("token_embd"));
}

TEST_F(SafetensorsModelTest, RejectsLayerCountContradictions) {
  Write(Tensors(),
        absl::StrReplaceAll(kConfig, {{"\"num_hidden_layers\": 1", "\"num_hidden_layers\": 2"}}));
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("missing tensor model.layers.1."));
  std::vector<StTensor> t = Tensors();
  t.push_back({"model.layers.1.mlp.up_proj.weight", "F32", {16, 8}, F32Bytes(Ramp(128, 1))});
  Write(t);
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("does not belong to any"));
}

TEST_F(SafetensorsModelTest, RejectsBadTensorKinds) {
  std::vector<StTensor> t = Tensors();
  for (StTensor& x : t) {
    if (x.name == "model.layers.0.mlp.up_proj.weight") {
      x.dtype = "I32";  // same byte size as F32, so the container is valid
    }
  }
  Write(t);
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("has dtype I32"));

  t = Tensors();
  for (StTensor& x : t) {
    if (x.name == "model.norm.weight") x.shape = {2, 4};
  }
  Write(t);
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("should be a vector of 8"));

  t = Tensors();
  for (StTensor& x : t) {
    if (x.name == "model.layers.0.self_attn.q_proj.weight") x.shape = {64};
  }
  Write(t);
  EXPECT_THAT(std::string(LoadStatus().message()), HasSubstr("has 1 dims, expected 2"));
}

TEST_F(SafetensorsModelTest, ReportsMissingConfigAndWeights) {
  WriteFile(dir_ + "/model.safetensors", BuildSafetensors(Tensors()));
  EXPECT_EQ(LoadStatus().code(), absl::StatusCode::kNotFound);
  std::filesystem::remove(dir_ + "/model.safetensors");
  WriteFile(dir_ + "/config.json", kConfig);
  EXPECT_EQ(LoadStatus().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chai::engine
