#include "server/metrics/serving_metrics.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/serving/engine_observer.h"
#include "engine/serving/request.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/testing/scrape.h"

namespace chai::server::metrics {
namespace {

using engine::FinishReason;
using engine::RequestStats;
using engine::StepStats;
using ::testing::ElementsAre;

std::unique_ptr<ServingMetrics> MakeMetrics(int64_t max_model_len = 100) {
  ServingMetricsOptions options;
  options.max_model_len = max_model_len;
  options.build_info = {"1.2.3", "abc123", "GNU 12", "Release"};
  absl::StatusOr<std::unique_ptr<ServingMetrics>> metrics = ServingMetrics::Create(options);
  EXPECT_TRUE(metrics.ok()) << metrics.status();
  return metrics.ok() ? std::move(*metrics) : nullptr;
}

std::map<std::string, double> Samples(const ServingMetrics& metrics) {
  absl::StatusOr<testing::ParsedText> parsed = testing::ParseText(metrics.Render());
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? parsed->samples : std::map<std::string, double>{};
}

TEST(BucketsTest, VllmBoundaries) {
  EXPECT_EQ(TimeToFirstTokenBuckets().size(), 22u);
  EXPECT_EQ(TimeToFirstTokenBuckets().front(), 0.001);
  EXPECT_EQ(TimeToFirstTokenBuckets().back(), 2560.0);
  EXPECT_EQ(InterTokenLatencyBuckets().size(), 19u);
  EXPECT_EQ(InterTokenLatencyBuckets().front(), 0.01);
  EXPECT_EQ(InterTokenLatencyBuckets().back(), 80.0);
  EXPECT_EQ(RequestLatencyBuckets().size(), 21u);
  EXPECT_EQ(RequestLatencyBuckets().front(), 0.3);
  EXPECT_EQ(RequestLatencyBuckets().back(), 7680.0);
  EXPECT_THAT(IterationTokensBuckets(),
              ElementsAre(1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384));
  for (const std::vector<double>& b :
       {TimeToFirstTokenBuckets(), InterTokenLatencyBuckets(), RequestLatencyBuckets(),
        IterationTokensBuckets(), ClusteringBuckets(), OneTwoFiveBuckets(8192)}) {
    EXPECT_TRUE(ValidateBuckets(b).ok());
  }
}

TEST(BucketsTest, OneTwoFiveMatchesVllmBuilder) {
  EXPECT_THAT(OneTwoFiveBuckets(100), ElementsAre(1, 2, 5, 10, 20, 50, 100));
  EXPECT_THAT(OneTwoFiveBuckets(1), ElementsAre(1));
  EXPECT_THAT(OneTwoFiveBuckets(9), ElementsAre(1, 2, 5));
  EXPECT_THAT(OneTwoFiveBuckets(8192),
              ElementsAre(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000));
  EXPECT_TRUE(OneTwoFiveBuckets(0).empty());
  EXPECT_EQ(OneTwoFiveBuckets(INT64_MAX).size(), 57u);  // 1e0..5e18: 19 decades x 3
}

TEST(FailureReasonTest, LowerCaseCanonicalNames) {
  EXPECT_EQ(FailureReason(absl::StatusCode::kInvalidArgument), "invalid_argument");
  EXPECT_EQ(FailureReason(absl::StatusCode::kResourceExhausted), "resource_exhausted");
  EXPECT_EQ(FailureReason(absl::StatusCode::kDeadlineExceeded), "deadline_exceeded");
  EXPECT_EQ(FailureReason(absl::StatusCode::kUnauthenticated), "unauthenticated");
  EXPECT_EQ(FailureReason(absl::StatusCode::kAlreadyExists), "already_exists");
  EXPECT_EQ(FailureReason(absl::StatusCode::kOk), "unknown");
  EXPECT_EQ(FailureReason(static_cast<absl::StatusCode>(99)), "unknown");
}

TEST(ServingMetricsTest, RejectsBadOptions) {
  ServingMetricsOptions options;
  options.max_model_len = 0;
  EXPECT_EQ(ServingMetrics::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

// The metric families of DESIGN.md section 3, with their types.
TEST(ServingMetricsTest, DefinesEveryContractMetric) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  std::map<std::string, MetricType> types;
  for (const FamilySnapshot& f : metrics->registry().Collect()) {
    types[f.name] = f.type;
    EXPECT_FALSE(f.help.empty()) << f.name;
  }
  const std::map<std::string, MetricType> expected = {
      {"chai_time_to_first_token_seconds", MetricType::kHistogram},
      {"chai_inter_token_latency_seconds", MetricType::kHistogram},
      {"chai_e2e_request_latency_seconds", MetricType::kHistogram},
      {"chai_request_queue_time_seconds", MetricType::kHistogram},
      {"chai_request_prompt_tokens", MetricType::kHistogram},
      {"chai_request_generation_tokens", MetricType::kHistogram},
      {"chai_iteration_tokens", MetricType::kHistogram},
      {"chai_prompt_tokens_total", MetricType::kCounter},
      {"chai_generation_tokens_total", MetricType::kCounter},
      {"chai_request_success_total", MetricType::kCounter},
      {"chai_request_failure_total", MetricType::kCounter},
      {"chai_num_preemptions_total", MetricType::kCounter},
      {"chai_num_requests_running", MetricType::kGauge},
      {"chai_num_requests_waiting", MetricType::kGauge},
      {"chai_kv_cache_usage_ratio", MetricType::kGauge},
      {"chai_kv_cache_bytes", MetricType::kGauge},
      {"chai_kv_cache_bytes_saved", MetricType::kGauge},
      {"chai_kv_cache_bytes_saved_total", MetricType::kCounter},
      {"chai_kv_cache_saved_ratio", MetricType::kGauge},
      {"chai_clusters", MetricType::kGauge},
      {"chai_clustering_seconds", MetricType::kHistogram},
      {"chai_build_info", MetricType::kGauge},
      {"process_cpu_seconds_total", MetricType::kCounter},
      {"process_resident_memory_bytes", MetricType::kGauge},
      {"process_virtual_memory_bytes", MetricType::kGauge},
      {"process_open_fds", MetricType::kGauge},
      {"process_max_fds", MetricType::kGauge},
      {"process_start_time_seconds", MetricType::kGauge},
  };
  EXPECT_EQ(types, expected);
}

TEST(ServingMetricsTest, StartsWithZeroedSeriesAndBuildInfo) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  const std::map<std::string, double> s = Samples(*metrics);
  for (const char* reason : {"length", "stop", "eos", "cancelled"}) {
    EXPECT_EQ(s.at(absl::StrCat("chai_request_success_total{finished_reason=\"", reason, "\"}")),
              0);
  }
  for (int code = 1; code <= 16; ++code) {
    const std::string key = absl::StrCat("chai_request_failure_total{reason=\"",
                                         FailureReason(static_cast<absl::StatusCode>(code)), "\"}");
    EXPECT_EQ(s.at(key), 0) << key;
  }
  EXPECT_FALSE(s.contains("chai_request_success_total{finished_reason=\"error\"}"));
  EXPECT_EQ(s.at("chai_build_info{build_type=\"Release\",compiler=\"GNU 12\",revision=\"abc123\","
                 "version=\"1.2.3\"}"),
            1);
  EXPECT_EQ(s.at("chai_request_prompt_tokens_bucket{le=\"100\"}"), 0);
  EXPECT_FALSE(s.contains("chai_request_prompt_tokens_bucket{le=\"200\"}"));
  // No cluster config yet (CHAI off): the family has no series.
  for (const auto& [key, value] : s) EXPECT_FALSE(key.starts_with("chai_clusters{")) << key;
}

TEST(ServingMetricsTest, StepsDriveCountersGaugesAndIterationHistogram) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  engine::EngineObserver* observer = metrics.get();

  StepStats prefill;
  prefill.num_tokens = 40;
  prefill.num_prompt_tokens = 38;
  prefill.num_generated = 2;
  prefill.running = 2;
  prefill.waiting = 5;
  prefill.kv_usage_ratio = 0.25;
  prefill.k_bytes_in_use = 1000;
  prefill.v_bytes_in_use = 3000;
  prefill.k_bytes_saved = 2000;
  observer->OnStep(prefill);
  StepStats decode;
  decode.num_tokens = 8;
  decode.num_generated = 8;
  decode.running = 8;
  decode.waiting = 1;
  decode.preempted = 3;
  decode.kv_usage_ratio = 0.75;
  decode.k_bytes_in_use = 600;
  decode.v_bytes_in_use = 1200;
  decode.k_bytes_saved = 600;
  observer->OnStep(decode);

  const std::map<std::string, double> s = Samples(*metrics);
  EXPECT_EQ(s.at("chai_prompt_tokens_total"), 38);
  EXPECT_EQ(s.at("chai_generation_tokens_total"), 10);
  EXPECT_EQ(s.at("chai_num_preemptions_total"), 3);
  // Gauges hold the last step's state.
  EXPECT_EQ(s.at("chai_num_requests_running"), 8);
  EXPECT_EQ(s.at("chai_num_requests_waiting"), 1);
  EXPECT_EQ(s.at("chai_kv_cache_usage_ratio"), 0.75);
  EXPECT_EQ(s.at("chai_kv_cache_bytes{cache=\"k\"}"), 600);
  EXPECT_EQ(s.at("chai_kv_cache_bytes{cache=\"v\"}"), 1200);
  EXPECT_EQ(s.at("chai_kv_cache_bytes_saved"), 600);
  // 600 saved of (600 + 600) K + 1200 V plain attention would hold.
  EXPECT_EQ(s.at("chai_kv_cache_saved_ratio"), 0.25);
  // Iteration tokens 40 and 8: le=8 holds one, le=64 both.
  EXPECT_EQ(s.at("chai_iteration_tokens_bucket{le=\"1\"}"), 0);
  EXPECT_EQ(s.at("chai_iteration_tokens_bucket{le=\"8\"}"), 1);
  EXPECT_EQ(s.at("chai_iteration_tokens_bucket{le=\"32\"}"), 1);
  EXPECT_EQ(s.at("chai_iteration_tokens_bucket{le=\"64\"}"), 2);
  EXPECT_EQ(s.at("chai_iteration_tokens_sum"), 48);
  EXPECT_EQ(s.at("chai_iteration_tokens_count"), 2);

  // A step without CHAI savings (or an empty cache) reports a ratio of 0.
  observer->OnStep(StepStats{});
  EXPECT_EQ(Samples(*metrics).at("chai_kv_cache_saved_ratio"), 0);
}

TEST(ServingMetricsTest, FinishedRequestsFillRequestHistograms) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  engine::EngineObserver* observer = metrics.get();

  RequestStats a;
  a.finish_reason = FinishReason::kStop;
  a.prompt_tokens = 12;
  a.completion_tokens = 30;
  a.queue_s = 0.2;
  a.ttft_s = 0.05;
  a.e2e_s = 1.2;
  a.k_bytes_saved = 4096;
  observer->OnRequestFinished(a);
  RequestStats b;
  b.finish_reason = FinishReason::kLength;
  b.prompt_tokens = 2;
  b.completion_tokens = 100;
  b.queue_s = 0.3;  // le is inclusive: lands in the 0.3 bucket
  b.ttft_s = 0.001;
  b.e2e_s = 9;
  observer->OnRequestFinished(b);
  RequestStats cancelled;  // cancelled before its first token
  cancelled.finish_reason = FinishReason::kCancelled;
  cancelled.prompt_tokens = 7;
  cancelled.ttft_s = -1;
  cancelled.queue_s = 2;
  cancelled.e2e_s = 2;
  observer->OnRequestFinished(cancelled);
  RequestStats expired;  // deadline passed mid-generation
  expired.finish_reason = FinishReason::kError;
  expired.error_code = absl::StatusCode::kDeadlineExceeded;
  expired.prompt_tokens = 5;
  expired.completion_tokens = 3;
  expired.ttft_s = 0.5;
  expired.e2e_s = 4;
  expired.k_bytes_saved = 1024;
  observer->OnRequestFinished(expired);
  for (int i = 0; i < 3; ++i) observer->OnInterTokenLatency(0.01 * (i + 1));
  observer->OnClustering(0.0004);

  const std::map<std::string, double> s = Samples(*metrics);
  EXPECT_EQ(s.at("chai_request_success_total{finished_reason=\"stop\"}"), 1);
  EXPECT_EQ(s.at("chai_request_success_total{finished_reason=\"length\"}"), 1);
  EXPECT_EQ(s.at("chai_request_success_total{finished_reason=\"cancelled\"}"), 1);
  EXPECT_EQ(s.at("chai_request_success_total{finished_reason=\"eos\"}"), 0);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"deadline_exceeded\"}"), 1);

  // TTFT: three requests produced a token; the cancelled one did not.
  EXPECT_EQ(s.at("chai_time_to_first_token_seconds_count"), 3);
  EXPECT_EQ(s.at("chai_time_to_first_token_seconds_bucket{le=\"0.001\"}"), 1);
  EXPECT_EQ(s.at("chai_time_to_first_token_seconds_bucket{le=\"0.06\"}"), 2);
  EXPECT_EQ(s.at("chai_time_to_first_token_seconds_bucket{le=\"0.5\"}"), 3);
  EXPECT_DOUBLE_EQ(s.at("chai_time_to_first_token_seconds_sum"), 0.551);
  // Every finished request counts in e2e, queue and token histograms.
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_count"), 4);
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_bucket{le=\"1.5\"}"), 1);
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_bucket{le=\"2\"}"), 2);
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_bucket{le=\"5\"}"), 3);
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_bucket{le=\"10\"}"), 4);
  EXPECT_EQ(s.at("chai_request_queue_time_seconds_bucket{le=\"0.3\"}"), 3);  // 0, 0.2, 0.3
  EXPECT_EQ(s.at("chai_request_queue_time_seconds_bucket{le=\"2\"}"), 4);
  EXPECT_EQ(s.at("chai_request_prompt_tokens_bucket{le=\"2\"}"), 1);
  EXPECT_EQ(s.at("chai_request_prompt_tokens_bucket{le=\"10\"}"), 3);
  EXPECT_EQ(s.at("chai_request_prompt_tokens_bucket{le=\"20\"}"), 4);
  EXPECT_EQ(s.at("chai_request_prompt_tokens_sum"), 26);
  EXPECT_EQ(s.at("chai_request_generation_tokens_bucket{le=\"50\"}"), 3);
  EXPECT_EQ(s.at("chai_request_generation_tokens_bucket{le=\"100\"}"), 4);
  EXPECT_EQ(s.at("chai_request_generation_tokens_sum"), 133);
  EXPECT_EQ(s.at("chai_kv_cache_bytes_saved_total"), 5120);
  // Inter-token latencies 0.01, 0.02, 0.03.
  EXPECT_EQ(s.at("chai_inter_token_latency_seconds_bucket{le=\"0.01\"}"), 1);
  EXPECT_EQ(s.at("chai_inter_token_latency_seconds_bucket{le=\"0.025\"}"), 2);
  EXPECT_EQ(s.at("chai_inter_token_latency_seconds_bucket{le=\"0.05\"}"), 3);
  EXPECT_EQ(s.at("chai_clustering_seconds_bucket{le=\"0.00025\"}"), 0);
  EXPECT_EQ(s.at("chai_clustering_seconds_bucket{le=\"0.0005\"}"), 1);
  EXPECT_EQ(s.at("chai_clustering_seconds_count"), 1);
}

TEST(ServingMetricsTest, RejectionsAndFrontEndFailuresCountOnlyAsFailures) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  engine::EngineObserver* observer = metrics.get();
  observer->OnRequestRejected(absl::StatusCode::kResourceExhausted);
  observer->OnRequestRejected(absl::StatusCode::kResourceExhausted);
  observer->OnRequestRejected(absl::StatusCode::kInvalidArgument);
  observer->OnRequestRejected(absl::StatusCode::kAlreadyExists);
  metrics->RecordFrontEndFailure(absl::StatusCode::kUnauthenticated);
  metrics->RecordFrontEndFailure(absl::StatusCode::kOk);  // misuse: counted as unknown
  RequestStats weird;                                     // kError without a code
  weird.finish_reason = FinishReason::kError;
  observer->OnRequestFinished(weird);

  const std::map<std::string, double> s = Samples(*metrics);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"resource_exhausted\"}"), 2);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"invalid_argument\"}"), 1);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"already_exists\"}"), 1);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"unauthenticated\"}"), 1);
  EXPECT_EQ(s.at("chai_request_failure_total{reason=\"unknown\"}"), 2);
  // Rejected requests never ran: no request histogram saw them.
  EXPECT_EQ(s.at("chai_e2e_request_latency_seconds_count"), 1);  // only `weird`
  EXPECT_EQ(s.at("chai_time_to_first_token_seconds_count"), 1);  // its ttft_s is 0
}

TEST(ServingMetricsTest, ClusterConfigSetsPerLayerGauges) {
  std::unique_ptr<ServingMetrics> metrics = MakeMetrics();
  ASSERT_NE(metrics, nullptr);
  metrics->OnClusterConfig({9, 9, 4, 2});
  std::map<std::string, double> s = Samples(*metrics);
  EXPECT_EQ(s.at("chai_clusters{layer=\"0\"}"), 9);
  EXPECT_EQ(s.at("chai_clusters{layer=\"2\"}"), 4);
  EXPECT_EQ(s.at("chai_clusters{layer=\"3\"}"), 2);
  // A new config replaces the old one entirely.
  metrics->OnClusterConfig({3, 1});
  s = Samples(*metrics);
  EXPECT_EQ(s.at("chai_clusters{layer=\"0\"}"), 3);
  EXPECT_EQ(s.at("chai_clusters{layer=\"1\"}"), 1);
  EXPECT_FALSE(s.contains("chai_clusters{layer=\"2\"}"));
  metrics->OnClusterConfig({});
  s = Samples(*metrics);
  EXPECT_FALSE(s.contains("chai_clusters{layer=\"0\"}"));
}

}  // namespace
}  // namespace chai::server::metrics
