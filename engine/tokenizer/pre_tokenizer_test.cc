// Pre-tokenizer splits (checked against the regex semantics by hand) and the
// UTF-8 helpers.
#include "engine/tokenizer/pre_tokenizer.h"

#include <string>

#include "engine/tokenizer/unicode.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::ElementsAre;

std::vector<std::string> Split(PreTokenizerKind kind, std::string_view text) {
  std::vector<std::string_view> pieces;
  PreTokenize(kind, text, &pieces);
  return {pieces.begin(), pieces.end()};
}

TEST(PreTokenizerTest, Gpt2) {
  const auto k = PreTokenizerKind::kGpt2;
  EXPECT_THAT(Split(k, "Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Split(k, "Hello   world  "), ElementsAre("Hello", "  ", " world", "  "));
  EXPECT_THAT(Split(k, "I'm you're"), ElementsAre("I", "'m", " you", "'re"));
  EXPECT_THAT(Split(k, "I'M"), ElementsAre("I", "'", "M"));
  EXPECT_THAT(Split(k, "a 123 4"), ElementsAre("a", " 123", " 4"));
  EXPECT_THAT(Split(k, "x!!  ?"), ElementsAre("x", "!!", " ", " ?"));
  EXPECT_THAT(Split(k, "a\n\nb"), ElementsAre("a", "\n", "\n", "b"));
  EXPECT_THAT(Split(k, "café 中文"), ElementsAre("café", " 中文"));
  EXPECT_THAT(Split(k,
                    "a\xff"
                    "b"),
              ElementsAre("a", "\xff", "b"));
  EXPECT_THAT(Split(k, ""), ElementsAre());
}

TEST(PreTokenizerTest, SmollmSplitsEveryDigitAndResetsAtDigits) {
  const auto k = PreTokenizerKind::kSmollm;
  EXPECT_THAT(Split(k, "12345"), ElementsAre("1", "2", "3", "4", "5"));
  // The stretch before a digit ends there, so trailing spaces stay whole.
  EXPECT_THAT(Split(k, "a  1"), ElementsAre("a", "  ", "1"));
  EXPECT_THAT(Split(k, "x 2024"), ElementsAre("x", " ", "2", "0", "2", "4"));
  EXPECT_THAT(Split(k, "٣½"), ElementsAre("٣", "½"));
}

TEST(PreTokenizerTest, Llama3) {
  const auto k = PreTokenizerKind::kLlama3;
  EXPECT_THAT(Split(k, "1234567"), ElementsAre("123", "456", "7"));
  EXPECT_THAT(Split(k, "I'M (hello)"), ElementsAre("I", "'M", " (", "hello", ")"));
  EXPECT_THAT(Split(k, "a\n\n  b"), ElementsAre("a", "\n\n", " ", " b"));
  EXPECT_THAT(Split(k, "x  \n y"), ElementsAre("x", "  \n", " y"));
  EXPECT_THAT(Split(k, "ok!!\n\nnext"), ElementsAre("ok", "!!\n\n", "next"));
  EXPECT_THAT(Split(k, "\tword"), ElementsAre("\tword"));
}

TEST(PreTokenizerTest, NamesMapToKinds) {
  EXPECT_EQ(*PreTokenizerFromName("smollm"), PreTokenizerKind::kSmollm);
  EXPECT_EQ(*PreTokenizerFromName("default"), PreTokenizerKind::kGpt2);
  EXPECT_EQ(*PreTokenizerFromName("llama-bpe"), PreTokenizerKind::kLlama3);
  EXPECT_FALSE(PreTokenizerFromName("qwen2").ok());
}

TEST(UnicodeTest, ClassesAndUtf8) {
  EXPECT_TRUE(IsLetter(U'é'));
  EXPECT_TRUE(IsLetter(U'中'));
  EXPECT_TRUE(IsNumber(U'٣'));
  EXPECT_TRUE(IsSpace(0x3000));
  EXPECT_FALSE(IsSpace(0x200B));  // zero-width space is not White_Space
  EXPECT_FALSE(IsLetter(kInvalidCodePoint));
  size_t len = 0;
  EXPECT_EQ(DecodeUtf8("\xC0\x80", 0, &len), kInvalidCodePoint);  // overlong
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(DecodeUtf8("\xED\xA0\x80", 0, &len), kInvalidCodePoint);  // surrogate
  EXPECT_EQ(DecodeUtf8("\xF0\x9F\x98\x80", 0, &len), 0x1F600u);
  EXPECT_EQ(len, 4u);
  EXPECT_EQ(ValidUtf8PrefixLength("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(ValidUtf8PrefixLength("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(ValidUtf8PrefixLength("a\xff"
                                  "b"),
            3u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(UnicodeToByte(ByteToUnicode(b)), b);
  EXPECT_STRNE(UnicodeVersion(), "");
}

}  // namespace
}  // namespace chai::engine
