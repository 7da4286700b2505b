#include "engine/sampling/sampling_params.h"

#include <cmath>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kVocab = 49152;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Expects INVALID_ARGUMENT whose message names `field`.
void ExpectRejected(const SamplingParams& p, const std::string& field, int64_t vocab = kVocab) {
  const absl::Status s = p.Validate(vocab);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << field << ": " << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(field));
}

TEST(SamplingParamsTest, DefaultsAndBoundaryValuesAreValid) {
  EXPECT_TRUE(SamplingParams{}.Validate(kVocab).ok());
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = kVocab + 10;  // larger than the vocab: keeps everything
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  p.repetition_penalty = 1e-3f;
  p.presence_penalty = -2.0f;
  p.frequency_penalty = 2.0f;
  p.top_logprobs = kMaxTopLogprobs;
  p.seed = 0;
  EXPECT_TRUE(p.Validate(kVocab).ok()) << p.Validate(kVocab);
}

TEST(SamplingParamsTest, RejectsBadTemperature) {
  for (float t : {kNaN, -0.1f, kInf, -kInf}) {
    SamplingParams p;
    p.temperature = t;
    ExpectRejected(p, "temperature");
  }
}

TEST(SamplingParamsTest, RejectsNegativeTopK) {
  SamplingParams p;
  p.top_k = -1;
  ExpectRejected(p, "top_k");
}

TEST(SamplingParamsTest, RejectsTopPOutsideHalfOpenUnitInterval) {
  for (float v : {0.0f, -0.5f, 1.0001f, kNaN, kInf}) {
    SamplingParams p;
    p.top_p = v;
    ExpectRejected(p, "top_p");
  }
}

TEST(SamplingParamsTest, RejectsMinPOutsideUnitInterval) {
  for (float v : {-0.01f, 1.01f, kNaN}) {
    SamplingParams p;
    p.min_p = v;
    ExpectRejected(p, "min_p");
  }
}

TEST(SamplingParamsTest, RejectsNonPositiveOrNonFiniteRepetitionPenalty) {
  for (float v : {0.0f, -1.0f, kNaN, kInf}) {
    SamplingParams p;
    p.repetition_penalty = v;
    ExpectRejected(p, "repetition_penalty");
  }
}

TEST(SamplingParamsTest, RejectsPresenceAndFrequencyPenaltiesOutOfRange) {
  for (float v : {2.5f, -2.5f, kNaN, kInf}) {
    SamplingParams p;
    p.presence_penalty = v;
    ExpectRejected(p, "presence_penalty");
    SamplingParams q;
    q.frequency_penalty = v;
    ExpectRejected(q, "frequency_penalty");
  }
}

TEST(SamplingParamsTest, RejectsTopLogprobsOutOfRange) {
  SamplingParams p;
  p.top_logprobs = -1;
  ExpectRejected(p, "top_logprobs");
  p.top_logprobs = kMaxTopLogprobs + 1;
  ExpectRejected(p, "top_logprobs");
  p.top_logprobs = 5;
  ExpectRejected(p, "top_logprobs", /*vocab=*/4);  // more than the vocabulary holds
}

TEST(SamplingParamsTest, RejectsEmptyVocabulary) {
  ExpectRejected(SamplingParams{}, "vocab_size", /*vocab=*/0);
}

TEST(SamplingParamsTest, GreedyAndPenaltyPredicates) {
  SamplingParams p;
  EXPECT_FALSE(p.IsGreedy());
  EXPECT_FALSE(p.HasPenalties());
  p.temperature = 0.0f;
  p.presence_penalty = 0.1f;
  EXPECT_TRUE(p.IsGreedy());
  EXPECT_TRUE(p.HasPenalties());
}

}  // namespace
}  // namespace chai::engine
