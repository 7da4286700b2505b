// The serving daemon's Prometheus metrics (DESIGN.md section 3): vLLM's
// metric names and bucket boundaries with the chai_ prefix, CHAI's KV-cache
// savings, build info and the process_* metrics, fed through the engine's
// EngineObserver hooks. docs/SERVING.md ("Metrics") lists every metric.
//
//   absl::StatusOr<std::unique_ptr<ServingMetrics>> m = ServingMetrics::Create(options);
//   // Hand m->get() to the engine as its EngineObserver, and serve
//   // (*m)->registry() with MetricsHttpServer (metrics_http.h).
//
// Which requests count where:
//   - a request that finishes with length/stop/eos/cancelled:
//     chai_request_success_total{finished_reason}; one that finishes with
//     kError: chai_request_failure_total{reason=<status code>}. Both observe
//     the per-request histograms (e2e, queue, prompt/generation tokens, and
//     TTFT when a token was produced), as vLLM does for aborted requests.
//   - a request the engine rejected at Submit (OnRequestRejected), or that
//     the front end refused before the engine saw it (RecordFrontEndFailure):
//     only chai_request_failure_total{reason}.
// Failure reasons are the lower-case canonical code names
// ("invalid_argument", "resource_exhausted", "deadline_exceeded",
// "unauthenticated", ...); every code's and every finish reason's series
// exists from the start at 0, so rate() sees the first increment.
//
// Ownership: owns its Registry. Thread-safety: all methods are thread-safe;
// the observer hooks are lock-free except OnClusterConfig (a short mutex).
#ifndef CHAI_SERVER_METRICS_SERVING_METRICS_H_
#define CHAI_SERVER_METRICS_SERVING_METRICS_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/serving/engine_observer.h"
#include "server/metrics/instruments.h"
#include "server/metrics/registry.h"

namespace chai::server::metrics {

// Labels of chai_build_info. Defaults describe this binary's build
// (DefaultBuildInfo()).
struct BuildInfo {
  std::string version;
  std::string revision;  // git commit at configure time, or "unknown"
  std::string compiler;
  std::string build_type;  // CMAKE_BUILD_TYPE
};
BuildInfo DefaultBuildInfo();

struct ServingMetricsOptions {
  // Upper end of the chai_request_{prompt,generation}_tokens buckets (vLLM
  // builds 1, 2, 5, 10, 20, 50, ... up to max_model_len). >= 1.
  int64_t max_model_len = 8192;
  BuildInfo build_info = DefaultBuildInfo();
  // Registers the process_* metrics (off only in tests that render exact text).
  bool process_metrics = true;

  absl::Status Validate() const;
};

// vLLM's bucket lists (vllm/v1/metrics/loggers.py), shared with tests and docs.
std::vector<double> TimeToFirstTokenBuckets();
std::vector<double> InterTokenLatencyBuckets();
std::vector<double> RequestLatencyBuckets();  // e2e and queue time
std::vector<double> IterationTokensBuckets();
// vLLM's build_1_2_5_buckets(max_value): 1, 2, 5, 10, ... while <= max_value.
std::vector<double> OneTwoFiveBuckets(int64_t max_value);
// Ours: the online clustering of one request takes microseconds to
// milliseconds.
std::vector<double> ClusteringBuckets();

// "invalid_argument" for INVALID_ARGUMENT and so on; "unknown" for codes
// outside the canonical set (and for OK, which is not a failure).
std::string FailureReason(absl::StatusCode code);

class ServingMetrics : public engine::EngineObserver {
 public:
  // INVALID_ARGUMENT when options.Validate() fails.
  static absl::StatusOr<std::unique_ptr<ServingMetrics>> Create(
      const ServingMetricsOptions& options);

  // engine::EngineObserver (engine thread).
  void OnStep(const engine::StepStats& stats) override;
  void OnInterTokenLatency(double seconds) override;
  void OnRequestFinished(const engine::RequestStats& stats) override;
  void OnRequestRejected(absl::StatusCode code) override;
  void OnClustering(double seconds) override;
  void OnClusterConfig(const std::vector<int32_t>& clusters_per_layer) override;

  // A request the front end refused before it reached the engine
  // (UNAUTHENTICATED, a malformed message, ...); any thread. Do not call it
  // for a Submit the engine rejected: the engine reports that itself.
  void RecordFrontEndFailure(absl::StatusCode code);

  Registry& registry() { return registry_; }
  const Registry& registry() const { return registry_; }
  // The /metrics body.
  std::string Render() const { return registry_.Render(); }

 private:
  ServingMetrics() = default;
  absl::Status Init(const ServingMetricsOptions& options);
  void CountFailure(absl::StatusCode code);

  // Canonical codes run 0..16; index 0 (OK) holds "unknown".
  static constexpr int kNumCodes = 17;

  Registry registry_;

  Histogram* ttft_ = nullptr;
  Histogram* itl_ = nullptr;
  Histogram* e2e_ = nullptr;
  Histogram* queue_time_ = nullptr;
  Histogram* prompt_tokens_ = nullptr;
  Histogram* generation_tokens_ = nullptr;
  Histogram* iteration_tokens_ = nullptr;
  Histogram* clustering_ = nullptr;

  Counter* prompt_tokens_total_ = nullptr;
  Counter* generation_tokens_total_ = nullptr;
  Counter* preemptions_total_ = nullptr;
  Counter* kv_bytes_saved_total_ = nullptr;
  // Indexed by engine::FinishReason (kLength..kCancelled); kError counts as
  // a failure.
  std::array<Counter*, 4> success_{};
  std::array<Counter*, kNumCodes> failure_{};

  Gauge* running_ = nullptr;
  Gauge* waiting_ = nullptr;
  Gauge* kv_usage_ = nullptr;
  Gauge* k_bytes_ = nullptr;
  Gauge* v_bytes_ = nullptr;
  Gauge* kv_bytes_saved_ = nullptr;
  Gauge* kv_saved_ratio_ = nullptr;

  mutable absl::Mutex clusters_mu_;
  std::vector<int32_t> clusters_ ABSL_GUARDED_BY(clusters_mu_);
};

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_SERVING_METRICS_H_
