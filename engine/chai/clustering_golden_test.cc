// Compares chai_clustering with tests/golden/chai/clustering_golden.json,
// produced by scipy + scikit-learn in tests/golden/make_clustering_golden.py:
// cosine distances (scipy pdist), the average-linkage matrix Z (scipy
// linkage) and the k-cluster partitions (sklearn AgglomerativeClustering,
// linkage="average", metric="precomputed"), plus, for the qk_* sets, the head
// features computed from q and k.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "engine/chai/clustering.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

using json = nlohmann::json;

json LoadGolden() { return chai::testing::LoadGoldenJson("chai/clustering_golden.json"); }

std::vector<float> ToFloats(const json& a) { return chai::testing::JsonFloats(a); }

// scipy's condensed vector -> the [n, n] matrix AverageLinkage takes.
std::vector<double> Square(const std::vector<double>& condensed, int32_t n) {
  std::vector<double> out(static_cast<size_t>(n) * n, 0.0);
  size_t idx = 0;
  for (int32_t i = 0; i < n; ++i) {
    for (int32_t j = i + 1; j < n; ++j) {
      out[static_cast<size_t>(i) * n + j] = condensed[idx];
      out[static_cast<size_t>(j) * n + i] = condensed[idx];
      ++idx;
    }
  }
  return out;
}

// True iff a and b describe the same partition (labels may be permuted).
bool SamePartition(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  if (a.size() != b.size()) return false;
  std::map<int32_t, int32_t> fwd, bwd;
  for (size_t i = 0; i < a.size(); ++i) {
    if (fwd.try_emplace(a[i], b[i]).first->second != b[i]) return false;
    if (bwd.try_emplace(b[i], a[i]).first->second != a[i]) return false;
  }
  return true;
}

TEST(ClusteringGoldenTest, PartitionsMatchSklearn) {
  const json golden = LoadGolden();
  const json& cases = golden.at("cases");
  ASSERT_GE(cases.size(), 50u);
  int cuts = 0, cuts_from_features = 0, cuts_relaxed = 0, tie_sets = 0;
  double max_distance_error = 0.0;
  for (const json& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const int32_t n = c.at("n").get<int32_t>();
    const int32_t dim = c.at("dim").get<int32_t>();
    const std::vector<float> features = ToFloats(c.at("features"));
    ASSERT_EQ(features.size(), static_cast<size_t>(n) * dim);
    const std::vector<double> scipy_distance =
        Square(c.at("distance").get<std::vector<double>>(), n);
    const bool tie_sensitive = c.at("tie_sensitive").get<bool>();
    tie_sets += tie_sensitive ? 1 : 0;
    // Ground-truth groups of the blocks_* and dups_* sets (absent elsewhere).
    std::vector<int32_t> groups;
    if (c.contains("groups")) groups = c.at("groups").get<std::vector<int32_t>>();
    const int32_t n_groups =
        groups.empty() ? 0 : 1 + *std::max_element(groups.begin(), groups.end());
    // Only sets of exact duplicates should be tie-sensitive; anything else
    // would make the golden itself ambiguous.
    ASSERT_TRUE(!tie_sensitive || name.starts_with("dups_"));

    // Cosine distances against scipy's pdist.
    absl::StatusOr<std::vector<double>> ours = CosineDistanceMatrix(features, n, dim);
    ASSERT_TRUE(ours.ok()) << ours.status();
    for (size_t i = 0; i < ours->size(); ++i) {
      const double err = std::abs((*ours)[i] - scipy_distance[i]);
      max_distance_error = std::max(max_distance_error, err);
      ASSERT_LE(err, 1e-6) << "entry " << i;
    }

    // The dendrogram against scipy's Z, on scipy's own distances.
    absl::StatusOr<std::vector<LinkageMerge>> z = AverageLinkage(scipy_distance, n);
    ASSERT_TRUE(z.ok()) << z.status();
    const json& want_z = c.at("linkage");
    ASSERT_EQ(z->size(), want_z.size());
    for (size_t i = 0; i < z->size(); ++i) {
      SCOPED_TRACE("merge " + std::to_string(i));
      EXPECT_EQ((*z)[i].a, want_z[i].at(0).get<int32_t>());
      EXPECT_EQ((*z)[i].b, want_z[i].at(1).get<int32_t>());
      EXPECT_NEAR((*z)[i].height, want_z[i].at(2).get<double>(), 1e-12);
      EXPECT_EQ((*z)[i].size, want_z[i].at(3).get<int32_t>());
    }

    for (const json& cut : c.at("cuts")) {
      const int32_t k = cut.at("k").get<int32_t>();
      SCOPED_TRACE("k=" + std::to_string(k));
      const std::vector<int32_t> want = cut.at("labels").get<std::vector<int32_t>>();
      // Same distances as sklearn saw: must match even where distances tie.
      absl::StatusOr<std::vector<int32_t>> exact = AverageLinkageClusters(scipy_distance, n, k);
      ASSERT_TRUE(exact.ok()) << exact.status();
      EXPECT_TRUE(SamePartition(*exact, want));
      ++cuts;
      // The full pipeline from features. Our distances differ from scipy's by
      // rounding (~1e-16), which cannot change the result unless the input
      // ties. The tie-sensitive sets are groups of exact duplicate heads:
      // cutting them into k <= #groups clusters is still unambiguous (the
      // groups), but for k > #groups the algorithm must split some group,
      // and which duplicates get split is decided by comparing distances
      // that are mathematically equal and differ only by rounding, in
      // sklearn as here. There we require a valid answer: exactly k clusters,
      // each inside one group.
      absl::StatusOr<std::vector<int32_t>> from_features = AverageLinkageClusters(*ours, n, k);
      ASSERT_TRUE(from_features.ok()) << from_features.status();
      if (tie_sensitive && k > n_groups) {
        std::map<int32_t, int32_t> group_of_cluster;
        for (int32_t h = 0; h < n; ++h) {
          EXPECT_EQ(group_of_cluster.try_emplace((*from_features)[h], groups[h]).first->second,
                    groups[h])
              << "cluster of head " << h << " mixes distinct heads";
        }
        EXPECT_EQ(static_cast<int32_t>(group_of_cluster.size()), k);
        ++cuts_relaxed;
      } else {
        EXPECT_TRUE(SamePartition(*from_features, want));
        ++cuts_from_features;
      }
    }
  }
  std::printf(
      "[golden] %zu feature sets (%d tie-sensitive), %d cuts on scipy distances, "
      "%d cuts from features identical, %d tie-broken cuts from features checked for validity; "
      "max |cosine distance - scipy| = %.3g\n",
      cases.size(), tie_sets, cuts, cuts_from_features, cuts_relaxed, max_distance_error);
  EXPECT_EQ(cuts_from_features + cuts_relaxed, cuts);
}

TEST(ClusteringGoldenTest, HeadFeaturesMatchNumpy) {
  const json golden = LoadGolden();
  int sets = 0;
  for (const json& c : golden.at("cases")) {
    if (!c.contains("qk")) continue;
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const json& qk = c.at("qk");
    HeadFeatureOptions options;
    options.n_heads = qk.at("n_heads").get<int32_t>();
    options.n_kv_heads = qk.at("n_kv_heads").get<int32_t>();
    options.head_dim = qk.at("head_dim").get<int32_t>();
    options.n_tokens = qk.at("n_tokens").get<int32_t>();
    options.causal = qk.at("causal").get<bool>();
    const std::vector<float> q = ToFloats(qk.at("q"));
    const std::vector<float> k = ToFloats(qk.at("k"));
    absl::StatusOr<std::vector<float>> features = ComputeHeadFeatures(q, k, options);
    ASSERT_TRUE(features.ok()) << features.status();
    const std::vector<float> want = ToFloats(c.at("features"));
    ASSERT_EQ(features->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR((*features)[i], want[i], 1e-6) << "feature " << i;
    }
    ++sets;
  }
  EXPECT_GE(sets, 10);
}

}  // namespace
}  // namespace chai::engine
