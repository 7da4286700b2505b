// Tokenization of log-likelihood requests with the default model's tokenizer:
// the harness's pair encoding and llama.cpp's perplexity windows.
#include "engine/eval/requests.h"

#include <numeric>
#include <string>

#include "engine/loaded_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::engine::eval {
namespace {

using ::testing::ElementsAreArray;

class RequestsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LoadedModel> m = LoadModel(chai::testing::DefaultModelPath());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LoadedModel(*std::move(m));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  const Tokenizer& tok() const { return *model_->tokenizer; }
  std::vector<int32_t> Enc(const std::string& s) const { return tok().Encode(s, false, false); }
  static LoadedModel* model_;
};
LoadedModel* RequestsTest::model_ = nullptr;

TEST_F(RequestsTest, ContinuationIsTheTailOfTheWholeEncoding) {
  EncodedPair p = EncodePair(tok(), "Question: Is water wet?\nAnswer:", " yes");
  EXPECT_THAT(p.context, ElementsAreArray(Enc("Question: Is water wet?\nAnswer:")));
  std::vector<int32_t> joined = p.context;
  joined.insert(joined.end(), p.continuation.begin(), p.continuation.end());
  EXPECT_THAT(joined, ElementsAreArray(Enc("Question: Is water wet?\nAnswer: yes")));
  EXPECT_EQ(tok().Decode(p.continuation), " yes");
}

TEST_F(RequestsTest, TrailingContextWhitespaceMovesToTheContinuation) {
  EncodedPair a = EncodePair(tok(), "The sky is ", "blue");
  EncodedPair b = EncodePair(tok(), "The sky is", " blue");
  EXPECT_EQ(a.context, b.context);
  EXPECT_EQ(a.continuation, b.continuation);
  EXPECT_EQ(tok().Decode(a.continuation), " blue");
}

TEST_F(RequestsTest, EmptyContextUsesThePrefixToken) {
  // The harness scores an empty context after prefix_token_id (BOS here).
  EncodedPair p = EncodePair(tok(), "", " hello");
  EXPECT_THAT(p.context, ElementsAreArray({tok().bos_id()}));
  EXPECT_EQ(p.continuation, Enc(" hello"));
}

TEST_F(RequestsTest, McItemSharesTheContext) {
  McItem item{"Question: Pick a colour\nAnswer:", {"red", "deep blue", "no"}, 1};
  absl::StatusOr<LoglikelihoodRequest> r = EncodeMcItem(tok(), item);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->context, Enc(item.context));
  ASSERT_EQ(r->continuations.size(), 3u);
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_EQ(tok().Decode(r->continuations[c]), " " + item.choices[c]);
  }
}

TEST(PerplexityWindows, LlamaCppLayout) {
  std::vector<int32_t> tokens(37);
  std::iota(tokens.begin(), tokens.end(), 100);
  absl::StatusOr<std::vector<LoglikelihoodRequest>> w =
      PerplexityWindows(tokens, 8, /*bos_id=*/1, /*add_bos=*/false, 0);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_EQ(w->size(), 4u);  // 37 / 8, the tail dropped
  // Window 1: tokens 108..115; first = 4: context 108..112, scored 113..115.
  EXPECT_THAT((*w)[1].context, ElementsAreArray({108, 109, 110, 111, 112}));
  ASSERT_EQ((*w)[1].continuations.size(), 1u);
  EXPECT_THAT((*w)[1].continuations[0], ElementsAreArray({113, 114, 115}));

  absl::StatusOr<std::vector<LoglikelihoodRequest>> bos =
      PerplexityWindows(tokens, 8, /*bos_id=*/1, /*add_bos=*/true, 2);
  ASSERT_TRUE(bos.ok());
  ASSERT_EQ(bos->size(), 2u);          // max_windows
  EXPECT_EQ((*bos)[1].context[0], 1);  // first token replaced, not prepended
  EXPECT_EQ((*bos)[1].context[1], 109);

  EXPECT_FALSE(PerplexityWindows(tokens, 19, 1, false, 0).ok());  // < 2 windows of tokens
  EXPECT_FALSE(PerplexityWindows(tokens, 2, 1, false, 0).ok());   // nothing scored
  EXPECT_FALSE(PerplexityWindows(tokens, 8, -1, true, 0).ok());   // BOS asked, none
}

}  // namespace
}  // namespace chai::engine::eval
