// The scoring formulas on hand-made inputs; reference numbers from numpy /
// scipy (the expressions are quoted next to each).
#include "engine/eval/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chai::engine::eval {
namespace {

TEST(NumpyArgmax, FirstMaximumWinsTies) {
  EXPECT_EQ(NumpyArgmax(std::vector<double>{-3, -1, -1, -2}), 1);
  EXPECT_EQ(NumpyArgmax(std::vector<double>{-5}), 0);
}

TEST(NumpyArgmax, FirstNanWinsAsInNumpy) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(NumpyArgmax(std::vector<double>{-1, nan, 0, nan}), 1);
}

TEST(CodePointLength, CountsCharactersNotBytes) {
  EXPECT_EQ(CodePointLength("abc"), 3);
  EXPECT_EQ(CodePointLength("h\xC3\xA9llo"), 5);                  // héllo: 6 bytes
  EXPECT_EQ(CodePointLength("\xE2\x82\xAC\xF0\x9F\x98\x80"), 2);  // €😀
  EXPECT_EQ(CodePointLength(""), 0);
}

TEST(PredictMc, AccAndAccNormDifferWhenLengthsDiffer) {
  // Raw sums prefer the short choice; per character the long one is better:
  // -10/2 = -5 vs -12/8 = -1.5.
  const std::vector<double> ll = {-10, -12};
  const std::vector<std::string> choices = {"ab", "abcdefgh"};
  McPrediction p = PredictMc(ll, choices);
  EXPECT_EQ(p.pred, 0);
  EXPECT_EQ(p.pred_norm, 1);
}

TEST(PredictMc, NormalisesByCodePointsLikePythonLen) {
  // "éééé" is 4 characters (8 bytes): -6/4 = -1.5 < -5/4 = -1.25 picks
  // choice 1; dividing by bytes (-0.75) would pick choice 0.
  const std::vector<double> ll = {-6, -5};
  const std::vector<std::string> choices = {"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", "abcd"};
  EXPECT_EQ(PredictMc(ll, choices).pred_norm, 1);
}

TEST(PredictMc, EmptyChoiceDividesByZeroAsNumpy) {
  // numpy: -2 / 0 = -inf (never chosen); 0 / 0 = nan (argmax picks it).
  const std::vector<std::string> choices = {"", "abc"};
  EXPECT_EQ(PredictMc(std::vector<double>{-2, -9}, choices).pred_norm, 1);
  EXPECT_EQ(PredictMc(std::vector<double>{0, -9}, choices).pred_norm, 0);
}

TEST(MeanStderr, MatchesHarnessSampleStderr) {
  // numpy: v.mean() = 0.75, v.std(ddof=1) / sqrt(8) = 0.16366341767699427
  const std::vector<double> v = {1, 0, 1, 1, 0, 1, 1, 1};
  EXPECT_DOUBLE_EQ(Mean(v), 0.75);
  EXPECT_NEAR(MeanStderr(v), 0.16366341767699427, 1e-15);
  EXPECT_TRUE(std::isnan(MeanStderr(std::vector<double>{1})));
}

TEST(AggregateMc, CountsBothMetrics) {
  const std::vector<McPrediction> preds = {{0, 1}, {1, 1}, {2, 0}, {0, 0}};
  const std::vector<int32_t> gold = {0, 1, 0, 1};
  McMetrics m = AggregateMc(preds, gold);
  EXPECT_EQ(m.n, 4);
  EXPECT_DOUBLE_EQ(m.acc, 0.5);       // items 0, 1
  EXPECT_DOUBLE_EQ(m.acc_norm, 0.5);  // items 1, 2
  // numpy: np.std([1,1,0,0], ddof=1) / 2 = 0.28867513459481287
  EXPECT_NEAR(m.acc_stderr, 0.28867513459481287, 1e-15);
  EXPECT_NEAR(m.acc_norm_stderr, 0.28867513459481287, 1e-15);
}

TEST(PerplexityAccumulator, MatchesLlamaCppFormula) {
  // numpy: nll = [1, 2.5, 0.3, 4]; ppl = exp(nll.mean()) = 7.028687580589293;
  // sqrt((mean(nll**2) - nll.mean()**2) / 3) * ppl = 5.7853400305424305
  PerplexityAccumulator acc;
  for (double lp : {-1.0, -2.5, -0.3, -4.0}) acc.Add(lp);
  EXPECT_EQ(acc.count(), 4);
  EXPECT_NEAR(acc.Perplexity(), 7.028687580589293, 1e-12);
  EXPECT_NEAR(acc.Stderr(), 5.7853400305424305, 1e-12);
}

TEST(PerplexityAccumulator, NoStderrWithoutVariance) {
  PerplexityAccumulator acc;
  acc.Add(-2);
  acc.Add(-2);
  EXPECT_NEAR(acc.Perplexity(), std::exp(2.0), 1e-12);
  EXPECT_TRUE(std::isnan(acc.Stderr()));
}

TEST(LogSoftmaxAt, MatchesScipy) {
  // scipy.special.log_softmax([0.5, -1.25, 3.0, 2.0])[3] = -1.3813286012269788
  const std::vector<float> logits = {0.5f, -1.25f, 3.0f, 2.0f};
  EXPECT_NEAR(LogSoftmaxAt(logits, 3), -1.3813286012269788, 1e-6);
  // Shifting every logit leaves log-probabilities unchanged.
  const std::vector<float> shifted = {100.5f, 98.75f, 103.0f, 102.0f};
  EXPECT_NEAR(LogSoftmaxAt(shifted, 3), -1.3813286012269788, 1e-5);
}

TEST(KlDivergence, MatchesScipyRelEntr) {
  // scipy: rel_entr(softmax(p), softmax(q)).sum() = 1.1595727898425046
  const std::vector<float> p = {1, 2, 3, -1}, q = {3, 2, 1, 0.5f};
  EXPECT_NEAR(KlDivergence(p, q), 1.1595727898425046, 1e-6);
  EXPECT_EQ(KlDivergence(p, p), 0.0);
}

TEST(KlAccumulator, MeansAndTopOneAgreement) {
  KlAccumulator acc;
  const std::vector<float> p = {1, 2, 3, -1}, q = {3, 2, 1, 0.5f};
  acc.Add(p, p);  // KL 0, same argmax
  acc.Add(p, q);  // argmax 2 vs 0
  EXPECT_EQ(acc.n(), 2);
  EXPECT_NEAR(acc.mean_kl(), 1.1595727898425046 / 2, 1e-6);
  EXPECT_DOUBLE_EQ(acc.top1_agreement(), 0.5);
}

}  // namespace
}  // namespace chai::engine::eval
