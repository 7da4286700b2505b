// The knee rule on hand-made curves with known answers.
#include "engine/chai/knee.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace chai::engine {
namespace {

KneeResult Knee(const std::vector<double>& curve, double min_strength = 0.1) {
  absl::StatusOr<KneeResult> r = FindKnee(curve, {.min_strength = min_strength});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : KneeResult{};
}

TEST(KneeTest, SharpElbow) {
  // Three groups of heads: the error collapses at k = 3, then plateaus.
  const KneeResult r = Knee({100, 50, 5, 4, 3, 2, 1, 0.5, 0});
  EXPECT_EQ(r.k, 3);
  EXPECT_TRUE(r.found);
  // d(3) = (1 - 2/8) - 5/100.
  EXPECT_NEAR(r.strength, 0.75 - 0.05, 1e-12);
  EXPECT_DOUBLE_EQ(r.normalized.front(), 1.0);
  EXPECT_DOUBLE_EQ(r.normalized.back(), 0.0);
  EXPECT_DOUBLE_EQ(r.normalized[2], 0.05);
}

TEST(KneeTest, ElbowAtTwo) { EXPECT_EQ(Knee({10, 1, 0.8, 0.5, 0.2, 0}).k, 2); }

TEST(KneeTest, StraightLineKeepsAllHeads) {
  // Equidistant heads: each extra cluster removes the same error.
  const KneeResult r = Knee({8, 7, 6, 5, 4, 3, 2, 1, 0});
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.k, 9);
  EXPECT_NEAR(r.strength, 0.0, 1e-12);
}

TEST(KneeTest, ConcaveCurveKeepsAllHeads) {
  // Error stays high until the very end: no plateau to stop at.
  EXPECT_EQ(Knee({10, 9.9, 9.7, 9.4, 9, 0}).k, 6);
}

TEST(KneeTest, WeakKneeBelowThresholdKeepsAllHeads) {
  // d(k) = 0, 0.15, 0.1, 0.1, 0: peaks at 0.15 at k = 2 (x = 0.25, y = 0.6).
  const std::vector<double> curve = {1.0, 0.6, 0.4, 0.15, 0.0};
  KneeResult r = Knee(curve, 0.1);
  EXPECT_NEAR(r.strength, 0.15, 1e-12);
  EXPECT_EQ(r.k, 2);
  r = Knee(curve, 0.2);
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.k, 5);
}

TEST(KneeTest, TiesPickTheSmallestK) {
  // d(2) = 0.75 - 0.25 = 0.5, d(3) = 0.5 - 0 = 0.5.
  EXPECT_EQ(Knee({1, 0.25, 0, 0, 0}).k, 2);
}

TEST(KneeTest, RisingBlipIsIgnored) {
  // A restart stuck in a local optimum at k = 3: running minimum.
  const KneeResult r = Knee({10, 2, 3, 1, 0});
  EXPECT_EQ(r.k, 2);
  EXPECT_DOUBLE_EQ(r.normalized[2], r.normalized[1]);
}

TEST(KneeTest, ThreeKvGroups) {
  EXPECT_EQ(Knee({1, 0.1, 0}).k, 2);   // two groups nearly identical
  EXPECT_EQ(Knee({1, 0.5, 0}).k, 3);   // equidistant: keep all
  EXPECT_EQ(Knee({1, 0.45, 0}).k, 3);  // strength 0.05 < 0.1
}

TEST(KneeTest, DegenerateCurves) {
  EXPECT_EQ(Knee({0, 0, 0, 0}).k, 1);  // all heads identical
  EXPECT_EQ(Knee({3, 3, 3}).k, 1);     // more clusters never help
  EXPECT_EQ(Knee({5}).k, 1);
  EXPECT_EQ(Knee({5, 0}).k, 2);  // no interior point: keep both
}

TEST(KneeTest, MaxResidualRaisesAnAggressiveKnee) {
  // Kneedle picks 2 (y = 0.3); asking to lose at most 20% moves it to 4.
  const std::vector<double> curve = {1.0, 0.3, 0.25, 0.2, 0.1, 0.05, 0.0};
  absl::StatusOr<KneeResult> r = FindKnee(curve, {});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->k, 2);
  EXPECT_FALSE(r->raised);
  r = FindKnee(curve, {.max_residual = 0.2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->k, 4);
  EXPECT_TRUE(r->raised);
  EXPECT_TRUE(r->found);
  r = FindKnee(curve, {.max_residual = 0.6});  // the knee already satisfies it
  EXPECT_EQ(r->k, 2);
  r = FindKnee(curve, {.max_residual = 0.0});
  EXPECT_EQ(r->k, 7);
}

TEST(KneeTest, RejectsBadInput) {
  EXPECT_FALSE(FindKnee(std::vector<double>{1, 0}, {.max_residual = 1.5}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{}, {}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{1, -1}, {}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{1, std::nan("")}, {}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{1, INFINITY}, {}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{1, 0}, {.min_strength = 2}).ok());
  EXPECT_FALSE(FindKnee(std::vector<double>{1, 0}, {.min_strength = std::nan("")}).ok());
}

}  // namespace
}  // namespace chai::engine
