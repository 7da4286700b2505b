// Tests for config.json -> LlamaConfig: defaults, RoPE scaling spellings, and
// one test per malformed class (missing fields, wrong types, bad values,
// unsupported features).
#include "engine/model/hf_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

// A minimal valid LlamaForCausalLM config; tests splice fields in with With().
constexpr char kBase[] = R"({
  "architectures": ["LlamaForCausalLM"],
  "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
  "num_attention_heads": 4, "vocab_size": 100 $EXTRA
})";

std::string With(absl::string_view extra) {
  return absl::StrReplaceAll(kBase, {{"$EXTRA", extra.empty() ? "" : absl::StrCat(", ", extra)}});
}

std::string Without(absl::string_view field) {
  std::string s = With("");
  const size_t at = s.find(absl::StrCat("\"", field, "\""));
  const size_t comma = s.find_first_of(",}", at);
  s.erase(at, comma - at + (s[comma] == ',' ? 1 : 0));
  // The last field leaves a dangling comma before '}'.
  const size_t close = s.rfind('}');
  const size_t last = s.find_last_not_of(" \n", close - 1);
  if (s[last] == ',') s.erase(last, 1);
  return s;
}

void ExpectError(absl::string_view json, absl::StatusCode code, absl::string_view substr) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(json);
  ASSERT_FALSE(c.ok()) << json;
  EXPECT_EQ(c.status().code(), code) << c.status();
  EXPECT_THAT(std::string(c.status().message()), HasSubstr(std::string(substr))) << c.status();
}

void ExpectInvalid(absl::string_view json, absl::string_view substr) {
  ExpectError(json, absl::StatusCode::kInvalidArgument, substr);
}

TEST(HfConfigTest, ReadsFieldsWithHuggingFaceDefaults) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(With(""));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->dim, 64);
  EXPECT_EQ(c->ffn_dim, 128);
  EXPECT_EQ(c->n_layers, 2);
  EXPECT_EQ(c->n_heads, 4);
  EXPECT_EQ(c->n_kv_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->vocab_size, 100);
  EXPECT_EQ(c->context_length, 2048);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->tied_embeddings);
  EXPECT_FALSE(c->rope_interleaved);
  EXPECT_EQ(c->rope_scaling.factor, 0.0);
  EXPECT_EQ(c->rope_linear_factor, 0.0);
}

TEST(HfConfigTest, ReadsOptionalFields) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(With(
      R"("num_key_value_heads": 2, "head_dim": 32, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
         "max_position_embeddings": 4096, "tie_word_embeddings": true, "rope_scaling": null,
         "_name_or_path": "org/model", "hidden_act": "silu", "attention_bias": false)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_DOUBLE_EQ(c->rms_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->context_length, 4096);
  EXPECT_TRUE(c->tied_embeddings);
  EXPECT_EQ(c->name, "org/model");
}

TEST(HfConfigTest, ReadsLlama3AndLinearRopeScaling) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(With(
      R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position, 8192);

  c = LlamaConfigFromHfJson(With(R"("rope_scaling": {"type": "linear", "factor": 2})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_linear_factor, 2.0);
  EXPECT_EQ(c->rope_scaling.factor, 0.0);

  c = LlamaConfigFromHfJson(With(R"("rope_scaling": {"rope_type": "default"})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.factor, 0.0);
}

TEST(HfConfigTest, ReadsTransformersV5RopeParameters) {
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(With(
      R"("rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
         "original_max_position_embeddings": 8192})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 32.0);
}

TEST(HfConfigTest, AcceptsMistralAndCapsContextAtSlidingWindow) {
  std::string json = absl::StrReplaceAll(
      With(R"("max_position_embeddings": 32768, "sliding_window": 4096, "num_key_value_heads": 1)"),
      {{"LlamaForCausalLM", "MistralForCausalLM"}});
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_length, 4096);
  c = LlamaConfigFromHfJson(With(R"("sliding_window": null)"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->context_length, 2048);
}

TEST(HfConfigTest, AcceptsModelTypeWithoutArchitectures) {
  std::string json = absl::StrReplaceAll(
      With(""), {{R"("architectures": ["LlamaForCausalLM"],)", R"("model_type": "llama",)"}});
  EXPECT_TRUE(LlamaConfigFromHfJson(json).ok());
}

TEST(HfConfigTest, RejectsNonJson) {
  ExpectInvalid("{", "not valid JSON");
  ExpectInvalid("[1]", "not a JSON object");
}

TEST(HfConfigTest, RejectsMissingRequiredFields) {
  for (const char* f : {"hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "vocab_size"}) {
    ExpectInvalid(Without(f), absl::StrCat("missing required field ", f));
  }
}

TEST(HfConfigTest, RejectsWrongTypes) {
  ExpectInvalid(absl::StrReplaceAll(With(""), {{"\"hidden_size\": 64", "\"hidden_size\": \"64\""}}),
                "hidden_size must be an integer");
  ExpectInvalid(absl::StrReplaceAll(
                    With(""), {{"\"num_attention_heads\": 4", "\"num_attention_heads\": 4.5"}}),
                "num_attention_heads must be an integer");
  ExpectInvalid(With(R"("num_key_value_heads": [2])"), "num_key_value_heads must be an integer");
  ExpectInvalid(With(R"("rms_norm_eps": "1e-5")"), "rms_norm_eps must be a number");
  ExpectInvalid(With(R"("rope_theta": true)"), "rope_theta must be a number");
  ExpectInvalid(With(R"("tie_word_embeddings": "yes")"), "tie_word_embeddings must be true");
  ExpectInvalid(With(R"("max_position_embeddings": 1e4)"), "must be an integer");
  ExpectInvalid(With(R"("rope_scaling": "llama3")"), "rope_scaling must be an object");
  ExpectInvalid(With(R"("rope_scaling": {"rope_type": 3})"), "rope_type must be a string");
  ExpectInvalid(With(R"("hidden_act": 1)"), "hidden_act must be a string");
  ExpectInvalid(absl::StrReplaceAll(With(""), {{R"(["LlamaForCausalLM"])", R"("Llama")"}}),
                "architectures must be a list");
}

TEST(HfConfigTest, RejectsBadValues) {
  ExpectInvalid(
      absl::StrReplaceAll(With(""), {{"\"num_attention_heads\": 4", "\"num_attention_heads\": 0"}}),
      "num_attention_heads must be positive");
  ExpectInvalid(With(R"("num_key_value_heads": 0)"), "n_kv_heads = 0");
  ExpectInvalid(With(R"("num_key_value_heads": 3)"), "not a multiple of n_kv_heads 3");
  ExpectInvalid(
      absl::StrReplaceAll(With(""), {{"\"num_attention_heads\": 4", "\"num_attention_heads\": 5"}}),
      "not a multiple of num_attention_heads");
  ExpectInvalid(absl::StrReplaceAll(With(""), {{"\"hidden_size\": 64", "\"hidden_size\": -64"}}),
                "dim = -64");
  ExpectInvalid(With(R"("head_dim": 15)"), "odd");
  ExpectInvalid(With(R"("rms_norm_eps": 0)"), "rms_norm_eps");
  ExpectInvalid(With(R"("rope_theta": -1)"), "rope_theta");
  ExpectInvalid(With(R"("sliding_window": 0)"), "sliding_window must be positive");
  ExpectInvalid(absl::StrReplaceAll(
                    With(""), {{"\"vocab_size\": 100", "\"vocab_size\": 99999999999999999999"}}),
                "vocab_size must be an integer");
  ExpectInvalid(With(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"),
                "missing required field low_freq_factor");
  ExpectInvalid(With(R"("rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                        "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                        "original_max_position_embeddings": 8192})"),
                "rope_scaling parameters are inconsistent");
  ExpectInvalid(With(R"("rope_scaling": {"rope_type": "linear", "factor": 0.5})"),
                "factor must be >= 1");
  ExpectInvalid(With(R"("rope_scaling": {"factor": 2.0})"), "no rope_type");
}

TEST(HfConfigTest, RejectsUnsupportedFeatures) {
  ExpectError(absl::StrReplaceAll(With(""), {{"LlamaForCausalLM", "GPT2LMHeadModel"}}),
              absl::StatusCode::kUnimplemented, "GPT2LMHeadModel");
  ExpectError(With(R"("rope_scaling": {"rope_type": "yarn", "factor": 4.0})"),
              absl::StatusCode::kUnimplemented, "yarn");
  ExpectError(With(R"("attention_bias": true)"), absl::StatusCode::kUnimplemented,
              "attention_bias");
  ExpectError(With(R"("mlp_bias": true)"), absl::StatusCode::kUnimplemented, "mlp_bias");
  ExpectError(With(R"("hidden_act": "gelu")"), absl::StatusCode::kUnimplemented, "gelu");
}

TEST(HfConfigTest, FileReaderReportsMissingFile) {
  EXPECT_EQ(LlamaConfigFromHfFile("/nonexistent/config.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chai::engine
