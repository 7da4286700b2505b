#include "engine/eval/kl_gate.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "engine/eval/eval_engine.h"
#include "engine/eval/metrics.h"

namespace chai::engine::eval {

absl::Status KlGateOptions::Validate(const LlamaConfig& config) const {
  if (!(budget >= 0)) return absl::InvalidArgumentError("KL budget must be >= 0");
  if (max_consecutive_rejections < 1) {
    return absl::InvalidArgumentError("max_consecutive_rejections must be >= 1");
  }
  if (score_from < 0) return absl::InvalidArgumentError("score_from must be >= 0");
  std::vector<bool> seen(config.n_layers, false);
  for (int32_t l : layer_order) {
    if (l < 0 || l >= config.n_layers || seen[l]) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer order holds ", l, ": out of range or repeated"));
    }
    seen[l] = true;
  }
  return absl::OkStatus();
}

std::vector<std::pair<int32_t, int32_t>> GateCandidates(int32_t knee_clusters, int32_t n_heads,
                                                        int32_t n_kv_heads) {
  std::vector<std::pair<int32_t, int32_t>> out;
  if (knee_clusters >= n_heads) return out;
  const int32_t group = n_heads / n_kv_heads;
  for (int32_t s = std::max(1, (knee_clusters + group - 1) / group); s < n_kv_heads; s *= 2) {
    out.emplace_back(s * group, s);
  }
  return out;
}

absl::StatusOr<KlGateResult> RunKlGate(const ChaiPlan& knee, const LlamaConfig& config,
                                       const KlGateOptions& options, const PlanScorer& scorer,
                                       const std::function<void(const KlGateTrial&)>& on_trial) {
  if (absl::Status s = options.Validate(config); !s.ok()) return s;
  const int32_t n_layers = static_cast<int32_t>(config.n_layers);
  const int32_t n_heads = static_cast<int32_t>(config.n_heads);
  const int32_t n_kv = static_cast<int32_t>(config.n_kv_heads);
  if (static_cast<int64_t>(knee.clusters.size()) != n_layers ||
      static_cast<int64_t>(knee.k_heads.size()) != n_layers) {
    return absl::InvalidArgumentError("knee plan does not have one entry per layer");
  }
  std::vector<int32_t> order = options.layer_order;
  if (order.empty()) {
    order.resize(n_layers);
    std::iota(order.rbegin(), order.rend(), 0);
  }
  KlGateResult result;
  result.plan.clusters.assign(n_layers, n_heads);
  result.plan.k_heads.assign(n_layers, n_kv);
  int32_t rejected_in_a_row = 0;
  for (int32_t l : order) {
    bool admitted = false;
    for (const auto& [k, s] : GateCandidates(knee.clusters[l], n_heads, n_kv)) {
      ChaiPlan trial_plan = result.plan;
      trial_plan.clusters[l] = k;
      trial_plan.k_heads[l] = s;
      absl::StatusOr<KlGateTrial> t = scorer(trial_plan);
      if (!t.ok()) return t.status();
      KlGateTrial trial = *t;
      trial.layer = l;
      trial.clusters = k;
      trial.k_heads = s;
      trial.accepted = trial.mean_kl <= options.budget;
      result.trials.push_back(trial);
      if (on_trial) on_trial(trial);
      if (trial.accepted) {
        result.plan = std::move(trial_plan);
        result.mean_kl = trial.mean_kl;
        result.top1_agreement = trial.top1_agreement;
        admitted = true;
        break;
      }
    }
    rejected_in_a_row = admitted ? 0 : rejected_in_a_row + 1;
    if (rejected_in_a_row >= options.max_consecutive_rejections) break;
  }
  return result;
}

PlanScorer ModelPlanScorer(const ModelWeights* weights, kernels::Backend* backend,
                           const std::vector<std::vector<int32_t>>* samples, int32_t score_from) {
  return [=](const ChaiPlan& plan) -> absl::StatusOr<KlGateTrial> {
    if (samples->empty()) return absl::InvalidArgumentError("no KL samples");
    const int32_t n = static_cast<int32_t>(samples->front().size());
    if (n < 5 || score_from >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("KL samples of ", n, " tokens: need >= 5 and more than ", score_from));
    }
    EvalEngineOptions o;
    o.max_batch_tokens = n;
    o.max_seqs = 1;
    o.kv_positions = n;
    o.max_seq_len = n;
    o.chai = plan;
    absl::StatusOr<std::unique_ptr<EvalEngine>> engine = EvalEngine::Create(weights, backend, o);
    if (!engine.ok()) return engine.status();
    std::vector<int32_t> positions(n), rows(n - score_from);
    std::iota(positions.begin(), positions.end(), 0);
    std::iota(rows.begin(), rows.end(), score_from);
    KlAccumulator kl;
    for (const std::vector<int32_t>& sample : *samples) {
      if (static_cast<int32_t>(sample.size()) != n) {
        return absl::InvalidArgumentError("KL samples differ in length");
      }
      absl::StatusOr<SeqSlots> seq = (*engine)->AddSequence(n, /*chai=*/true);
      if (!seq.ok()) return seq.status();
      const std::vector<SeqSlots> seqs(n, *seq);
      absl::Status s = (*engine)->Step({sample, positions, seqs, rows});
      if (s.ok()) {
        for (int32_t i = 0; i < static_cast<int32_t>(rows.size()); ++i) {
          kl.Add((*engine)->plain_logits(i), (*engine)->chai_logits(i));
        }
      }
      (*engine)->RemoveSequence(*seq);
      if (!s.ok()) return s;
    }
    KlGateTrial t;
    t.mean_kl = kl.mean_kl();
    t.top1_agreement = kl.top1_agreement();
    return t;
  };
}

}  // namespace chai::engine::eval
