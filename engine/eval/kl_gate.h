// Fidelity-gated CHAI config selection (`chai calibrate --kl-budget`).
//
// The K-means knee (engine/chai/calibration.h) says how well heads cluster,
// not what clustering costs the model's predictions; on models whose error
// curves have no plateau (SmolLM2: docs/FIDELITY.md) the knee plan is far
// too aggressive. This gate measures the cost directly: the mean
// KL(P_plain || P_CHAI) of next-token distributions on calibration text
// (never evaluation data), and admits layers greedily while it stays within
// a budget.
//
// Algorithm (deterministic):
//   plan := plain everywhere
//   for l in layer_order (default: last layer first; later layers cluster
//   more cheaply, as the paper found):
//     for each candidate (k, s) of layer l, most K saved first:
//       if KL(plan with layer l := (k, s)) <= budget: keep it; next layer
//     no candidate fits: layer l stays plain; stop after
//     `max_consecutive_rejections` such layers in a row
// Candidates of layer l, most K saved first: key budgets s = s0, 2 s0, 4 s0,
// ... < n_kv with s0 = max(1, ceil(k_l / G)), G = H / n_kv and k_l the
// knee's cluster count (a layer whose knee keeps all heads has none). Each
// comes with k = s * G clusters: K saved depends on s alone, and with every
// query head of a kept KV head its own representative, only the dropped
// heads' queries share scores, the least fidelity a saving of s can cost.
// The knee thus bounds how far a layer may go, and KL decides. For
// multi-head attention (G = 1) this is k = s = k_l, 2 k_l, 4 k_l, ....
//
// Cost: one KL measurement per candidate tried, each a plain + CHAI pass
// over the samples (the CHAI pass starts at the plan's first CHAI layer,
// eval_engine.h).
//
// Thread-safety: one call at a time per backend.
#ifndef CHAI_ENGINE_EVAL_KL_GATE_H_
#define CHAI_ENGINE_EVAL_KL_GATE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/model/model_weights.h"
#include "kernels/backend.h"

namespace chai::engine::eval {

struct KlGateOptions {
  double budget = 0.05;              // largest mean KL (nats) the final plan may have
  std::vector<int32_t> layer_order;  // empty: n_layers - 1 down to 0
  int32_t max_consecutive_rejections = 3;
  // Scored positions of each sample: [score_from, end); earlier positions
  // are context only (as perplexity windows score their second half).
  int32_t score_from = 0;

  absl::Status Validate(const LlamaConfig& config) const;
};

// One candidate tried.
struct KlGateTrial {
  int32_t layer = 0;
  int32_t clusters = 0;
  int32_t k_heads = 0;
  double mean_kl = 0;
  double top1_agreement = 0;
  bool accepted = false;
};

struct KlGateResult {
  ChaiPlan plan;                    // plain (clusters = H, k_heads = n_kv) where not admitted
  std::vector<KlGateTrial> trials;  // in the order tried
  double mean_kl = 0;               // of `plan` (0 when nothing was admitted)
  double top1_agreement = 1;
};

// Measures a plan: mean KL and top-1 agreement over the scored positions.
using PlanScorer = std::function<absl::StatusOr<KlGateTrial>(const ChaiPlan& plan)>;

// The candidates of layer l as described above, most K saved first.
std::vector<std::pair<int32_t, int32_t>> GateCandidates(int32_t knee_clusters, int32_t n_heads,
                                                        int32_t n_kv_heads);

// The greedy loop over any scorer (tests pass a synthetic one).
// `knee`: per-layer knee choices, [n_layers] each (only clusters is used). Errors: InvalidArgument
// for bad options or plan sizes; the scorer's errors.
absl::StatusOr<KlGateResult> RunKlGate(const ChaiPlan& knee, const LlamaConfig& config,
                                       const KlGateOptions& options, const PlanScorer& scorer,
                                       const std::function<void(const KlGateTrial&)>& on_trial);

// The scorer on the model: every sample runs as one sequence, plain and CHAI
// over the same batch. REQUIRES: samples of equal length > score_from, each
// at least 5 tokens (CHAI clusters from positions 0..4).
PlanScorer ModelPlanScorer(const ModelWeights* weights, kernels::Backend* backend,
                           const std::vector<std::vector<int32_t>>* samples, int32_t score_from);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_KL_GATE_H_
