// Compares the penalties and the final candidate distribution with
// tests/golden/sampling/sampling_golden.json, produced by the independent
// numpy implementation in tests/golden/make_sampling_golden.py.
#include <cmath>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "engine/sampling/sampler.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

using json = nlohmann::json;

json LoadGolden() { return chai::testing::LoadGoldenJson("sampling/sampling_golden.json"); }

std::vector<float> ToFloats(const json& a) { return chai::testing::JsonFloats(a); }

SamplingParams ToParams(const json& j) {
  SamplingParams p;
  p.temperature = static_cast<float>(j.at("temperature").get<double>());
  p.top_k = j.at("top_k").get<int32_t>();
  p.top_p = static_cast<float>(j.at("top_p").get<double>());
  p.min_p = static_cast<float>(j.at("min_p").get<double>());
  p.repetition_penalty = static_cast<float>(j.at("repetition_penalty").get<double>());
  p.presence_penalty = static_cast<float>(j.at("presence_penalty").get<double>());
  p.frequency_penalty = static_cast<float>(j.at("frequency_penalty").get<double>());
  return p;
}

TEST(SamplingGoldenTest, MatchesNumpyReference) {
  const json golden = LoadGolden();
  ASSERT_GE(golden.at("cases").size(), 10u);
  for (const json& c : golden.at("cases")) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const std::vector<float> logits = ToFloats(c.at("logits"));
    const SamplingParams params = ToParams(c.at("params"));
    ASSERT_TRUE(params.Validate(static_cast<int64_t>(logits.size())).ok());
    PenaltyState history(static_cast<int64_t>(logits.size()));
    ASSERT_TRUE(history.AddPrompt(c.at("prompt").get<std::vector<int32_t>>()).ok());
    for (int32_t t : c.at("output").get<std::vector<int32_t>>()) ASSERT_TRUE(history.Add(t).ok());

    if (c.contains("penalized_logits")) {
      std::vector<float> penalized = logits;
      ASSERT_TRUE(ApplyPenalties(penalized, params, history).ok());
      const std::vector<double> want = c.at("penalized_logits").get<std::vector<double>>();
      ASSERT_EQ(penalized.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_NEAR(penalized[i], want[i], 1e-5 * std::max(1.0, std::abs(want[i])))
            << "token " << i;
      }
    }

    absl::StatusOr<std::vector<TokenProb>> got = CandidateDistribution(logits, params, history);
    ASSERT_TRUE(got.ok()) << got.status();
    std::map<int32_t, double> want;
    for (const json& e : c.at("distribution")) want[e.at(0).get<int32_t>()] = e.at(1).get<double>();
    std::map<int32_t, double> have;
    for (const TokenProb& tp : *got) have[tp.token] = tp.prob;
    ASSERT_EQ(have.size(), want.size());
    for (const auto& [token, prob] : want) {
      ASSERT_TRUE(have.contains(token)) << "missing token " << token;
      EXPECT_NEAR(have[token], prob, 1e-6 + 1e-5 * prob) << "token " << token;
    }
  }
}

}  // namespace
}  // namespace chai::engine
