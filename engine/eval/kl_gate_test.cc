// The KL gate: its candidate rule, its greedy loop against a synthetic
// scorer whose answers are known, and the model scorer on the default model
// (an identity plan costs nothing; clustering a layer costs something).
#include "engine/eval/kl_gate.h"

#include <map>
#include <memory>
#include <vector>

#include "engine/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine::eval {
namespace {

using Pairs = std::vector<std::pair<int32_t, int32_t>>;

TEST(GateCandidates, GqaKeyBudgetsFromTheKneeUp) {
  // SmolLM2: 9 query heads over 3 KV heads (G = 3).
  EXPECT_EQ(GateCandidates(3, 9, 3), (Pairs{{3, 1}, {6, 2}}));
  EXPECT_EQ(GateCandidates(4, 9, 3), (Pairs{{6, 2}}));  // 4 clusters need 2 KV heads
  EXPECT_EQ(GateCandidates(7, 9, 3), Pairs{});          // ... 7 need all 3: no saving
  EXPECT_EQ(GateCandidates(9, 9, 3), Pairs{});          // the knee keeps every head
  // Llama-3-8B-like: 32 over 8 (G = 4): budgets double.
  EXPECT_EQ(GateCandidates(4, 32, 8), (Pairs{{4, 1}, {8, 2}, {16, 4}}));
}

TEST(GateCandidates, MultiHeadDoublesTheClusters) {
  EXPECT_EQ(GateCandidates(4, 32, 32), (Pairs{{4, 4}, {8, 8}, {16, 16}}));
  EXPECT_EQ(GateCandidates(32, 32, 32), Pairs{});
}

LlamaConfig SixLayers() {
  LlamaConfig c;
  c.n_layers = 6;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  return c;
}

// KL of a plan = sum over its clustered layers of a per-(layer, key heads)
// cost: s = 1 costs 0.02 * (6 - l), s = 2 costs 0.005 * (6 - l).
absl::StatusOr<KlGateTrial> AdditiveScorer(const ChaiPlan& plan) {
  KlGateTrial t;
  for (int32_t l = 0; l < 6; ++l) {
    if (plan.k_heads[l] == 1) t.mean_kl += 0.02 * (6 - l);
    if (plan.k_heads[l] == 2) t.mean_kl += 0.005 * (6 - l);
  }
  t.top1_agreement = 1.0 - t.mean_kl;
  return t;
}

TEST(RunKlGate, AdmitsLayersGreedilyWithinTheBudgetAndStopsAfterRejections) {
  const LlamaConfig c = SixLayers();
  ChaiPlan knee{std::vector<int32_t>(6, 3), std::vector<int32_t>(6, 1)};
  KlGateOptions o;
  o.budget = 0.05;
  o.max_consecutive_rejections = 2;
  std::vector<KlGateTrial> seen;
  absl::StatusOr<KlGateResult> r =
      RunKlGate(knee, c, o, AdditiveScorer, [&](const KlGateTrial& t) { seen.push_back(t); });
  ASSERT_TRUE(r.ok()) << r.status();
  // Layer 5: (3,1) costs 0.02: in. Layer 4: (3,1) -> 0.06 out, (6,2) -> 0.03
  // in. Layer 3: (3,1) -> 0.09 out, (6,2) -> 0.045 in. Layers 2 and 1: both
  // candidates over budget: two rejections in a row, layer 0 never tried.
  EXPECT_EQ(r->plan.clusters, (std::vector<int32_t>{9, 9, 9, 6, 6, 3}));
  EXPECT_EQ(r->plan.k_heads, (std::vector<int32_t>{3, 3, 3, 2, 2, 1}));
  EXPECT_NEAR(r->mean_kl, 0.045, 1e-12);
  ASSERT_EQ(r->trials.size(), 9u);
  EXPECT_EQ(seen.size(), 9u);
  const std::vector<std::tuple<int32_t, int32_t, bool>> want = {
      {5, 1, true},  {4, 1, false}, {4, 2, true},  {3, 1, false}, {3, 2, true},
      {2, 1, false}, {2, 2, false}, {1, 1, false}, {1, 2, false}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r->trials[i].layer, std::get<0>(want[i])) << i;
    EXPECT_EQ(r->trials[i].k_heads, std::get<1>(want[i])) << i;
    EXPECT_EQ(r->trials[i].accepted, std::get<2>(want[i])) << i;
  }
}

TEST(RunKlGate, ExplicitOrderZeroBudgetAndBadInput) {
  const LlamaConfig c = SixLayers();
  ChaiPlan knee{std::vector<int32_t>(6, 4), std::vector<int32_t>(6, 2)};
  KlGateOptions o;
  o.budget = 0.0;
  o.layer_order = {0, 5};
  absl::StatusOr<KlGateResult> r = RunKlGate(knee, c, o, AdditiveScorer, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->trials.size(), 2u);
  EXPECT_EQ(r->plan.clusters, std::vector<int32_t>(6, 9));  // nothing fits a zero budget
  EXPECT_EQ(r->mean_kl, 0.0);

  o.layer_order = {0, 0};
  EXPECT_EQ(RunKlGate(knee, c, o, AdditiveScorer, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.layer_order = {};
  knee.clusters.pop_back();
  EXPECT_EQ(RunKlGate(knee, c, o, AdditiveScorer, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.budget = -1;
  EXPECT_EQ(RunKlGate(knee, c, o, AdditiveScorer, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ModelPlanScorer, IdentityPlanCostsNothingAndClusteringCostsSomething) {
  absl::StatusOr<LoadedModel> m = LoadModel(chai::testing::DefaultModelPath());
  ASSERT_TRUE(m.ok()) << m.status();
  std::unique_ptr<kernels::Backend> backend = kernels::CreateCpuBackend({.threads = 0});
  const LlamaConfig& c = m->weights->config;
  std::vector<std::vector<int32_t>> samples;
  for (const char* text : {"The history of the Roman Empire spans many centuries, from the "
                           "founding of the city to the fall of Constantinople in 1453.",
                           "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # prints 5 "
                           "and then the program ends here."}) {
    std::vector<int32_t> ids = m->tokenizer->Encode(text, true, false);
    ASSERT_GE(ids.size(), 24u);
    ids.resize(24);
    samples.push_back(ids);
  }
  PlanScorer score = ModelPlanScorer(m->weights.get(), backend.get(), &samples, 8);
  ChaiPlan plan;
  plan.clusters.assign(c.n_layers, static_cast<int32_t>(c.n_heads));
  plan.k_heads.assign(c.n_layers, static_cast<int32_t>(c.n_kv_heads));
  absl::StatusOr<KlGateTrial> same = score(plan);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_LT(same->mean_kl, 1e-8);
  EXPECT_EQ(same->top1_agreement, 1.0);

  plan.clusters[c.n_layers - 2] = 3;
  plan.k_heads[c.n_layers - 2] = 1;
  absl::StatusOr<KlGateTrial> clustered = score(plan);
  ASSERT_TRUE(clustered.ok()) << clustered.status();
  EXPECT_GT(clustered->mean_kl, 1e-6);

  std::vector<std::vector<int32_t>> too_short = {{1, 2, 3}};
  EXPECT_EQ(ModelPlanScorer(m->weights.get(), backend.get(), &too_short, 0)(plan).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chai::engine::eval
