// The three instrument kinds of the metrics library: Counter, Gauge and
// Histogram with fixed buckets. Updates are lock-free atomics, cheap enough
// for the engine thread's per-token path; reads (a scrape) see each value
// atomically, and a histogram's count always equals its +Inf bucket.
//
// Instruments are created by a Registry (registry.h), which owns them; they
// live as long as the registry and are never moved.
//
// Thread-safety: every method is safe to call from any thread.
#ifndef CHAI_SERVER_METRICS_INSTRUMENTS_H_
#define CHAI_SERVER_METRICS_INSTRUMENTS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "server/metrics/exposition.h"

namespace chai::server::metrics {

// A value that only goes up (reset only by a process restart).
class Counter {
 public:
  // REQUIRES: delta >= 0. A negative or NaN delta is dropped, because a
  // counter that goes down reads as a restart to Prometheus' rate().
  void Increment(double delta = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

  void Fill(MetricPoint* point) const { point->value = Value(); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Increment(double delta = 1.0) { value_.fetch_add(delta, std::memory_order_relaxed); }
  void Decrement(double delta = 1.0) { value_.fetch_add(-delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

  void Fill(MetricPoint* point) const { point->value = Value(); }

 private:
  std::atomic<double> value_{0.0};
};

// OK when `upper_bounds` is non-empty, finite and strictly increasing (the
// +Inf bucket is implicit); INVALID_ARGUMENT naming the first offender.
absl::Status ValidateBuckets(const std::vector<double>& upper_bounds);

// Counts observations into fixed buckets. Bucket i holds the observations v
// with upper_bounds[i-1] < v <= upper_bounds[i] (Prometheus' `le` is
// inclusive); values above the last bound go to the +Inf bucket.
class Histogram {
 public:
  // REQUIRES: ValidateBuckets(upper_bounds).ok().
  explicit Histogram(std::vector<double> upper_bounds);

  // A NaN observation is dropped: it would turn _sum into NaN for good.
  void Observe(double value);

  // Cumulative bucket counts, count and sum. Taken while other threads
  // observe, the sum may miss an observation the counts include (or the
  // reverse); the counts themselves are always consistent with `count`.
  HistogramPoint Snapshot() const;
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

  void Fill(MetricPoint* point) const { point->histogram = Snapshot(); }

 private:
  const std::vector<double> upper_bounds_;
  // Per-bucket (not cumulative) counts; the last one is the +Inf bucket.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0.0};
};

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_INSTRUMENTS_H_
