// tokenizer.json loading: one test per class of malformed input, plus the
// supported shapes.
#include "engine/tokenizer/json_spec.h"

#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

// A minimal byte-level tokenizer.json: vocab "a"=0 "b"=1 "ab"=2, one merge.
std::string Json(
    const std::string& vocab = R"({"a": 0, "b": 1, "ab": 2})",
    const std::string& merges = R"(["a b"])",
    const std::string& pre = R"({"type": "ByteLevel", "add_prefix_space": false})",
    const std::string& added = R"([{"id": 3, "content": "<|eot|>", "special": true}])") {
  return R"({"added_tokens": )" + added + R"(, "normalizer": null, "pre_tokenizer": )" + pre +
         R"(, "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": )" + vocab +
         R"(, "merges": )" + merges + "}}";
}

absl::Status Load(const std::string& json, const std::string& config = "") {
  absl::StatusOr<TokenizerSpec> spec = SpecFromTokenizerJsonText(json, config);
  if (!spec.ok()) return spec.status();
  return Tokenizer::Create(*spec).status();
}

TEST(JsonSpecTest, AcceptsMinimalByteLevel) {
  absl::StatusOr<TokenizerSpec> spec = SpecFromTokenizerJsonText(Json(), "");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->model, TokenizerModel::kByteLevelBpe);
  EXPECT_EQ(spec->pre_tokenizer, "gpt2");
  ASSERT_EQ(spec->tokens.size(), 4u);
  EXPECT_EQ(spec->token_types[3], TokenType::kControl);
  auto tok = Tokenizer::Create(*spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->Encode("ab<|eot|>", false, true), (std::vector<int32_t>{2, 3}));
  // Array-form merges are accepted too.
  EXPECT_TRUE(Load(Json(R"({"a": 0, "b": 1, "ab": 2})", R"([["a", "b"]])")).ok());
}

TEST(JsonSpecTest, ConfigSuppliesSpecialTokensAndTemplate) {
  const std::string config =
      R"({"bos_token": {"content": "<|eot|>"}, "eos_token": "<|eot|>", "add_bos_token": true,
          "chat_template": "<|im_start|>"})";
  absl::StatusOr<TokenizerSpec> spec = SpecFromTokenizerJsonText(Json(), config);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->bos_id, 3);
  EXPECT_EQ(spec->eos_id, 3);
  EXPECT_TRUE(spec->add_bos);
  EXPECT_EQ(spec->chat_template, "<|im_start|>");
  EXPECT_THAT(std::string(Load(Json(), R"({"eos_token": "<nope>"})").message()),
              HasSubstr("not in the vocabulary"));
}

TEST(JsonSpecTest, RejectsMalformedInput) {
  struct Case {
    std::string json;
    absl::StatusCode code;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"", absl::StatusCode::kInvalidArgument, "not a JSON object"},
      {"{\"model\": ", absl::StatusCode::kInvalidArgument, "not a JSON object"},
      {"[1, 2]", absl::StatusCode::kInvalidArgument, "not a JSON object"},
      {"{}", absl::StatusCode::kInvalidArgument, "missing 'model'"},
      {R"({"model": {"type": "Unigram"}})", absl::StatusCode::kUnimplemented, "Unigram"},
      {R"({"model": {"type": "BPE", "vocab": [1, 2]}})", absl::StatusCode::kInvalidArgument,
       "vocab is not an object"},
      {Json(R"({"a": "zero"})"), absl::StatusCode::kInvalidArgument, "not an integer"},
      {Json(R"({"a": -1})"), absl::StatusCode::kInvalidArgument, "out of range"},
      {Json(R"({"a": 99999999999})"), absl::StatusCode::kInvalidArgument, "out of range"},
      {Json(R"({"a": 0, "b": 0})"), absl::StatusCode::kInvalidArgument, "assigned twice"},
      {Json(R"({"a": 0, "b": 5})"), absl::StatusCode::kInvalidArgument, "no token has id"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"("a b")"), absl::StatusCode::kInvalidArgument,
       "merges is not an array"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"(["ab"])"), absl::StatusCode::kInvalidArgument,
       "malformed merge"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"([7])"), absl::StatusCode::kInvalidArgument,
       "neither"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"(["a c"])"), absl::StatusCode::kInvalidArgument,
       "unknown token"},
      {Json(R"({"a": 0, "b": 1, "c": 2})", R"(["a b"])"), absl::StatusCode::kInvalidArgument,
       "not in the vocabulary"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"(["a b"])", R"({"type": "Whitespace"})"),
       absl::StatusCode::kUnimplemented, "pre_tokenizer"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"(["a b"])",
            R"({"type": "ByteLevel", "add_prefix_space": false})", R"({"id": 3})"),
       absl::StatusCode::kInvalidArgument, "added_tokens is not an array"},
      {Json(R"({"a": 0, "b": 1, "ab": 2})", R"(["a b"])",
            R"({"type": "ByteLevel", "add_prefix_space": false})", R"([{"content": "x"}])"),
       absl::StatusCode::kInvalidArgument, "without content/id"},
  };
  for (const Case& c : cases) {
    const absl::Status s = Load(c.json);
    EXPECT_EQ(s.code(), c.code) << c.json << " -> " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.fragment)) << c.json;
  }
  EXPECT_EQ(SpecFromTokenizerJsonText(Json(), "not json").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SpecFromTokenizerJson("/nonexistent/tokenizer.json").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chai::engine
