// K-means against scikit-learn (tests/golden/make_kmeans_golden.py): with
// the restarts calibration uses (CalibrationOptions: 100), our
// best-of-restarts inertia is never worse than sklearn's KMeans(n_init=10),
// never better than the brute-force optimum (which would mean a wrong
// inertia), and equal to the optimum on the well separated sets.
#include <cstdio>
#include <string>
#include <vector>

#include "engine/chai/calibration.h"
#include "engine/chai/kmeans.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

TEST(KMeansGoldenTest, AtLeastAsGoodAsSklearn) {
  const nlohmann::json g = chai::testing::LoadGoldenJson("chai/calib_kmeans_golden.json");
  ASSERT_GE(g["sets"].size(), 10u);
  int matched_optimum = 0, with_optimum = 0;
  for (const nlohmann::json& set : g["sets"]) {
    const std::string name = set["name"].get<std::string>();
    SCOPED_TRACE(name);
    const int32_t n = set["n"].get<int32_t>(), dim = set["dim"].get<int32_t>();
    const std::vector<double> x = set["points"].get<std::vector<double>>();
    const std::vector<double> sk = set["sklearn_inertia"].get<std::vector<double>>();
    ASSERT_EQ(sk.size(), static_cast<size_t>(n));
    absl::StatusOr<std::vector<double>> ours =
        KMeansErrorCurve(x, n, dim, n, CalibrationOptions().kmeans);
    ASSERT_TRUE(ours.ok()) << ours.status();
    // Absolute slack for sklearn's float64 rounding where the answer is 0.
    const double eps = 1e-12 * (1.0 + sk[0]);
    for (int32_t k = 1; k <= n; ++k) {
      EXPECT_LE((*ours)[k - 1], sk[k - 1] * (1 + 1e-6) + eps) << "k " << k;
    }
    if (set["optimal_inertia"].is_null()) continue;
    const std::vector<double> opt = set["optimal_inertia"].get<std::vector<double>>();
    for (int32_t k = 1; k <= n; ++k) {
      EXPECT_GE((*ours)[k - 1], opt[k - 1] * (1 - 1e-9) - eps) << "k " << k;
      ++with_optimum;
      if ((*ours)[k - 1] <= opt[k - 1] * (1 + 1e-9) + eps) ++matched_optimum;
      if (set["easy"].get<bool>()) {
        EXPECT_NEAR((*ours)[k - 1], opt[k - 1], eps) << "k " << k;
      }
    }
  }
  std::printf("K-means reached the brute-force optimum in %d of %d (set, k) cases\n",
              matched_optimum, with_optimum);
}

}  // namespace
}  // namespace chai::engine
