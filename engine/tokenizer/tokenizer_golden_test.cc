// Golden comparisons against Hugging Face (files made by
// tests/golden/make_tokenizer_golden.py): the default model's tokenizer from
// its GGUF, a SentencePiece-style and a Llama-3-style tokenizer loaded from
// both tokenizer.json and GGUF, and chat template output.
#include <fstream>
#include <sstream>
#include <string>

#include "engine/model/gguf.h"
#include "engine/tokenizer/gguf_spec.h"
#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using Json = nlohmann::json;

std::string Path(const std::string& rel) { return std::string(CHAI_SOURCE_DIR) + "/" + rel; }

Json LoadJson(const std::string& rel) {
  std::ifstream in(Path(rel));
  EXPECT_TRUE(in.good()) << "missing golden file " << rel;
  std::stringstream ss;
  ss << in.rdbuf();
  return Json::parse(ss.str(), nullptr, false);
}

std::unique_ptr<Tokenizer> FromGguf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::Open(path);
  EXPECT_TRUE(g.ok()) << g.status();
  if (!g.ok()) return nullptr;
  absl::StatusOr<TokenizerSpec> spec = SpecFromGguf(**g);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*spec);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

std::unique_ptr<Tokenizer> FromJson(const std::string& path) {
  absl::StatusOr<TokenizerSpec> spec = SpecFromTokenizerJson(path);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*spec);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

// Compares every case's ids; returns the number of cases checked.
size_t CheckGolden(const Tokenizer& tok, const Json& golden, bool add_special,
                   bool check_round_trip, const std::string& label) {
  size_t checked = 0;
  int mismatches = 0;
  for (const Json& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.Encode(text, add_special, /*parse_special=*/true);
    if (got != want && ++mismatches <= 10) {
      ADD_FAILURE() << label << ": ids differ for " << Json(text).dump() << "\n  want "
                    << Json(want).dump() << "\n  got  " << Json(got).dump();
    }
    if (check_round_trip) {
      EXPECT_EQ(tok.Decode(got), text) << label << ": round trip of " << Json(text).dump();
    }
    ++checked;
  }
  EXPECT_EQ(mismatches, 0) << label;
  return checked;
}

constexpr char kModel[] = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

TEST(TokenizerGoldenTest, SmolLm2MatchesHuggingFace) {
  if (!std::ifstream(Path(kModel)).good()) {
    GTEST_SKIP() << kModel << " not present (the CI set-up script downloads it)";
  }
  std::unique_ptr<Tokenizer> tok = FromGguf(Path(kModel));
  ASSERT_NE(tok, nullptr);
  const Json golden = LoadJson("tests/golden/tokenizer/smollm2_golden.json");
  ASSERT_FALSE(golden.is_discarded());
  const size_t n = CheckGolden(*tok, golden, false, true, "smollm2");
  EXPECT_GE(n, 300u);
  EXPECT_EQ(tok->vocab_size(), 49152);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->IsEog(2));  // <|im_end|>
  EXPECT_TRUE(tok->IsEog(0));  // <|endoftext|>
  EXPECT_FALSE(tok->IsEog(1));
  EXPECT_EQ(tok->Encode("Hi", /*add_special=*/true, false), tok->Encode("Hi", false, false));
  // parse_special=false: the marker is plain text.
  EXPECT_NE(tok->Encode("<|im_start|>", false, false), std::vector<int32_t>{1});
  ASSERT_NE(tok->chat_template(), nullptr);
  EXPECT_EQ(tok->chat_template()->kind(), ChatTemplateKind::kChatMl);
  std::vector<ChatMessage> msgs = {{"user", "Hi!"}};
  EXPECT_EQ(*tok->ApplyChatTemplate(msgs, true),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
}

TEST(TokenizerGoldenTest, ChatTemplatesMatchTransformers) {
  const Json golden = LoadJson("tests/golden/tokenizer/chat_golden.json");
  ASSERT_FALSE(golden.is_discarded());
  size_t n = 0;
  for (const Json& c : golden["cases"]) {
    auto tmpl = ChatTemplate::Detect(
        c["template"].get<std::string>(), [](std::string_view) { return false; },
        c["bos"].get<std::string>(), c["eos"].get<std::string>());
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    std::vector<ChatMessage> messages;
    for (const Json& m : c["messages"]) {
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    absl::StatusOr<std::string> got =
        (*tmpl)->Apply(messages, c["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, c["expected"].get<std::string>()) << c["family"].get<std::string>();
    ++n;
  }
  EXPECT_GE(n, 15u);
}

TEST(TokenizerGoldenTest, SentencePieceJsonAndGgufMatchHuggingFace) {
  const Json golden = LoadJson("tests/golden/tokenizer/spm/spm_golden.json");
  ASSERT_FALSE(golden.is_discarded());
  std::unique_ptr<Tokenizer> json_tok = FromJson(Path("tests/golden/tokenizer/spm/tokenizer.json"));
  std::unique_ptr<Tokenizer> gguf_tok = FromGguf(Path("tests/golden/tokenizer/spm/spm.gguf"));
  ASSERT_NE(json_tok, nullptr);
  ASSERT_NE(gguf_tok, nullptr);
  EXPECT_EQ(json_tok->model(), TokenizerModel::kSentencePieceBpe);
  EXPECT_GE(CheckGolden(*json_tok, golden, true, false, "spm tokenizer.json"), 100u);
  CheckGolden(*gguf_tok, golden, true, false, "spm gguf");
  for (const Json& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(json_tok->Decode(json_tok->Encode(text, false, false)), text);
  }
}

TEST(TokenizerGoldenTest, Llama3StyleJsonAndGgufMatchHuggingFace) {
  const Json golden = LoadJson("tests/golden/tokenizer/llama3/llama3_golden.json");
  ASSERT_FALSE(golden.is_discarded());
  std::unique_ptr<Tokenizer> json_tok =
      FromJson(Path("tests/golden/tokenizer/llama3/tokenizer.json"));
  std::unique_ptr<Tokenizer> gguf_tok = FromGguf(Path("tests/golden/tokenizer/llama3/llama3.gguf"));
  ASSERT_NE(json_tok, nullptr);
  ASSERT_NE(gguf_tok, nullptr);
  EXPECT_GE(CheckGolden(*json_tok, golden, false, true, "llama3 tokenizer.json"), 100u);
  CheckGolden(*gguf_tok, golden, false, true, "llama3 gguf");
  // tokenizer_config.json supplied BOS, add_bos and the template.
  EXPECT_TRUE(json_tok->add_bos());
  EXPECT_EQ(json_tok->Encode("x", true, false).front(), json_tok->bos_id());
  ASSERT_NE(json_tok->chat_template(), nullptr);
  EXPECT_EQ(json_tok->chat_template()->kind(), ChatTemplateKind::kLlama3);
  EXPECT_TRUE(json_tok->IsEog(*json_tok->TokenId("<|eot_id|>")));
}

}  // namespace
}  // namespace chai::engine
