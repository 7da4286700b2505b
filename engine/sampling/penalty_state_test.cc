#include "engine/sampling/penalty_state.h"

#include <vector>

#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

TEST(PenaltyStateTest, CountsGeneratedTokensAndRemembersPromptTokens) {
  PenaltyState state(100);
  const std::vector<int32_t> prompt = {5, 9, 5};
  ASSERT_TRUE(state.AddPrompt(prompt).ok());
  ASSERT_TRUE(state.Add(9).ok());
  ASSERT_TRUE(state.Add(42).ok());
  ASSERT_TRUE(state.Add(42).ok());

  EXPECT_TRUE(state.Seen(5));
  EXPECT_TRUE(state.Seen(9));
  EXPECT_TRUE(state.Seen(42));
  EXPECT_FALSE(state.Seen(6));
  EXPECT_EQ(state.OutputCount(5), 0);  // prompt only
  EXPECT_EQ(state.OutputCount(9), 1);
  EXPECT_EQ(state.OutputCount(42), 2);
  EXPECT_EQ(state.num_generated(), 3);
  ASSERT_EQ(state.entries().size(), 3u);  // distinct tokens, first-seen order
  EXPECT_EQ(state.entries()[0].token, 5);
  EXPECT_EQ(state.entries()[1].token, 9);
  EXPECT_EQ(state.entries()[2].token, 42);
}

TEST(PenaltyStateTest, RejectsOutOfVocabularyIdsWithoutRecordingAnything) {
  PenaltyState state(10);
  const std::vector<int32_t> prompt = {1, 2, 10};
  EXPECT_EQ(state.AddPrompt(prompt).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(state.entries().empty());
  EXPECT_EQ(state.Add(-1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.Add(10).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(state.num_generated(), 0);
}

TEST(PenaltyStateTest, LongGenerationKeepsOneEntryPerDistinctToken) {
  PenaltyState state(50);
  for (int i = 0; i < 100000; ++i) ASSERT_TRUE(state.Add(i % 7).ok());
  EXPECT_EQ(state.entries().size(), 7u);
  EXPECT_EQ(state.OutputCount(3), 100000 / 7 + (3 < 100000 % 7 ? 1 : 0));
}

TEST(ApplyPenaltiesTest, MatchesHandComputedValues) {
  PenaltyState state(6);
  const std::vector<int32_t> prompt = {0, 1};
  ASSERT_TRUE(state.AddPrompt(prompt).ok());
  for (int32_t t : {1, 2, 2, 3}) ASSERT_TRUE(state.Add(t).ok());
  SamplingParams p;
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  std::vector<float> logits = {4.0f, -4.0f, 1.0f, -1.0f, 3.0f, -3.0f};
  ASSERT_TRUE(ApplyPenalties(logits, p, state).ok());
  EXPECT_FLOAT_EQ(logits[0], 2.0f);                  // prompt: 4 / 2
  EXPECT_FLOAT_EQ(logits[1], -8.0f - 0.25f - 0.5f);  // -4 * 2, then once generated
  EXPECT_FLOAT_EQ(logits[2], 0.5f - 0.5f - 0.5f);    // 1 / 2, twice generated
  EXPECT_FLOAT_EQ(logits[3], -2.0f - 0.25f - 0.5f);  // -1 * 2, once generated
  EXPECT_FLOAT_EQ(logits[4], 3.0f);                  // never seen
  EXPECT_FLOAT_EQ(logits[5], -3.0f);
}

TEST(ApplyPenaltiesTest, RejectsSizeMismatch) {
  PenaltyState state(6);
  std::vector<float> logits(5, 0.0f);
  EXPECT_EQ(ApplyPenalties(logits, SamplingParams{}, state).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chai::engine
