#include "engine/eval/evaluate.h"

#include "absl/strings/str_cat.h"
#include "engine/eval/requests.h"

namespace chai::engine::eval {
namespace {

McMetrics Metrics(std::span<const McItem> items, const std::vector<std::vector<double>>& sums,
                  std::vector<McPrediction>* predictions_out) {
  std::vector<McPrediction> predictions(items.size());
  std::vector<int32_t> gold(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    predictions[i] = PredictMc(sums[i], items[i].choices);
    gold[i] = items[i].gold;
  }
  McMetrics m = AggregateMc(predictions, gold);
  if (predictions_out != nullptr) *predictions_out = std::move(predictions);
  return m;
}

PerplexityStats Perplexity(const LoglikelihoodScores& scores) {
  PerplexityAccumulator acc;
  for (const auto& window : scores.token_logprobs) {
    for (double lp : window[0]) acc.Add(lp);
  }
  return {acc.Perplexity(), acc.Stderr()};
}

}  // namespace

absl::StatusOr<McEvaluation> EvaluateMultipleChoice(EvalEngine& engine, const Tokenizer& tokenizer,
                                                    std::span<const McItem> items,
                                                    const ProgressFn& progress) {
  if (items.empty()) return absl::InvalidArgumentError("no items to evaluate");
  std::vector<LoglikelihoodRequest> requests;
  requests.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].gold < 0 || items[i].gold >= static_cast<int32_t>(items[i].choices.size())) {
      return absl::InvalidArgumentError(absl::StrCat("item ", i, ": gold index out of range"));
    }
    absl::StatusOr<LoglikelihoodRequest> r = EncodeMcItem(tokenizer, items[i]);
    if (!r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("item ", i, ": ", r.status().message()));
    }
    requests.push_back(*std::move(r));
  }
  absl::StatusOr<LoglikelihoodResult> scored =
      ScoreLoglikelihoods(engine, requests, LoglikelihoodOptions{}, progress);
  if (!scored.ok()) return scored.status();
  McEvaluation out;
  out.plain = Metrics(items, scored->plain.sums, &out.predictions);
  if (engine.has_chai()) out.chai = Metrics(items, scored->chai.sums, nullptr);
  out.kl = scored->kl;
  out.logliks = std::move(scored->plain.sums);
  out.tokens_fed = scored->tokens_fed;
  return out;
}

absl::StatusOr<PerplexityEvaluation> EvaluatePerplexity(EvalEngine& engine,
                                                        const Tokenizer& tokenizer,
                                                        absl::string_view text, int32_t n_ctx,
                                                        int64_t max_windows,
                                                        const ProgressFn& progress) {
  const std::vector<int32_t> tokens = TokenizeForPerplexity(tokenizer, text);
  absl::StatusOr<std::vector<LoglikelihoodRequest>> windows =
      PerplexityWindows(tokens, n_ctx, tokenizer.bos_id(), tokenizer.add_bos(), max_windows);
  if (!windows.ok()) return windows.status();
  LoglikelihoodOptions opts;
  opts.keep_token_logprobs = true;
  absl::StatusOr<LoglikelihoodResult> scored =
      ScoreLoglikelihoods(engine, *windows, opts, progress);
  if (!scored.ok()) return scored.status();
  PerplexityEvaluation out;
  out.n_windows = static_cast<int64_t>(windows->size());
  out.n_tokens = out.n_windows * (n_ctx - 1 - n_ctx / 2);
  out.plain = Perplexity(scored->plain);
  if (engine.has_chai()) out.chai = Perplexity(scored->chai);
  out.kl = scored->kl;
  out.tokens_fed = scored->tokens_fed;
  return out;
}

}  // namespace chai::engine::eval
