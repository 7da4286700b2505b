#include "server/metrics/metrics_http.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/metrics/registry.h"
#include "server/metrics/testing/scrape.h"

namespace chai::server::metrics {
namespace {

MetricsHttpOptions Loopback(int port = 0) {
  MetricsHttpOptions options;
  options.bind_address = "127.0.0.1";
  options.port = port;
  return options;
}

class MetricsHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    counter_ = *registry_.AddCounter("test_scrapes_total", "Test counter.");
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(Loopback(), &registry_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }

  Registry registry_;
  Counter* counter_ = nullptr;
  std::unique_ptr<MetricsHttpServer> server_;
};

TEST_F(MetricsHttpTest, ServesTheRegistryOnAnEphemeralPort) {
  ASSERT_GT(server_->port(), 0);
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", server_->port()));
  counter_->Increment(7);
  absl::StatusOr<testing::HttpResponse> response =
      testing::HttpRequest(server_->port(), "GET", "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(absl::StartsWith(response->headers["content-type"], "text/plain; version=0.0.4"))
      << response->headers["content-type"];
  EXPECT_EQ(response->body, registry_.Render());
  EXPECT_EQ(response->headers["content-length"], absl::StrCat(response->body.size()));
  EXPECT_TRUE(absl::StrContains(response->body, "test_scrapes_total 7\n"));

  // Each scrape renders afresh.
  counter_->Increment();
  response = testing::HttpRequest(server_->port(), "GET", "/metrics?x=1");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(absl::StrContains(response->body, "test_scrapes_total 8\n"));
}

TEST_F(MetricsHttpTest, HeadSendsHeadersOnly) {
  absl::StatusOr<testing::HttpResponse> response =
      testing::HttpRequest(server_->port(), "HEAD", "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  EXPECT_TRUE(response->body.empty());
  EXPECT_EQ(response->headers["content-length"], absl::StrCat(registry_.Render().size()));
}

TEST_F(MetricsHttpTest, OtherPathsAre404AndOtherMethods405) {
  for (const char* path : {"/", "/metric", "/metricsx", "/metrics/extra", "/favicon.ico"}) {
    absl::StatusOr<testing::HttpResponse> response =
        testing::HttpRequest(server_->port(), "GET", path);
    ASSERT_TRUE(response.ok()) << path << ": " << response.status();
    EXPECT_EQ(response->status, 404) << path;
    EXPECT_FALSE(absl::StrContains(response->body, "test_scrapes_total")) << path;
  }
  absl::StatusOr<testing::HttpResponse> post =
      testing::HttpRequest(server_->port(), "POST", "/metrics");
  ASSERT_TRUE(post.ok()) << post.status();
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->headers["allow"], "GET, HEAD");
}

TEST_F(MetricsHttpTest, PortInUseIsAClearError) {
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> second =
      MetricsHttpServer::Start(Loopback(server_->port()), &registry_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(second.status().message(), "in use")) << second.status();
  EXPECT_TRUE(absl::StrContains(second.status().message(), absl::StrCat(server_->port())))
      << second.status();
  // The first server is unaffected.
  absl::StatusOr<testing::HttpResponse> response =
      testing::HttpRequest(server_->port(), "GET", "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
}

TEST_F(MetricsHttpTest, StopClosesThePortAndAllowsRebinding) {
  const int port = server_->port();
  ASSERT_TRUE(testing::HttpRequest(port, "GET", "/metrics").ok());
  server_->Stop();
  server_->Stop();  // idempotent
  EXPECT_FALSE(testing::HttpRequest(port, "GET", "/metrics").ok());
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> again =
      MetricsHttpServer::Start(Loopback(port), &registry_);
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<testing::HttpResponse> response = testing::HttpRequest(port, "GET", "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
}

TEST_F(MetricsHttpTest, ConcurrentScrapesWhileUpdating) {
  std::atomic<bool> done{false};
  std::thread writer([&] {
    while (!done.load()) counter_->Increment();
  });
  std::atomic<int> failures{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < 4; ++t) {
    scrapers.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        absl::StatusOr<testing::HttpResponse> r =
            testing::HttpRequest(server_->port(), "GET", "/metrics");
        if (!r.ok() || r->status != 200 || !testing::ParseText(r->body).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : scrapers) t.join();
  done = true;
  writer.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(MetricsHttpOptionsTest, RejectsBadOptions) {
  Registry registry;
  for (const char* address :
       {"", "example.com", "999.1.1.1", "1.2.3", "0.0.0.0:80", "::1x", "127.0.0.1 "}) {
    MetricsHttpOptions options = Loopback();
    options.bind_address = address;
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(options, &registry);
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_TRUE(absl::StrContains(server.status().message(), "bind address")) << server.status();
  }
  for (int port : {-1, 65536}) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(Loopback(port), &registry);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << port;
  }
  MetricsHttpOptions no_threads = Loopback();
  no_threads.num_threads = 0;
  EXPECT_EQ(MetricsHttpServer::Start(no_threads, &registry).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start(Loopback(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsHttpOptionsTest, BindsToTheGivenAddress) {
  Registry registry;
  ASSERT_TRUE(registry.AddGauge("g", "g").ok());
  // 0.0.0.0 includes the loopback interface; localhost means 127.0.0.1.
  for (const auto& [given, bound] : std::vector<std::pair<std::string, std::string>>{
           {"0.0.0.0", "0.0.0.0"}, {"localhost", "127.0.0.1"}}) {
    MetricsHttpOptions options;
    options.bind_address = given;
    options.port = 0;
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> server =
        MetricsHttpServer::Start(options, &registry);
    ASSERT_TRUE(server.ok()) << given << ": " << server.status();
    EXPECT_EQ((*server)->address(), absl::StrCat(bound, ":", (*server)->port()));
    absl::StatusOr<testing::HttpResponse> response =
        testing::HttpRequest((*server)->port(), "GET", "/metrics");
    ASSERT_TRUE(response.ok()) << given << ": " << response.status();
    EXPECT_EQ(response->status, 200);
  }
}

}  // namespace
}  // namespace chai::server::metrics
