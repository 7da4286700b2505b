// The numbers `chai eval` reports, computed as the references compute them:
//   - multiple choice as lm-evaluation-harness (api/task.py process_results,
//     api/metrics.py mean / mean_stderr);
//   - perplexity as llama.cpp's perplexity tool (log_softmax, the running nll
//     and nll2 sums, the final "PPL = x +/- y");
//   - CHAI against plain attention: KL divergence and top-1 agreement of the
//     two next-token distributions at the same positions.
//
// Thread-safety: pure functions and plain accumulators (not thread-safe).
#ifndef CHAI_ENGINE_EVAL_METRICS_H_
#define CHAI_ENGINE_EVAL_METRICS_H_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace chai::engine::eval {

// A logit row's softmax normaliser as llama.cpp's perplexity tool computes
// it: the float max and log of the double sum of expf(logit - max).
// log p(t) = (logits[t] - max) - log_sum, in that order of operations.
// REQUIRES: !logits.empty().
struct LogSoftmaxNorm {
  float max = 0;
  double log_sum = 0;

  static LogSoftmaxNorm Of(std::span<const float> logits);
  double LogProb(float logit) const { return (logit - max) - log_sum; }
};

// log softmax(logits)[token]. REQUIRES: token indexes logits.
double LogSoftmaxAt(std::span<const float> logits, int32_t token);

// Index of the largest value as numpy.argmax returns it: the first maximum,
// or the first NaN if there is one. REQUIRES: !values.empty().
int32_t NumpyArgmax(std::span<const double> values);

// Python's len() of a str: Unicode code points of UTF-8 text (bytes that are
// not continuation bytes 10xxxxxx).
int64_t CodePointLength(absl::string_view utf8);

// One item's predictions: acc takes the argmax of the summed log-likelihoods,
// acc_norm the argmax of each sum divided by len(choice) (code points of the
// choice string without the leading space, as the harness's
// completion_len). A zero-length choice divides by zero as numpy does
// (-inf, or NaN for a zero sum).
struct McPrediction {
  int32_t pred = 0;
  int32_t pred_norm = 0;
};
McPrediction PredictMc(std::span<const double> logliks, std::span<const std::string> choices);

// mean and the harness's mean_stderr: sample standard deviation (n - 1) over
// sqrt(n). NaN for n < 2 (the harness divides by zero there).
double Mean(std::span<const double> values);
double MeanStderr(std::span<const double> values);

struct McMetrics {
  int64_t n = 0;
  double acc = 0, acc_stderr = 0, acc_norm = 0, acc_norm_stderr = 0;
};
// Aggregates per-item 0/1 scores. REQUIRES: the spans have equal sizes.
McMetrics AggregateMc(std::span<const McPrediction> predictions, std::span<const int32_t> gold);

// llama.cpp's perplexity accumulator over scored tokens' log-probabilities.
class PerplexityAccumulator {
 public:
  void Add(double logprob) {
    nll_ -= logprob;
    nll2_ += logprob * logprob;
    ++count_;
  }
  int64_t count() const { return count_; }
  // exp(mean nll).
  double Perplexity() const;
  // llama.cpp: sqrt((mean nll^2 - mean nll^2) / (count - 1)) * ppl; NaN
  // when the variance is not positive or count < 2 (llama.cpp prints none).
  double Stderr() const;

 private:
  double nll_ = 0, nll2_ = 0;
  int64_t count_ = 0;
};

// KL(P_plain || P_chai) and top-1 agreement over next-token distributions.
class KlAccumulator {
 public:
  // One position's two logit rows. REQUIRES: equal sizes, non-empty.
  void Add(std::span<const float> plain, std::span<const float> chai);
  int64_t n() const { return n_; }
  double mean_kl() const { return n_ > 0 ? sum_kl_ / n_ : 0.0; }
  double top1_agreement() const { return n_ > 0 ? static_cast<double>(agree_) / n_ : 0.0; }

 private:
  double sum_kl_ = 0;
  int64_t agree_ = 0, n_ = 0;
};

// KL(softmax(p) || softmax(q)) in double. REQUIRES: equal sizes, non-empty.
double KlDivergence(std::span<const float> p_logits, std::span<const float> q_logits);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_METRICS_H_
