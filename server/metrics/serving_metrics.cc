#include "server/metrics/serving_metrics.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "engine/serving/engine_observer.h"
#include "engine/serving/request.h"
#include "server/metrics/process_collector.h"

namespace chai::server::metrics {
namespace {

// Registration can only fail on a programmer error (a bad or duplicate name
// here); Init turns that into a status instead of a crash.
template <typename T>
absl::Status Assign(absl::StatusOr<T*> result, T** out) {
  if (!result.ok()) return result.status();
  *out = *result;
  return absl::OkStatus();
}

#define METRICS_RETURN_IF_ERROR(expr)         \
  do {                                        \
    if (absl::Status _s = (expr); !_s.ok()) { \
      return _s;                              \
    }                                         \
  } while (0)

// The success label of each non-error finish reason, in enum order.
constexpr const char* kSuccessReasons[] = {"length", "stop", "eos", "cancelled"};
static_assert(static_cast<int>(engine::FinishReason::kCancelled) == 3 &&
                  static_cast<int>(engine::FinishReason::kError) == 4,
              "kSuccessReasons follows engine::FinishReason");

}  // namespace

std::vector<double> TimeToFirstTokenBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,  0.5,   0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}

std::vector<double> InterTokenLatencyBuckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
          0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
}

std::vector<double> RequestLatencyBuckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

std::vector<double> IterationTokensBuckets() {
  return {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
}

std::vector<double> OneTwoFiveBuckets(int64_t max_value) {
  std::vector<double> out;
  for (int64_t scale = 1; scale <= max_value; scale *= 10) {
    for (int64_t m : {1, 2, 5}) {
      if (m * scale > max_value) return out;
      out.push_back(static_cast<double>(m * scale));
    }
    if (scale > max_value / 10) break;  // the next scale would overflow or exceed
  }
  return out;
}

std::vector<double> ClusteringBuckets() {
  return {1e-5, 2.5e-5, 5e-5,  1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3,
          5e-3, 0.01,   0.025, 0.05, 0.1,    0.25, 0.5,  1.0};
}

std::string FailureReason(absl::StatusCode code) {
  const int value = static_cast<int>(code);
  if (value <= 0 || value > 16) return "unknown";
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

absl::Status ServingMetricsOptions::Validate() const {
  if (max_model_len < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics: max_model_len must be >= 1, got ", max_model_len));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ServingMetrics>> ServingMetrics::Create(
    const ServingMetricsOptions& options) {
  METRICS_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<ServingMetrics> metrics(new ServingMetrics());
  METRICS_RETURN_IF_ERROR(metrics->Init(options));
  return metrics;
}

absl::Status ServingMetrics::Init(const ServingMetricsOptions& options) {
  Registry& r = registry_;
  const std::vector<double> token_buckets = OneTwoFiveBuckets(options.max_model_len);

  // Request-level histograms (vLLM names).
  METRICS_RETURN_IF_ERROR(Assign(
      r.AddHistogram("chai_time_to_first_token_seconds",
                     "Time from a request's arrival to its first generated token, in seconds.",
                     TimeToFirstTokenBuckets()),
      &ttft_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_inter_token_latency_seconds",
                            "Time between two consecutive tokens of a request, in seconds.",
                            InterTokenLatencyBuckets()),
             &itl_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_e2e_request_latency_seconds",
                            "Time from a request's arrival to its end, in seconds.",
                            RequestLatencyBuckets()),
             &e2e_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_request_queue_time_seconds",
                            "Time a request waited before it was first scheduled, in seconds.",
                            RequestLatencyBuckets()),
             &queue_time_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_request_prompt_tokens", "Prompt tokens per finished request.",
                            token_buckets),
             &prompt_tokens_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_request_generation_tokens",
                            "Generated tokens per finished request.", token_buckets),
             &generation_tokens_));
  METRICS_RETURN_IF_ERROR(Assign(
      r.AddHistogram("chai_iteration_tokens", "Tokens (prompt and decode) in each engine step.",
                     IterationTokensBuckets()),
      &iteration_tokens_));

  // Counters.
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddCounter("chai_prompt_tokens_total", "Prompt (prefill) tokens processed."),
             &prompt_tokens_total_));
  METRICS_RETURN_IF_ERROR(Assign(r.AddCounter("chai_generation_tokens_total", "Tokens generated."),
                                 &generation_tokens_total_));
  absl::StatusOr<Family<Counter>*> success = r.AddCounterFamily(
      "chai_request_success_total",
      "Requests that finished without error, by finish reason (length, stop, eos, cancelled).",
      {"finished_reason"});
  if (!success.ok()) return success.status();
  for (size_t i = 0; i < success_.size(); ++i) {
    METRICS_RETURN_IF_ERROR(Assign((*success)->Get({kSuccessReasons[i]}), &success_[i]));
  }
  absl::StatusOr<Family<Counter>*> failure = r.AddCounterFamily(
      "chai_request_failure_total",
      "Requests that failed or were rejected, by canonical status code.", {"reason"});
  if (!failure.ok()) return failure.status();
  // Index 0 (OK, never a failure) shares "unknown" with code 2.
  for (int code = 1; code < kNumCodes; ++code) {
    METRICS_RETURN_IF_ERROR(Assign(
        (*failure)->Get({FailureReason(static_cast<absl::StatusCode>(code))}), &failure_[code]));
  }
  failure_[0] = failure_[static_cast<int>(absl::StatusCode::kUnknown)];
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddCounter("chai_num_preemptions_total",
                          "Sequences preempted (to be recomputed) when KV blocks ran out."),
             &preemptions_total_));

  // Scheduler and KV-cache gauges.
  METRICS_RETURN_IF_ERROR(Assign(
      r.AddGauge("chai_num_requests_running", "Requests holding KV blocks in the running batch."),
      &running_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddGauge("chai_num_requests_waiting", "Requests queued and not yet scheduled."),
             &waiting_));
  METRICS_RETURN_IF_ERROR(Assign(
      r.AddGauge("chai_kv_cache_usage_ratio", "Fraction of KV-cache blocks in use (0 to 1)."),
      &kv_usage_));

  // CHAI.
  absl::StatusOr<Family<Gauge>*> kv_bytes =
      r.AddGaugeFamily("chai_kv_cache_bytes",
                       "KV-cache bytes held by running sequences, by cache (k or v).", {"cache"});
  if (!kv_bytes.ok()) return kv_bytes.status();
  METRICS_RETURN_IF_ERROR(Assign((*kv_bytes)->Get({"k"}), &k_bytes_));
  METRICS_RETURN_IF_ERROR(Assign((*kv_bytes)->Get({"v"}), &v_bytes_));
  METRICS_RETURN_IF_ERROR(Assign(
      r.AddGauge("chai_kv_cache_bytes_saved",
                 "K-cache bytes CHAI does not hold now, against plain attention for the same "
                 "running sequences."),
      &kv_bytes_saved_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddCounter("chai_kv_cache_bytes_saved_total",
                          "K-cache bytes CHAI saved, summed over finished requests (each request's "
                          "final length times its per-token saving)."),
             &kv_bytes_saved_total_));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddGauge("chai_kv_cache_saved_ratio",
                        "Fraction of the K+V cache plain attention would hold for the running "
                        "sequences that CHAI saves (0 to 1)."),
             &kv_saved_ratio_));
  METRICS_RETURN_IF_ERROR(r.AddCallback(
      "chai_clusters", "Attention-head clusters per layer in the CHAI config in force.",
      MetricType::kGauge, [this] {
        absl::MutexLock lock(&clusters_mu_);
        std::vector<MetricPoint> points(clusters_.size());
        for (size_t layer = 0; layer < clusters_.size(); ++layer) {
          points[layer].labels = {{"layer", absl::StrCat(layer)}};
          points[layer].value = clusters_[layer];
        }
        return points;
      }));
  METRICS_RETURN_IF_ERROR(
      Assign(r.AddHistogram("chai_clustering_seconds",
                            "Time of one request's online head clustering (all CHAI layers), "
                            "in seconds.",
                            ClusteringBuckets()),
             &clustering_));

  // Build info: a constant 1 carrying the build in its labels.
  absl::StatusOr<Family<Gauge>*> build =
      r.AddGaugeFamily("chai_build_info", "Build of this chai binary; the value is always 1.",
                       {"version", "revision", "compiler", "build_type"});
  if (!build.ok()) return build.status();
  const BuildInfo& b = options.build_info;
  absl::StatusOr<Gauge*> build_gauge =
      (*build)->Get({b.version, b.revision, b.compiler, b.build_type});
  if (!build_gauge.ok()) return build_gauge.status();
  (*build_gauge)->Set(1);

  if (options.process_metrics) METRICS_RETURN_IF_ERROR(RegisterProcessMetrics(&r));
  return absl::OkStatus();
}

void ServingMetrics::OnStep(const engine::StepStats& stats) {
  iteration_tokens_->Observe(stats.num_tokens);
  prompt_tokens_total_->Increment(stats.num_prompt_tokens);
  generation_tokens_total_->Increment(stats.num_generated);
  preemptions_total_->Increment(stats.preempted);
  running_->Set(stats.running);
  waiting_->Set(stats.waiting);
  kv_usage_->Set(stats.kv_usage_ratio);
  k_bytes_->Set(static_cast<double>(stats.k_bytes_in_use));
  v_bytes_->Set(static_cast<double>(stats.v_bytes_in_use));
  kv_bytes_saved_->Set(static_cast<double>(stats.k_bytes_saved));
  // Plain attention would hold the K bytes in use plus those saved, and the
  // same V bytes (CHAI never shrinks V).
  const double full = static_cast<double>(stats.k_bytes_in_use) +
                      static_cast<double>(stats.k_bytes_saved) +
                      static_cast<double>(stats.v_bytes_in_use);
  kv_saved_ratio_->Set(full > 0 ? static_cast<double>(stats.k_bytes_saved) / full : 0.0);
}

void ServingMetrics::OnInterTokenLatency(double seconds) { itl_->Observe(seconds); }

void ServingMetrics::OnRequestFinished(const engine::RequestStats& stats) {
  const int reason = static_cast<int>(stats.finish_reason);
  if (stats.finish_reason == engine::FinishReason::kError || reason < 0 ||
      reason >= static_cast<int>(success_.size())) {
    CountFailure(stats.error_code);
  } else {
    success_[reason]->Increment();
  }
  e2e_->Observe(stats.e2e_s);
  queue_time_->Observe(stats.queue_s);
  if (stats.ttft_s >= 0) ttft_->Observe(stats.ttft_s);
  prompt_tokens_->Observe(stats.prompt_tokens);
  generation_tokens_->Observe(stats.completion_tokens);
  kv_bytes_saved_total_->Increment(static_cast<double>(stats.k_bytes_saved));
}

void ServingMetrics::OnRequestRejected(absl::StatusCode code) { CountFailure(code); }

void ServingMetrics::OnClustering(double seconds) { clustering_->Observe(seconds); }

void ServingMetrics::OnClusterConfig(const std::vector<int32_t>& clusters_per_layer) {
  absl::MutexLock lock(&clusters_mu_);
  clusters_ = clusters_per_layer;
}

void ServingMetrics::RecordFrontEndFailure(absl::StatusCode code) { CountFailure(code); }

void ServingMetrics::CountFailure(absl::StatusCode code) {
  const int value = static_cast<int>(code);
  failure_[value > 0 && value < kNumCodes ? value : 0]->Increment();
}

#undef METRICS_RETURN_IF_ERROR

}  // namespace chai::server::metrics
