#include "engine/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace chai::engine::eval {
namespace {

float MaxOf(std::span<const float> v) { return *std::max_element(v.begin(), v.end()); }

int32_t FirstMaxIndex(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

LogSoftmaxNorm LogSoftmaxNorm::Of(std::span<const float> logits) {
  LogSoftmaxNorm n;
  n.max = MaxOf(logits);
  double sum = 0;
  for (float x : logits) sum += std::exp(x - n.max);  // float exp, as expf
  n.log_sum = std::log(sum);
  return n;
}

double LogSoftmaxAt(std::span<const float> logits, int32_t token) {
  return LogSoftmaxNorm::Of(logits).LogProb(logits[token]);
}

int32_t NumpyArgmax(std::span<const double> values) {
  int32_t best = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) return static_cast<int32_t>(i);
    if (values[i] > values[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

int64_t CodePointLength(absl::string_view utf8) {
  int64_t n = 0;
  for (unsigned char c : utf8) n += (c & 0xC0) != 0x80;
  return n;
}

McPrediction PredictMc(std::span<const double> logliks, std::span<const std::string> choices) {
  std::vector<double> norm(logliks.size());
  for (size_t i = 0; i < logliks.size(); ++i) {
    norm[i] = logliks[i] / static_cast<double>(CodePointLength(choices[i]));
  }
  return {NumpyArgmax(logliks), NumpyArgmax(norm)};
}

double Mean(std::span<const double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double MeanStderr(std::span<const double> values) {
  const size_t n = values.size();
  if (n < 2) return std::numeric_limits<double>::quiet_NaN();
  const double mu = Mean(values);
  double ss = 0;
  for (double v : values) ss += (v - mu) * (v - mu);
  return std::sqrt(ss / static_cast<double>(n - 1)) / std::sqrt(static_cast<double>(n));
}

McMetrics AggregateMc(std::span<const McPrediction> predictions, std::span<const int32_t> gold) {
  std::vector<double> acc(predictions.size()), acc_norm(predictions.size());
  for (size_t i = 0; i < predictions.size(); ++i) {
    acc[i] = predictions[i].pred == gold[i] ? 1.0 : 0.0;
    acc_norm[i] = predictions[i].pred_norm == gold[i] ? 1.0 : 0.0;
  }
  McMetrics m;
  m.n = static_cast<int64_t>(predictions.size());
  m.acc = Mean(acc);
  m.acc_stderr = MeanStderr(acc);
  m.acc_norm = Mean(acc_norm);
  m.acc_norm_stderr = MeanStderr(acc_norm);
  return m;
}

double PerplexityAccumulator::Perplexity() const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(nll_ / static_cast<double>(count_));
}

double PerplexityAccumulator::Stderr() const {
  if (count_ < 2) return std::numeric_limits<double>::quiet_NaN();
  const double nll = nll_ / static_cast<double>(count_);
  const double var = nll2_ / static_cast<double>(count_) - nll * nll;
  if (!(var > 0)) return std::numeric_limits<double>::quiet_NaN();
  return std::sqrt(var / static_cast<double>(count_ - 1)) * std::exp(nll);
}

double KlDivergence(std::span<const float> p_logits, std::span<const float> q_logits) {
  const LogSoftmaxNorm np = LogSoftmaxNorm::Of(p_logits);
  const LogSoftmaxNorm nq = LogSoftmaxNorm::Of(q_logits);
  double kl = 0;
  for (size_t i = 0; i < p_logits.size(); ++i) {
    const double lp = np.LogProb(p_logits[i]);
    const double lq = nq.LogProb(q_logits[i]);
    const double p = std::exp(lp);
    if (p > 0) kl += p * (lp - lq);
  }
  // Rounding can leave a tiny negative sum for identical distributions.
  return std::max(kl, 0.0);
}

void KlAccumulator::Add(std::span<const float> plain, std::span<const float> chai) {
  sum_kl_ += KlDivergence(plain, chai);
  agree_ += FirstMaxIndex(plain) == FirstMaxIndex(chai);
  ++n_;
}

}  // namespace chai::engine::eval
