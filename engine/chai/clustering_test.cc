#include "engine/chai/clustering.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::vector<float> RandomFloats(size_t count, uint32_t seed, float lo = 0.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(count);
  for (float& v : out) v = dist(rng);
  return out;
}

// Distance matrix [n, n] from the strict upper triangle, row by row.
std::vector<double> SymmetricFromUpper(int32_t n, const std::vector<double>& upper) {
  std::vector<double> d(static_cast<size_t>(n) * n, 0.0);
  size_t idx = 0;
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = i + 1; j < n; ++j) {
      d[static_cast<size_t>(i) * n + j] = d[static_cast<size_t>(j) * n + i] = upper[idx++];
    }
  }
  return d;
}

TEST(ClusteringTest, KEqualsNGivesSingletons) {
  const int32_t n = 12;
  const std::vector<float> features = RandomFloats(n * 25, 1);
  absl::StatusOr<ClusterMap> map = ClusterHeads(features, n, 25, n);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->num_clusters(), n);
  for (int32_t h = 0; h < n; ++h) EXPECT_EQ(map->rep_of(h), h);
  absl::StatusOr<std::vector<double>> d = CosineDistanceMatrix(features, n, 25);
  ASSERT_TRUE(d.ok());
  absl::StatusOr<std::vector<int32_t>> labels = AverageLinkageClusters(*d, n, n);
  ASSERT_TRUE(labels.ok());
  EXPECT_THAT(*labels, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
}

TEST(ClusteringTest, KEqualsOneGivesOneClusterWithRepresentativeZero) {
  const int32_t n = 9;
  absl::StatusOr<ClusterMap> map = ClusterHeads(RandomFloats(n * 25, 2), n, 25, 1);
  ASSERT_TRUE(map.ok()) << map.status();
  EXPECT_EQ(map->num_clusters(), 1);
  EXPECT_THAT(map->representatives(), ElementsAre(0));
  for (int32_t h = 0; h < n; ++h) EXPECT_EQ(map->rep_of(h), 0);
}

// A hand-computed UPGMA: pairs {0,1} at 1 and {2,3} at 2 merge first; the
// average of the four cross distances (4 + 6 + 8 + 10) / 4 = 7 is the root.
TEST(ClusteringTest, AverageLinkageByHand) {
  const std::vector<double> d = SymmetricFromUpper(4, {1, 4, 6, 8, 10, 2});
  absl::StatusOr<std::vector<LinkageMerge>> z = AverageLinkage(d, 4);
  ASSERT_TRUE(z.ok()) << z.status();
  ASSERT_EQ(z->size(), 3u);
  EXPECT_EQ((*z)[0].a, 0);
  EXPECT_EQ((*z)[0].b, 1);
  EXPECT_EQ((*z)[0].height, 1.0);
  EXPECT_EQ((*z)[1].a, 2);
  EXPECT_EQ((*z)[1].b, 3);
  EXPECT_EQ((*z)[1].height, 2.0);
  EXPECT_EQ((*z)[2].a, 4);
  EXPECT_EQ((*z)[2].b, 5);
  EXPECT_EQ((*z)[2].height, 7.0);
  EXPECT_EQ((*z)[2].size, 4);
  absl::StatusOr<std::vector<int32_t>> labels = AverageLinkageClusters(d, 4, 2);
  ASSERT_TRUE(labels.ok());
  EXPECT_THAT(*labels, ElementsAre(0, 0, 1, 1));
  labels = AverageLinkageClusters(d, 4, 3);
  ASSERT_TRUE(labels.ok());
  EXPECT_THAT(*labels, ElementsAre(0, 0, 1, 2));
}

// Average (not single or complete) linkage decides this one: head 2 is 3 from
// head 0 and 5 from head 1 (mean 4), head 3 is 1 from head 0 but 8 from head 1
// (mean 4.5); so {0,1} takes 2 before 3. Single linkage would take 3 first,
// complete linkage would take neither before merging 2 and 3 (at 4.2).
TEST(ClusteringTest, UsesAverageLinkage) {
  const std::vector<double> d = SymmetricFromUpper(4, {0.5, 3, 1, 5, 8, 4.2});
  absl::StatusOr<std::vector<LinkageMerge>> z = AverageLinkage(d, 4);
  ASSERT_TRUE(z.ok());
  EXPECT_EQ((*z)[1].a, 2);
  EXPECT_EQ((*z)[1].b, 4);
  EXPECT_DOUBLE_EQ((*z)[1].height, 4.0);
  EXPECT_DOUBLE_EQ((*z)[2].height, (4.5 * 2 + 4.2 * 1) / 3);  // sizes 2 and 1
}

// Groups of exactly identical heads stay together for every k up to the
// number of groups: their distance is exactly 0, so all merges inside groups
// come before any merge between groups.
TEST(ClusteringTest, IdenticalHeadsShareACluster) {
  const int32_t groups = 5, n = 32, dim = 25;
  const std::vector<float> protos = RandomFloats(groups * dim, 3);
  std::mt19937 rng(4);
  std::vector<int32_t> group_of(n);
  std::vector<float> features(n * dim);
  for (int32_t h = 0; h < n; ++h) {
    group_of[h] = h < groups ? h : static_cast<int32_t>(rng() % groups);
  }
  std::shuffle(group_of.begin(), group_of.end(), rng);  // groups interleave
  for (int32_t h = 0; h < n; ++h) {
    std::copy_n(protos.begin() + group_of[h] * dim, dim, features.begin() + h * dim);
  }
  for (int32_t k = 1; k <= groups; ++k) {
    absl::StatusOr<ClusterMap> map = ClusterHeads(features, n, dim, k);
    ASSERT_TRUE(map.ok()) << map.status();
    EXPECT_EQ(map->num_clusters(), k);
    for (int32_t a = 0; a < n; ++a) {
      for (int32_t b = 0; b < n; ++b) {
        if (group_of[a] == group_of[b]) {
          EXPECT_EQ(map->rep_of(a), map->rep_of(b)) << a << " " << b;
        }
      }
    }
  }
  // With k == groups the clusters are exactly the groups.
  absl::StatusOr<ClusterMap> map = ClusterHeads(features, n, dim, groups);
  ASSERT_TRUE(map.ok());
  for (int32_t a = 0; a < n; ++a) {
    for (int32_t b = 0; b < n; ++b) {
      EXPECT_EQ(group_of[a] == group_of[b], map->rep_of(a) == map->rep_of(b)) << a << " " << b;
    }
  }
}

TEST(ClusteringTest, RepresentativeIsLowestIndexOfCluster) {
  for (int32_t n : {4, 9, 32, 40}) {
    const std::vector<float> features = RandomFloats(n * 25, 10 + n);
    absl::StatusOr<std::vector<double>> d = CosineDistanceMatrix(features, n, 25);
    ASSERT_TRUE(d.ok());
    for (int32_t k = 1; k <= n; ++k) {
      absl::StatusOr<std::vector<int32_t>> labels = AverageLinkageClusters(*d, n, k);
      ASSERT_TRUE(labels.ok());
      absl::StatusOr<ClusterMap> map = ClusterMap::FromLabels(*labels);
      ASSERT_TRUE(map.ok());
      ASSERT_EQ(map->num_clusters(), k);
      std::vector<int32_t> lowest(k, n);
      for (int32_t h = 0; h < n; ++h) lowest[(*labels)[h]] = std::min(lowest[(*labels)[h]], h);
      std::vector<int32_t> reps;
      for (int32_t h = 0; h < n; ++h) {
        EXPECT_EQ(map->rep_of(h), lowest[(*labels)[h]]);
        if (map->is_representative(h)) reps.push_back(h);
      }
      EXPECT_THAT(map->representatives(), ElementsAreArray(reps));  // ascending
      EXPECT_TRUE(std::is_sorted(lowest.begin(), lowest.end()));    // canonical labels
    }
  }
}

TEST(ClusterMapTest, FromArbitraryLabels) {
  const std::vector<int32_t> labels = {7, 3, 7, 100, 3, 0};
  absl::StatusOr<ClusterMap> map = ClusterMap::FromLabels(labels);
  ASSERT_TRUE(map.ok());
  EXPECT_THAT(map->rep_of_all(), ElementsAre(0, 1, 0, 3, 1, 5));
  EXPECT_THAT(map->representatives(), ElementsAre(0, 1, 3, 5));
  EXPECT_EQ(ClusterMap::Identity(3).rep_of_all(), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(ClusterMap::FromLabels(std::vector<int32_t>{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterMap::FromLabels(std::vector<int32_t>{0, -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ClusteringTest, RejectsInvalidInput) {
  const std::vector<float> features = RandomFloats(4 * 25, 5);
  EXPECT_EQ(ClusterHeads(features, 4, 25, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterHeads(features, 4, 25, 5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterHeads(features, 5, 25, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ClusterHeads(features, 0, 25, 1).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> bad = features;
  bad[7] = std::nanf("");
  EXPECT_EQ(CosineDistanceMatrix(bad, 4, 25).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<double> d = SymmetricFromUpper(3, {1, 2, 3});
  EXPECT_TRUE(AverageLinkageClusters(d, 3, 2).ok());
  d[1] = INFINITY;
  EXPECT_EQ(AverageLinkageClusters(d, 3, 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(AverageLinkageClusters(d, 2, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusteringTest, CosineDistanceEdgeCases) {
  // Rows: a, 3a (parallel), orthogonal to a, opposite of a, zero, zero.
  const std::vector<float> f = {1, 2, 0, 3, 6, 0, -2, 1, 0, -1, -2, 0, 0, 0, 0, 0, 0, 0};
  absl::StatusOr<std::vector<double>> d = CosineDistanceMatrix(f, 6, 3);
  ASSERT_TRUE(d.ok()) << d.status();
  auto at = [&](int i, int j) { return (*d)[i * 6 + j]; };
  for (int i = 0; i < 6; ++i) EXPECT_EQ(at(i, i), 0.0);
  EXPECT_NEAR(at(0, 1), 0.0, 1e-15);
  EXPECT_NEAR(at(0, 2), 1.0, 1e-15);
  EXPECT_NEAR(at(0, 3), 2.0, 1e-15);
  EXPECT_EQ(at(0, 4), 1.0);  // zero vs non-zero: treated as orthogonal
  EXPECT_EQ(at(4, 5), 0.0);  // two zero vectors: identical
  for (int i = 0; i < 6; ++i) {
    for (int j = 0; j < 6; ++j) EXPECT_EQ(at(i, j), at(j, i));
  }
}

// One head, head_dim 4, three tokens: k_j = 2 e_j, so q = e_0 scores
// [1, 0, 0] after the 1/sqrt(4) scale and q = e_1 scores [0, 1, 0].
TEST(HeadFeaturesTest, MatchesHandComputedSoftmax) {
  const std::vector<float> k = {2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0};
  const std::vector<float> q = {1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0};
  HeadFeatureOptions options{.n_heads = 1, .n_kv_heads = 1, .head_dim = 4, .n_tokens = 3};
  const double e = std::exp(1.0);
  absl::StatusOr<std::vector<float>> causal = ComputeHeadFeatures(q, k, options);
  ASSERT_TRUE(causal.ok()) << causal.status();
  const std::vector<double> want_causal = {1,           0,           0,  //
                                           1 / (1 + e), e / (1 + e), 0,  //
                                           e / (e + 2), 1 / (e + 2), 1 / (e + 2)};
  for (size_t i = 0; i < 9; ++i) EXPECT_NEAR((*causal)[i], want_causal[i], 1e-7) << i;
  options.causal = false;
  absl::StatusOr<std::vector<float>> full = ComputeHeadFeatures(q, k, options);
  ASSERT_TRUE(full.ok());
  const std::vector<double> want_full = {e / (e + 2), 1 / (e + 2), 1 / (e + 2),  //
                                         1 / (e + 2), e / (e + 2), 1 / (e + 2),  //
                                         e / (e + 2), 1 / (e + 2), 1 / (e + 2)};
  for (size_t i = 0; i < 9; ++i) EXPECT_NEAR((*full)[i], want_full[i], 1e-7) << i;
}

// Large scores must not overflow: softmax subtracts the row maximum.
TEST(HeadFeaturesTest, StableForLargeScores) {
  const std::vector<float> k = {1000, 0, 0, 1000};
  const std::vector<float> q = {1000, 0, 1000, 1};
  HeadFeatureOptions options{.n_heads = 1, .n_kv_heads = 1, .head_dim = 2, .n_tokens = 2};
  options.causal = false;
  absl::StatusOr<std::vector<float>> f = ComputeHeadFeatures(q, k, options);
  ASSERT_TRUE(f.ok()) << f.status();
  for (float v : *f) EXPECT_TRUE(std::isfinite(v));
  EXPECT_EQ((*f)[0], 1.0f);
  EXPECT_EQ((*f)[1], 0.0f);
  // Row 1 scores 1e6 / sqrt(2) vs 1e3 / sqrt(2): without the max
  // subtraction exp() would overflow to inf / inf = NaN.
  EXPECT_EQ((*f)[2], 1.0f);
  EXPECT_EQ((*f)[3], 0.0f);
}

// Causal row i is the non-causal row i restricted to keys 0..i and
// renormalised; row 0 is [1, 0, ...] and the last row is the same in both.
TEST(HeadFeaturesTest, CausalIsRenormalisedPrefixOfFull) {
  const int32_t heads = 4, dim = 16, t = 5;
  const std::vector<float> q = RandomFloats(t * heads * dim, 6, -1.5f, 1.5f);
  const std::vector<float> k = RandomFloats(t * heads * dim, 7, -1.5f, 1.5f);
  HeadFeatureOptions options{.n_heads = heads, .n_kv_heads = heads, .head_dim = dim};
  absl::StatusOr<std::vector<float>> causal = ComputeHeadFeatures(q, k, options);
  options.causal = false;
  absl::StatusOr<std::vector<float>> full = ComputeHeadFeatures(q, k, options);
  ASSERT_TRUE(causal.ok() && full.ok());
  ASSERT_EQ(causal->size(), static_cast<size_t>(heads * t * t));
  for (int32_t h = 0; h < heads; ++h) {
    for (int32_t i = 0; i < t; ++i) {
      const float* c = causal->data() + (h * t + i) * t;
      const float* f = full->data() + (h * t + i) * t;
      double prefix = 0.0, full_sum = 0.0;
      for (int32_t j = 0; j <= i; ++j) prefix += f[j];
      for (int32_t j = 0; j < t; ++j) full_sum += f[j];
      EXPECT_NEAR(full_sum, 1.0, 1e-6);
      for (int32_t j = 0; j < t; ++j) {
        if (j > i) {
          EXPECT_EQ(c[j], 0.0f);
          EXPECT_GT(f[j], 0.0f);
        } else {
          EXPECT_NEAR(c[j], f[j] / prefix, 1e-6);
        }
      }
    }
    EXPECT_EQ(causal->at(h * t * t), 1.0f);
  }
  EXPECT_NE(*causal, *full);
}

// GQA: query head h reads kv head h / (n_heads / n_kv_heads), i.e. the same
// result as MHA with each kv head repeated for its group.
TEST(HeadFeaturesTest, GqaMapsQueryHeadsToKvGroups) {
  const int32_t heads = 6, kv_heads = 2, dim = 8, t = 5, group = heads / kv_heads;
  const std::vector<float> q = RandomFloats(t * heads * dim, 8, -2.0f, 2.0f);
  const std::vector<float> k = RandomFloats(t * kv_heads * dim, 9, -2.0f, 2.0f);
  std::vector<float> k_repeated(t * heads * dim);
  for (int32_t j = 0; j < t; ++j) {
    for (int32_t h = 0; h < heads; ++h) {
      std::copy_n(k.begin() + (j * kv_heads + h / group) * dim, dim,
                  k_repeated.begin() + (j * heads + h) * dim);
    }
  }
  absl::StatusOr<std::vector<float>> gqa =
      ComputeHeadFeatures(q, k, {.n_heads = heads, .n_kv_heads = kv_heads, .head_dim = dim});
  absl::StatusOr<std::vector<float>> mha =
      ComputeHeadFeatures(q, k_repeated, {.n_heads = heads, .n_kv_heads = heads, .head_dim = dim});
  ASSERT_TRUE(gqa.ok() && mha.ok());
  EXPECT_EQ(*gqa, *mha);

  // Same query for every head: heads of one group get identical features,
  // heads of different groups do not.
  std::vector<float> q_same(t * heads * dim);
  for (int32_t j = 0; j < t; ++j) {
    for (int32_t h = 0; h < heads; ++h) {
      std::copy_n(q.begin() + j * heads * dim, dim, q_same.begin() + (j * heads + h) * dim);
    }
  }
  absl::StatusOr<std::vector<float>> f =
      ComputeHeadFeatures(q_same, k, {.n_heads = heads, .n_kv_heads = kv_heads, .head_dim = dim});
  ASSERT_TRUE(f.ok());
  auto row = [&](int32_t h) {
    return std::vector<float>(f->begin() + h * t * t, f->begin() + (h + 1) * t * t);
  };
  EXPECT_EQ(row(0), row(2));
  EXPECT_EQ(row(3), row(5));
  EXPECT_NE(row(0), row(3));
  absl::StatusOr<ClusterMap> map = ClusterHeads(*f, heads, t * t, 2);
  ASSERT_TRUE(map.ok());
  EXPECT_THAT(map->rep_of_all(), ElementsAre(0, 0, 0, 3, 3, 3));
}

TEST(HeadFeaturesTest, RejectsBadShapes) {
  const std::vector<float> q(5 * 4 * 8), k(5 * 2 * 8);
  HeadFeatureOptions options{.n_heads = 4, .n_kv_heads = 2, .head_dim = 8};
  EXPECT_TRUE(ComputeHeadFeatures(q, k, options).ok());
  EXPECT_EQ(ComputeHeadFeatures(std::span(q).first(q.size() - 1), k, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ComputeHeadFeatures(q, std::span(k).first(k.size() - 8), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.n_kv_heads = 3;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.n_kv_heads = 2;
  options.n_tokens = 0;
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
}

// The whole online step for a LLaMA-7B-sized layer (32 heads, head_dim 128)
// is deterministic: repeated calls give the same map. (Its speed is a
// benchmark matter, issue 3 item 9, not a unit-test assertion.)
TEST(ClusteringTest, ThirtyTwoHeadsIsDeterministic) {
  const int32_t heads = 32, dim = 128, t = 5;
  const std::vector<float> q = RandomFloats(t * heads * dim, 11, -1.0f, 1.0f);
  const std::vector<float> k = RandomFloats(t * heads * dim, 12, -1.0f, 1.0f);
  const HeadFeatureOptions options{.n_heads = heads, .n_kv_heads = heads, .head_dim = dim};
  absl::StatusOr<std::vector<float>> features = ComputeHeadFeatures(q, k, options);
  ASSERT_TRUE(features.ok());
  absl::StatusOr<ClusterMap> first = ClusterHeads(*features, heads, t * t, 4);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->representatives().size(), 4u);
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<ClusterMap> map = ClusterHeads(*features, heads, t * t, 4);
    ASSERT_TRUE(map.ok());
    ASSERT_EQ(map->rep_of_all(), first->rep_of_all());
  }
}

}  // namespace
}  // namespace chai::engine
