// Task-level evaluation: multiple-choice accuracy and perplexity, for plain
// attention and (when the engine has a CHAI plan) CHAI over the same tokens.
// Ties requests.h (tokenization), loglikelihood.h (the batched scorer) and
// metrics.h (the reference formulas) together.
//
// Thread-safety: not thread-safe (drives the engine).
#ifndef CHAI_ENGINE_EVAL_EVALUATE_H_
#define CHAI_ENGINE_EVAL_EVALUATE_H_

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/eval/eval_engine.h"
#include "engine/eval/loglikelihood.h"
#include "engine/eval/metrics.h"
#include "engine/eval/tasks.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::engine::eval {

struct McEvaluation {
  McMetrics plain;
  std::optional<McMetrics> chai;  // with a CHAI plan
  KlAccumulator kl;
  // [item][choice] summed continuation log-likelihoods (plain attention).
  std::vector<std::vector<double>> logliks;
  std::vector<McPrediction> predictions;
  int64_t tokens_fed = 0;
};

// Scores `items` (all of them; callers apply --limit first).
absl::StatusOr<McEvaluation> EvaluateMultipleChoice(EvalEngine& engine, const Tokenizer& tokenizer,
                                                    std::span<const McItem> items,
                                                    const ProgressFn& progress);

struct PerplexityStats {
  double ppl = 0;
  double ppl_stderr = 0;  // NaN where llama.cpp prints none
};

struct PerplexityEvaluation {
  int64_t n_windows = 0;
  int64_t n_tokens = 0;  // scored tokens: n_windows * (n_ctx - 1 - n_ctx / 2)
  PerplexityStats plain;
  std::optional<PerplexityStats> chai;
  KlAccumulator kl;
  int64_t tokens_fed = 0;
};

// llama.cpp-style perplexity of `text` (requests.h for the windows).
// max_windows <= 0: every full window.
absl::StatusOr<PerplexityEvaluation> EvaluatePerplexity(EvalEngine& engine,
                                                        const Tokenizer& tokenizer,
                                                        absl::string_view text, int32_t n_ctx,
                                                        int64_t max_windows,
                                                        const ProgressFn& progress);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_EVALUATE_H_
