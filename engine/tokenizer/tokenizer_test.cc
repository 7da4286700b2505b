// Unit tests for Tokenizer on small hand-built vocabularies, and for
// TokenizerSpec validation of each class of malformed input.
#include "engine/tokenizer/tokenizer.h"

#include <cmath>
#include <thread>

#include "engine/tokenizer/unicode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Cp(uint32_t cp) {
  std::string s;
  AppendUtf8(cp, &s);
  return s;
}

// 256 byte symbols (ids 0..255 in byte order), merges for " the" and "he",
// then control and user-defined tokens.
TokenizerSpec ByteLevelSpec() {
  TokenizerSpec spec;
  spec.model = TokenizerModel::kByteLevelBpe;
  spec.pre_tokenizer = "smollm";
  for (int b = 0; b < 256; ++b) spec.tokens.push_back(Cp(ByteToUnicode(b)));
  const std::string g = Cp(ByteToUnicode(' '));  // 'Ġ'
  spec.tokens.push_back(g + "t");                // 256
  spec.tokens.push_back("he");                   // 257
  spec.tokens.push_back(g + "the");              // 258
  spec.tokens.push_back("<|im_start|>");         // 259
  spec.tokens.push_back("<|im_end|>");           // 260
  spec.tokens.push_back("<user_tok>");           // 261
  spec.token_types.assign(spec.tokens.size(), TokenType::kNormal);
  spec.token_types[259] = TokenType::kControl;
  spec.token_types[260] = TokenType::kControl;
  spec.token_types[261] = TokenType::kUserDefined;
  spec.merges = {{g, "t"}, {"h", "e"}, {g + "t", "he"}};
  spec.bos_id = 259;
  spec.eos_id = 260;
  return spec;
}

std::unique_ptr<Tokenizer> Make(const TokenizerSpec& spec) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(spec);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? *std::move(tok) : nullptr;
}

TEST(ByteLevelTokenizerTest, MergesByRankAndRoundTrips) {
  auto tok = Make(ByteLevelSpec());
  ASSERT_NE(tok, nullptr);
  // " the": Ġ+t (rank 0), h+e (rank 1), Ġt+he (rank 2) -> one token.
  EXPECT_THAT(tok->Encode(" the", false, false), ElementsAre(258));
  EXPECT_THAT(tok->Encode("the", false, false), ElementsAre('t', 257));
  // Digits are split one by one (smollm).
  EXPECT_THAT(tok->Encode("a12", false, false), ElementsAre('a', '1', '2'));
  EXPECT_EQ(tok->Decode(tok->Encode(" the 42 thé", false, false)), " the 42 thé");
}

TEST(ByteLevelTokenizerTest, ArbitraryBytesRoundTrip) {
  auto tok = Make(ByteLevelSpec());
  ASSERT_NE(tok, nullptr);
  const std::string bytes("\xff\xfe a\x80\xc3 \xe2\x82 z\0y", 14);
  const std::vector<int32_t> ids = tok->Encode(bytes, false, false);
  EXPECT_EQ(ids.size(), bytes.size());  // no merges apply: one token per byte
  EXPECT_EQ(tok->Decode(ids), bytes);
}

TEST(ByteLevelTokenizerTest, SpecialTokensOnlyWhenParsed) {
  auto tok = Make(ByteLevelSpec());
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("<|im_start|>he", false, true), ElementsAre(259, 257));
  const std::vector<int32_t> plain = tok->Encode("<|im_start|>he", false, false);
  EXPECT_EQ(plain.size(), 13u);
  EXPECT_EQ(tok->Decode(plain), "<|im_start|>he");
  // User-defined tokens are always recognised.
  EXPECT_THAT(tok->Encode("<user_tok>", false, false), ElementsAre(261));
}

TEST(ByteLevelTokenizerTest, AddSpecialFollowsSpec) {
  TokenizerSpec spec = ByteLevelSpec();
  spec.add_bos = true;
  spec.add_eos = true;
  auto tok = Make(spec);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("he", true, false), ElementsAre(259, 257, 260));
  EXPECT_THAT(tok->Encode("he", false, false), ElementsAre(257));
}

TEST(ByteLevelTokenizerTest, EogAndTokenBytes) {
  auto tok = Make(ByteLevelSpec());
  ASSERT_NE(tok, nullptr);
  EXPECT_TRUE(tok->IsEog(260));  // eos and <|im_end|>
  EXPECT_FALSE(tok->IsEog(259));
  EXPECT_EQ(tok->TokenBytes(258), " the");
  EXPECT_EQ(tok->TokenBytes(0x0A), "\n");
  EXPECT_EQ(tok->TokenBytes(-1), "");
  EXPECT_EQ(tok->TokenBytes(100000), "");
  EXPECT_EQ(tok->Decode(std::vector<int32_t>{258, -5, 999999}), " the");
  EXPECT_EQ(tok->vocab_size(), 262);
  EXPECT_TRUE(tok->IsControl(259));
}

TEST(ByteLevelTokenizerTest, ConcurrentEncodeIsConsistent) {
  auto tok = Make(ByteLevelSpec());
  ASSERT_NE(tok, nullptr);
  const std::string text = "the the 123 <|im_end|> héllo wörld";
  const std::vector<int32_t> want = tok->Encode(text, true, true);
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (tok->Encode(text, true, true) != want) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ByteLevelTokenizerTest, IgnoreMergesTakesWholeWord) {
  TokenizerSpec spec = ByteLevelSpec();
  spec.pre_tokenizer = "llama-bpe";
  const std::string g = Cp(ByteToUnicode(' '));
  spec.tokens.push_back(g + "th");  // 262, reachable by no merge
  spec.token_types.push_back(TokenType::kNormal);
  EXPECT_THAT(Make(spec)->Encode(" th", false, false), ElementsAre(256, 'h'));
  spec.ignore_merges = true;
  EXPECT_THAT(Make(spec)->Encode(" th", false, false), ElementsAre(262));
}

// SentencePiece-style: merges derived from scores, ▁ prefix, byte fallback.
TokenizerSpec SpmSpec() {
  TokenizerSpec spec;
  spec.model = TokenizerModel::kSentencePieceBpe;
  spec.tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
    spec.tokens.push_back(buf);
  }
  for (const char* t : {"\xE2\x96\x81", "a", "b", "c", "ab", "bc",
                        "\xE2\x96\x81"
                        "a",
                        "abc"}) {
    spec.tokens.push_back(t);
  }
  spec.bos_id = 1;
  spec.eos_id = 2;
  spec.unk_id = 0;
  spec.add_bos = true;
  spec.add_space_prefix = true;
  spec.scores.assign(spec.tokens.size(), 0.0f);
  for (size_t i = 259; i < spec.tokens.size(); ++i) spec.scores[i] = -static_cast<float>(i);
  // Make "bc" outrank "ab": "abc" must come from a + bc.
  spec.scores[263] = -100;  // ab
  spec.scores[264] = -50;   // bc
  return spec;
}

TEST(SentencePieceTokenizerTest, ScoreOrderedMergesAndFallback) {
  auto tok = Make(SpmSpec());
  ASSERT_NE(tok, nullptr);
  // Pairs by score: bc (-50) > ab (-100) > ▁a (-265) > abc (-266): "bc" forms
  // first, then ▁a; "▁abc" is not in the vocabulary, so merging stops.
  EXPECT_THAT(tok->Encode("abc", true, false), ElementsAre(1, 265, 264));  // <s> ▁a bc
  EXPECT_THAT(tok->Encode("a", false, false), ElementsAre(265));           // ▁a
  // 'é' is not in the vocabulary: its two UTF-8 bytes via <0xXX>.
  EXPECT_THAT(tok->Encode("é", false, false), ElementsAre(259, 3 + 0xC3, 3 + 0xA9));
  EXPECT_EQ(tok->Decode(tok->Encode("abc é b", false, false)), "abc é b");
  EXPECT_EQ(tok->Decode(tok->Encode("abc", true, false)), "<s> abc");  // as HF decodes it
  EXPECT_EQ(tok->Decode(tok->Encode(" leading", false, false)), " leading");
  EXPECT_EQ(tok->TokenBytes(3 + 0x41), "A");
  EXPECT_EQ(tok->TokenBytes(265), " a");
}

TEST(SentencePieceTokenizerTest, NoByteTokensGivesUnk) {
  TokenizerSpec spec;
  spec.model = TokenizerModel::kSentencePieceBpe;
  spec.tokens = {"<unk>", "\xE2\x96\x81", "x"};
  spec.unk_id = 0;
  spec.add_space_prefix = true;
  auto tok = Make(spec);
  ASSERT_NE(tok, nullptr);
  EXPECT_THAT(tok->Encode("xé", false, false), ElementsAre(1, 2, 0));
}

// --- Validation: every malformed-input class is a clear error -------------

void ExpectInvalid(const TokenizerSpec& spec, const std::string& fragment) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(spec);
  ASSERT_FALSE(tok.ok()) << "expected an error mentioning: " << fragment;
  EXPECT_EQ(tok.status().code(), absl::StatusCode::kInvalidArgument) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(fragment));
}

TEST(TokenizerSpecTest, RejectsMalformedSpecs) {
  TokenizerSpec s = ByteLevelSpec();
  s.tokens.clear();
  ExpectInvalid(s, "empty vocabulary");

  s = ByteLevelSpec();
  s.token_types.pop_back();
  ExpectInvalid(s, "token types");

  s = ByteLevelSpec();
  s.token_types[5] = static_cast<TokenType>(42);
  ExpectInvalid(s, "unknown type");

  s = ByteLevelSpec();
  s.scores.assign(3, 0.0f);
  ExpectInvalid(s, "scores");

  s = SpmSpec();
  s.scores[260] = std::nanf("");
  ExpectInvalid(s, "NaN");

  s = ByteLevelSpec();
  s.bos_id = 262;
  ExpectInvalid(s, "bos id 262 outside");

  s = ByteLevelSpec();
  s.eos_id = -7;
  ExpectInvalid(s, "eos id");

  s = ByteLevelSpec();
  s.merges.push_back({"zz", "h"});
  ExpectInvalid(s, "unknown token");

  s = ByteLevelSpec();
  s.merges.push_back({"t", "t"});
  ExpectInvalid(s, "not in the vocabulary");

  s = ByteLevelSpec();
  s.pre_tokenizer = "no-such-regex";
  ExpectInvalid(s, "unsupported byte-level BPE pre-tokenizer");

  s = ByteLevelSpec();
  s.tokens[100] = std::string(TokenizerLimits::kMaxTokenBytes + 1, 'x');
  ExpectInvalid(s, "bytes long");

  s = ByteLevelSpec();
  s.chat_template.assign(TokenizerLimits::kMaxChatTemplateBytes + 1, ' ');
  ExpectInvalid(s, "chat template");

  s = ByteLevelSpec();
  s.bos_id = -1;
  s.add_bos = true;
  ExpectInvalid(s, "add_bos");
}

}  // namespace
}  // namespace chai::engine
