// Attention-score features against numpy (tests/golden/make_calib_golden.py).
#include "engine/chai/calibration_features.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

TEST(CalibrationFeaturesTest, MatchesNumpy) {
  const nlohmann::json g = chai::testing::LoadGoldenJson("chai/calib_golden.json");
  ASSERT_EQ(g["attention_features"].size(), 3u);
  for (const nlohmann::json& c : g["attention_features"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const AttentionShape shape{c["n_tokens"].get<int32_t>(), c["n_heads"].get<int32_t>(),
                               c["n_kv_heads"].get<int32_t>(), c["head_dim"].get<int32_t>()};
    const std::vector<float> q = chai::testing::JsonFloats(c["q"]);
    const std::vector<float> k = chai::testing::JsonFloats(c["k"]);
    const std::vector<double> want = c["features"].get<std::vector<double>>();
    absl::StatusOr<std::vector<double>> got = CausalAttentionFeatures(q, k, shape);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), want.size());
    ASSERT_EQ(static_cast<int64_t>(want.size()), shape.features_per_head() * shape.n_heads);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR((*got)[i], want[i], 1e-12) << i;
  }
}

TEST(CalibrationFeaturesTest, RowsAreDistributions) {
  const AttentionShape s{9, 6, 2, 4};
  std::vector<float> q(9 * 6 * 4), k(9 * 2 * 4);
  for (size_t i = 0; i < q.size(); ++i) q[i] = std::sin(0.7f * static_cast<float>(i));
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(1.3f * static_cast<float>(i));
  absl::StatusOr<std::vector<double>> f = CausalAttentionFeatures(q, k, s);
  ASSERT_TRUE(f.ok()) << f.status();
  const int64_t per_head = s.features_per_head();
  EXPECT_EQ(per_head, 45);
  for (int32_t h = 0; h < s.n_heads; ++h) {
    const double* head = f->data() + h * per_head;
    EXPECT_EQ(head[0], 1.0);  // token 0 attends only to itself
    for (int64_t i = 0; i < s.n_tokens; ++i) {
      double sum = 0;
      for (int64_t j = 0; j <= i; ++j) sum += head[i * (i + 1) / 2 + j];
      EXPECT_NEAR(sum, 1.0, 1e-12);
    }
  }
  // Heads 0-2 share KV head 0 and 3-5 KV head 1: with equal queries, heads
  // of one group are identical and the groups differ.
  std::vector<float> same_q(q.size());
  for (int64_t t = 0; t < 9; ++t) {
    for (int32_t h = 0; h < 6; ++h) {
      for (int32_t d = 0; d < 4; ++d) same_q[(t * 6 + h) * 4 + d] = q[(t * 6) * 4 + d];
    }
  }
  f = CausalAttentionFeatures(same_q, k, s);
  ASSERT_TRUE(f.ok());
  for (int64_t i = 0; i < per_head; ++i) {
    EXPECT_EQ((*f)[i], (*f)[per_head + i]);
    EXPECT_EQ((*f)[3 * per_head + i], (*f)[5 * per_head + i]);
  }
  bool differ = false;
  for (int64_t i = 0; i < per_head; ++i) differ |= (*f)[i] != (*f)[3 * per_head + i];
  EXPECT_TRUE(differ);
}

TEST(CalibrationFeaturesTest, RejectsBadInput) {
  const std::vector<float> q(2 * 4 * 3, 0.1f), k(2 * 2 * 3, 0.1f);
  EXPECT_TRUE(CausalAttentionFeatures(q, k, {2, 4, 2, 3}).ok());
  EXPECT_FALSE(CausalAttentionFeatures(q, k, {2, 4, 3, 3}).ok());  // 3 does not divide 4
  EXPECT_FALSE(CausalAttentionFeatures(q, k, {3, 4, 2, 3}).ok());  // sizes
  EXPECT_FALSE(CausalAttentionFeatures(q, k, {0, 4, 2, 3}).ok());
  std::vector<float> bad = q;
  bad[5] = INFINITY;
  EXPECT_FALSE(CausalAttentionFeatures(bad, k, {2, 4, 2, 3}).ok());
}

}  // namespace
}  // namespace chai::engine
