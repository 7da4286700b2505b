// AssignHeads / ClusterLayer: CHAI's GQA head assignment under a key budget
// (engine/chai/head_map.h).
#include "engine/chai/head_map.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace chai::engine {
namespace {

// Distances where heads with equal labels are 0.1 apart and others 0.9,
// except `near` pairs at 0.5.
std::vector<double> Distances(const std::vector<int32_t>& labels) {
  const size_t n = labels.size();
  std::vector<double> d(n * n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) d[i * n + j] = i == j ? 0 : labels[i] == labels[j] ? 0.1 : 0.9;
  }
  return d;
}

void ExpectValid(const HeadMap& m, int32_t n_heads, int32_t n_kv, int32_t k_heads) {
  const int32_t group = n_heads / n_kv;
  int32_t used = 0;
  for (int32_t j = 0; j < n_kv; ++j) used += m.k_src[j] >= 0;
  EXPECT_EQ(used, k_heads);
  for (int32_t h = 0; h < n_heads; ++h) {
    const int32_t r = m.score_head[h];
    ASSERT_EQ(m.score_head[r], r) << "head " << h;
    EXPECT_EQ(m.k_src[m.k_slot[r]], r / group) << "representative " << r;
  }
}

TEST(AssignHeadsTest, AllKeysKeptIsThePapersLowestIndexRule) {
  const std::vector<int32_t> labels = {0, 1, 1, 2, 0, 2, 2, 2, 0};
  absl::StatusOr<HeadMap> m = AssignHeads(labels, Distances(labels), 9, 3, 3);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->score_head, (std::vector<int32_t>{0, 1, 1, 3, 0, 3, 3, 3, 0}));
  EXPECT_EQ(m->k_src, (std::vector<int32_t>{0, 1, 2}));
  ExpectValid(*m, 9, 3, 3);
}

TEST(AssignHeadsTest, IdentityWhenEveryHeadIsItsOwnCluster) {
  std::vector<int32_t> labels(9);
  for (int32_t h = 0; h < 9; ++h) labels[h] = h;
  absl::StatusOr<HeadMap> m = AssignHeads(labels, Distances(labels), 9, 3, 3);
  ASSERT_TRUE(m.ok());
  const HeadMap id = IdentityHeadMap(9, 3);
  EXPECT_EQ(m->score_head, id.score_head);
  EXPECT_EQ(m->k_slot, id.k_slot);
  EXPECT_EQ(m->k_src, id.k_src);
}

TEST(AssignHeadsTest, KeyBudgetKeepsTheKvHeadCoveringMostClusters) {
  // KV head 1 (heads 3-5) holds a head of every cluster; KV head 0 only of
  // cluster 0.
  const std::vector<int32_t> labels = {0, 0, 0, 0, 1, 2, 1, 2, 2};
  absl::StatusOr<HeadMap> m = AssignHeads(labels, Distances(labels), 9, 3, 1);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->k_src, (std::vector<int32_t>{1, -1, -1}));
  // Representatives: lowest head of each cluster on KV head 1.
  EXPECT_EQ(m->score_head, (std::vector<int32_t>{3, 3, 3, 3, 4, 5, 4, 5, 5}));
  ExpectValid(*m, 9, 3, 1);
}

TEST(AssignHeadsTest, UncoveredClusterJoinsTheNearestCoveredOne) {
  // Cluster 1 lives only on KV head 2, which the budget of 1 drops (KV head
  // 0 covers clusters 0 and 2). Cluster 1 is nearer cluster 2 than 0.
  const std::vector<int32_t> labels = {0, 2, 2, 0, 0, 0, 1, 1, 1};
  std::vector<double> d = Distances(labels);
  for (int32_t i : {6, 7, 8}) {
    for (int32_t j : {1, 2}) d[i * 9 + j] = d[j * 9 + i] = 0.3;
  }
  absl::StatusOr<HeadMap> m = AssignHeads(labels, d, 9, 3, 1);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->k_src, (std::vector<int32_t>{0, -1, -1}));
  EXPECT_EQ(m->score_head, (std::vector<int32_t>{0, 1, 1, 0, 0, 0, 1, 1, 1}));
  ExpectValid(*m, 9, 3, 1);
}

TEST(AssignHeadsTest, RejectsInconsistentInput) {
  const std::vector<int32_t> labels = {0, 1, 2, 3};
  EXPECT_FALSE(AssignHeads(labels, Distances(labels), 4, 3, 1).ok());  // 4 % 3
  EXPECT_FALSE(AssignHeads(labels, Distances(labels), 4, 2, 3).ok());  // budget > kv
  EXPECT_FALSE(AssignHeads(labels, Distances(labels), 4, 2, 0).ok());
  EXPECT_FALSE(AssignHeads(labels, std::vector<double>(3), 4, 2, 1).ok());
  const std::vector<int32_t> negative = {0, -1, 0, 0};
  EXPECT_FALSE(AssignHeads(negative, Distances(labels), 4, 2, 1).ok());
}

TEST(ClusterLayerTest, RandomHeadsGiveValidMapsForEveryBudget) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const int32_t n_heads = 9, n_kv = 3, hd = 16, n_tok = 5;
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<float> q(n_tok * n_heads * hd), k(n_tok * n_kv * hd);
    for (float& x : q) x = normal(rng);
    for (float& x : k) x = normal(rng);
    for (int32_t clusters = 1; clusters <= n_heads; ++clusters) {
      for (int32_t budget = 1; budget <= n_kv; ++budget) {
        absl::StatusOr<HeadMap> m =
            ClusterLayer(q, k, {n_heads, n_kv, hd, n_tok, clusters, budget});
        ASSERT_TRUE(m.ok()) << m.status();
        ExpectValid(*m, n_heads, n_kv, budget);
        EXPECT_LE(m->num_representatives(), clusters);
        if (budget == n_kv) {
          EXPECT_EQ(m->num_representatives(), clusters);
        }
      }
    }
  }
}

TEST(ClusterLayerTest, RejectsOutOfRangeCounts) {
  std::vector<float> q(5 * 4 * 8, 0.5f), k(5 * 2 * 8, 0.5f);
  EXPECT_FALSE(ClusterLayer(q, k, {4, 2, 8, 5, 0, 1}).ok());
  EXPECT_FALSE(ClusterLayer(q, k, {4, 2, 8, 5, 5, 1}).ok());
  EXPECT_FALSE(ClusterLayer(q, k, {4, 2, 8, 5, 2, 3}).ok());
  EXPECT_FALSE(ClusterLayer(std::vector<float>(3), k, {4, 2, 8, 5, 2, 1}).ok());
}

}  // namespace
}  // namespace chai::engine
