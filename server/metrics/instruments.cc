#include "server/metrics/instruments.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace chai::server::metrics {

void Counter::Increment(double delta) {
  if (!(delta >= 0)) return;  // also catches NaN
  value_.fetch_add(delta, std::memory_order_relaxed);
}

absl::Status ValidateBuckets(const std::vector<double>& upper_bounds) {
  if (upper_bounds.empty()) {
    return absl::InvalidArgumentError("histogram needs at least one finite bucket bound");
  }
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "histogram bucket bound ", i, " is not finite (+Inf is implicit): ", upper_bounds[i]));
    }
    if (i > 0 && !(upper_bounds[i] > upper_bounds[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram bucket bounds must increase strictly; bound ", i, " (",
                       upper_bounds[i], ") <= bound ", i - 1, " (", upper_bounds[i - 1], ")"));
    }
  }
  return absl::OkStatus();
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // First bound >= value: `le` is inclusive.
  const size_t bucket =
      std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), value) - upper_bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

HistogramPoint Histogram::Snapshot() const {
  HistogramPoint point;
  point.upper_bounds = upper_bounds_;
  point.bucket_counts.resize(upper_bounds_.size());
  uint64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds_.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    point.bucket_counts[i] = cumulative;
  }
  point.count = cumulative + counts_[upper_bounds_.size()].load(std::memory_order_relaxed);
  point.sum = sum_.load(std::memory_order_relaxed);
  return point;
}

}  // namespace chai::server::metrics
