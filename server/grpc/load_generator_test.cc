// RunLoad's retry of UNAVAILABLE-before-first-token (the status a draining
// replica behind a load balancer gives), against an in-process fake
// ChaiService whose Generate fails on a script.
#include "server/grpc/load_generator.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "chai/v1/chai.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace chai::server {
namespace {

// What the fake does with Generate call number `call` (0-based, in arrival
// order): stream `tokens_before` tokens, then end with `status` (OK streams
// all max_tokens tokens).
struct Outcome {
  grpc::StatusCode status = grpc::StatusCode::OK;
  int tokens_before = 0;
};

class FakeChai final : public v1::ChaiService::Service {
 public:
  explicit FakeChai(std::function<Outcome(int call)> script) : script_(std::move(script)) {}

  grpc::Status GetModelInfo(grpc::ServerContext*, const v1::GetModelInfoRequest*,
                            v1::ModelInfo* info) override {
    info->set_context_length(512);
    info->set_vocab_size(1000);
    return grpc::Status::OK;
  }

  grpc::Status Generate(grpc::ServerContext*, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override {
    const Outcome o = script_(calls_.fetch_add(1));
    const int n = o.status == grpc::StatusCode::OK ? req->stopping().max_tokens() : o.tokens_before;
    for (int i = 0; i < n; ++i) {
      v1::GenerateResponse msg;
      msg.add_token_ids(300 + i);
      msg.set_text("x");
      writer->Write(msg);
    }
    return o.status == grpc::StatusCode::OK ? grpc::Status::OK
                                            : grpc::Status(o.status, "scripted failure");
  }

  int calls() const { return calls_.load(); }

 private:
  std::function<Outcome(int)> script_;
  std::atomic<int> calls_{0};
};

class LoadGeneratorRetryTest : public ::testing::Test {
 protected:
  void StartServer(std::function<Outcome(int)> script) {
    fake_ = std::make_unique<FakeChai>(std::move(script));
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(fake_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    options_.client.target = "127.0.0.1:" + std::to_string(port);
    options_.concurrency = 1;  // one stream at a time: calls arrive in request order
    options_.requests = 4;
    options_.prompt_tokens = 8;
    options_.max_tokens = 5;
    options_.retry_backoff_s = 0;
    options_.request_timeout_s = 30;
  }
  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::unique_ptr<FakeChai> fake_;
  std::unique_ptr<grpc::Server> server_;
  LoadOptions options_;
};

TEST_F(LoadGeneratorRetryTest, RetriesUnavailableBeforeTheFirstToken) {
  // The first three calls are refused as a draining server refuses them.
  StartServer([](int call) {
    return call < 3 ? Outcome{grpc::StatusCode::UNAVAILABLE, 0} : Outcome{};
  });
  options_.retries = 3;
  absl::StatusOr<LoadReport> r = RunLoad(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 4);
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->retries, 3);
  EXPECT_EQ(r->retried_requests, 1);
  EXPECT_EQ(r->output_tokens, 4 * 5);
  EXPECT_EQ(fake_->calls(), 4 + 3);
  const nlohmann::json j = nlohmann::json::parse(FormatReportJson(options_, *r));
  EXPECT_EQ(j["retries"], 3);
  EXPECT_EQ(j["retried_requests"], 1);
  EXPECT_EQ(j["max_retries"], 3);
  EXPECT_NE(FormatReportTable(options_, *r).find("retries 3 (1 requests retried"),
            std::string::npos);
}

TEST_F(LoadGeneratorRetryTest, RetriesCancelledBeforeTheFirstToken) {
  // gRPC refuses a call that arrives during server shutdown with CANCELLED.
  StartServer([](int call) {
    return call == 1 ? Outcome{grpc::StatusCode::CANCELLED, 0} : Outcome{};
  });
  options_.retries = 1;
  absl::StatusOr<LoadReport> r = RunLoad(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 4);
  EXPECT_EQ(r->retries, 1);
  EXPECT_EQ(fake_->calls(), 5);
}

TEST_F(LoadGeneratorRetryTest, WithoutRetriesUnavailableIsAnError) {
  StartServer([](int call) {
    return call < 2 ? Outcome{grpc::StatusCode::UNAVAILABLE, 0} : Outcome{};
  });
  absl::StatusOr<LoadReport> r = RunLoad(options_);  // retries = 0, the default
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 2);
  EXPECT_EQ(r->errors["UNAVAILABLE"], 2);
  EXPECT_EQ(r->retries, 0);
  EXPECT_EQ(fake_->calls(), 4);
  EXPECT_EQ(FormatReportTable(options_, *r).find("retries"), std::string::npos);
}

TEST_F(LoadGeneratorRetryTest, RetriesAreBounded) {
  StartServer([](int) { return Outcome{grpc::StatusCode::UNAVAILABLE, 0}; });
  options_.requests = 3;
  options_.retries = 2;
  absl::StatusOr<LoadReport> r = RunLoad(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 0);
  EXPECT_EQ(r->errors["UNAVAILABLE"], 3);
  EXPECT_EQ(r->retries, 3 * 2);
  EXPECT_EQ(r->retried_requests, 3);
  EXPECT_EQ(fake_->calls(), 3 * 3);
}

TEST_F(LoadGeneratorRetryTest, NeverRetriesAStreamThatProducedATokenOrAnotherCode) {
  // Calls 0 and 2: one token, then UNAVAILABLE / CANCELLED (a replica
  // dying mid-stream); 1 and 3: RESOURCE_EXHAUSTED before any token (a full
  // queue, not a drain).
  StartServer([](int call) {
    if (call % 2 == 1) return Outcome{grpc::StatusCode::RESOURCE_EXHAUSTED, 0};
    return Outcome{call == 0 ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::CANCELLED, 1};
  });
  options_.retries = 5;
  absl::StatusOr<LoadReport> r = RunLoad(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->succeeded, 0);
  EXPECT_EQ(r->errors["UNAVAILABLE"], 1);
  EXPECT_EQ(r->errors["CANCELLED"], 1);
  EXPECT_EQ(r->errors["RESOURCE_EXHAUSTED"], 2);
  EXPECT_EQ(r->retries, 0);
  EXPECT_EQ(fake_->calls(), 4);
}

TEST_F(LoadGeneratorRetryTest, LatencyOfARetriedRequestCountsFromItsFirstAttempt) {
  StartServer([](int call) {
    return call == 0 ? Outcome{grpc::StatusCode::UNAVAILABLE, 0} : Outcome{};
  });
  options_.requests = 1;
  options_.retries = 1;
  options_.retry_backoff_s = 0.2;
  absl::StatusOr<LoadReport> r = RunLoad(options_);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->succeeded, 1);
  EXPECT_EQ(r->retries, 1);
  // The backoff (0.2 s) lies between the first attempt and the first token.
  EXPECT_GE(r->ttft_s.p50, 0.2);
  EXPECT_GE(r->e2e_s.p50, r->ttft_s.p50);
}

TEST(LoadOptionsTest, ValidatesRetries) {
  LoadOptions o;
  o.retries = -1;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.retries = 101;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.retries = 3;
  o.retry_backoff_s = -0.1;
  EXPECT_EQ(o.Validate().code(), absl::StatusCode::kInvalidArgument);
  o.retry_backoff_s = 0.05;
  EXPECT_TRUE(o.Validate().ok());
}

}  // namespace
}  // namespace chai::server
