// Scrapes /metrics with every serving metric populated and runs Prometheus'
// own linter on the result: `promtool check metrics` (Debian package
// `prometheus`). Skips, saying so, where promtool is not installed.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "engine/serving/engine_observer.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics_http.h"
#include "server/metrics/serving_metrics.h"
#include "server/metrics/testing/scrape.h"

namespace chai::server::metrics {
namespace {

std::string FindPromtool() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    const std::string candidate = absl::StrCat(dir, "/promtool");
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct PromtoolResult {
  int exit_code = -1;
  std::vector<std::string> lines;  // its output, stdout and stderr
};

PromtoolResult RunPromtool(const std::string& promtool, const std::string& text) {
  char path[] = "/tmp/chai_promtool_XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << text;
  PromtoolResult result;
  const std::string command = absl::StrCat(promtool, " check metrics < ", path, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  if (pipe == nullptr) return result;
  std::string output;
  char buf[1024];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  unlink(path);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    result.lines.emplace_back(line);
  }
  return result;
}

void PopulateEverything(ServingMetrics* metrics) {
  engine::EngineObserver* observer = metrics;
  observer->OnClusterConfig({9, 9, 3, 3, 1});
  engine::StepStats step;
  step.num_tokens = 70;
  step.num_prompt_tokens = 64;
  step.num_generated = 6;
  step.running = 6;
  step.waiting = 2;
  step.preempted = 1;
  step.kv_usage_ratio = 0.4;
  step.k_bytes_in_use = 1 << 20;
  step.v_bytes_in_use = 3 << 20;
  step.k_bytes_saved = 2 << 20;
  observer->OnStep(step);
  engine::RequestStats done;
  done.finish_reason = engine::FinishReason::kEos;
  done.prompt_tokens = 64;
  done.completion_tokens = 20;
  done.queue_s = 0.01;
  done.ttft_s = 0.2;
  done.e2e_s = 1.4;
  done.k_bytes_saved = 1 << 16;
  observer->OnRequestFinished(done);
  engine::RequestStats failed = done;
  failed.finish_reason = engine::FinishReason::kError;
  failed.error_code = absl::StatusCode::kInternal;
  observer->OnRequestFinished(failed);
  observer->OnInterTokenLatency(0.03);
  observer->OnRequestRejected(absl::StatusCode::kResourceExhausted);
  observer->OnClustering(0.0002);
  metrics->RecordFrontEndFailure(absl::StatusCode::kUnauthenticated);
}

TEST(PromtoolTest, ScrapedMetricsPassPromtool) {
  const std::string promtool = FindPromtool();
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not found on PATH (install the Debian package `prometheus`); "
                    "skipping the promtool check";
  }
  ServingMetricsOptions options;
  options.max_model_len = 2048;
  absl::StatusOr<std::unique_ptr<ServingMetrics>> metrics = ServingMetrics::Create(options);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  PopulateEverything(metrics->get());

  MetricsHttpOptions http;
  http.bind_address = "127.0.0.1";
  http.port = 0;
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
      MetricsHttpServer::Start(http, &(*metrics)->registry());
  ASSERT_TRUE(server.ok()) << server.status();
  absl::StatusOr<testing::HttpResponse> scrape =
      testing::HttpRequest((*server)->port(), "GET", "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  ASSERT_EQ(scrape->status, 200);

  // Every family has at least one sample: the check covers all of them.
  absl::StatusOr<testing::ParsedText> parsed = testing::ParseText(scrape->body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (const auto& [name, family] : parsed->families) {
    bool has_sample = false;
    for (const auto& [key, value] : parsed->samples) {
      has_sample = has_sample || key.starts_with(name + "{") || key == name ||
                   key.starts_with(name + "_bucket") || key.starts_with(name + "_count");
    }
    EXPECT_TRUE(has_sample) << name << " has no sample";
  }

  const PromtoolResult result = RunPromtool(promtool, scrape->body);
  // 0: clean; 3 would be lint findings, 1 a parse error.
  EXPECT_EQ(result.exit_code, 0);
  for (const std::string& line : result.lines) ADD_FAILURE() << "promtool: " << line;
}

// The harness must be able to fail: promtool flags a counter without _total
// and rejects a malformed line.
TEST(PromtoolTest, HarnessDetectsProblems) {
  const std::string promtool = FindPromtool();
  if (promtool.empty()) GTEST_SKIP() << "promtool not found on PATH (Debian package `prometheus`)";
  const PromtoolResult lint = RunPromtool(promtool, "# HELP foo Foo.\n# TYPE foo counter\nfoo 1\n");
  EXPECT_NE(lint.exit_code, 0);
  ASSERT_FALSE(lint.lines.empty());
  EXPECT_NE(lint.lines[0].find("_total"), std::string::npos) << lint.lines[0];
  const PromtoolResult broken = RunPromtool(promtool, "# TYPE foo gauge\nfoo{a=\"x} 1\n");
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.exit_code, 3);
}

}  // namespace
}  // namespace chai::server::metrics
