// The gRPC front end over loopback with a scripted engine (no model
// forward pass): streaming and merging of updates, the mapping of every
// failure to its status code, cancellation and deadlines reaching the engine,
// API keys, health, message size limits, and one access-log line per call.
#include "server/grpc/chai_service.h"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/loaded_model.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/grpc/grpc_server.h"
#include "tests/testing/golden.h"

namespace chai::server {
namespace {

// Runs sinks on its own thread, as the real engine does. Mode per request:
// kStream emits `tokens` updates then a final one; kHang emits nothing until
// Cancel; a `reject` status makes Submit fail.
class FakeEngine : public GenerationEngine {
 public:
  enum class Mode { kStream, kHang };

  FakeEngine() : worker_([this] { Loop(); }) {}
  ~FakeEngine() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  absl::Status Submit(engine::GenerationRequest request, engine::UpdateSink sink) override {
    std::lock_guard<std::mutex> l(mu_);
    ++submits_;
    if (!reject_.ok()) return reject_;
    last_request_ = request;
    if (mode_ == Mode::kHang) {
      hanging_[request.id] = std::move(sink);
      return absl::OkStatus();
    }
    const int n = tokens_;
    const std::string id = request.id;
    const int32_t prompt = static_cast<int32_t>(request.prompt.size());
    tasks_.push_back([n, prompt, sink = std::move(sink)]() {
      for (int i = 0; i < n; ++i) {
        engine::GenerationUpdate u;
        u.token_ids = {1000 + i};
        u.text = "t" + std::to_string(i) + " ";
        u.logprobs = {{1000 + i, -0.5f, {}}};
        sink(std::move(u));
      }
      engine::GenerationUpdate last;
      last.finished = true;
      last.finish_reason = engine::FinishReason::kLength;
      last.prompt_tokens = prompt;
      last.completion_tokens = n;
      last.chai = true;
      sink(std::move(last));
    });
    cv_.notify_all();
    return absl::OkStatus();
  }

  void Cancel(const std::string& id) override {
    std::lock_guard<std::mutex> l(mu_);
    cancelled_.push_back(id);
    auto it = hanging_.find(id);
    if (it == hanging_.end()) return;
    engine::UpdateSink sink = std::move(it->second);
    hanging_.erase(it);
    tasks_.push_back([sink = std::move(sink)]() {
      engine::GenerationUpdate last;
      last.finished = true;
      last.finish_reason = engine::FinishReason::kCancelled;
      sink(std::move(last));
      // A late update after the final one must be dropped, not crash.
    });
    cv_.notify_all();
  }

  void set_mode(Mode m) {
    std::lock_guard<std::mutex> l(mu_);
    mode_ = m;
  }
  void set_tokens(int n) {
    std::lock_guard<std::mutex> l(mu_);
    tokens_ = n;
  }
  void set_reject(absl::Status s) {
    std::lock_guard<std::mutex> l(mu_);
    reject_ = std::move(s);
  }
  int submits() {
    std::lock_guard<std::mutex> l(mu_);
    return submits_;
  }
  std::vector<std::string> cancelled() {
    std::lock_guard<std::mutex> l(mu_);
    return cancelled_;
  }
  engine::GenerationRequest last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_request_;
  }
  bool hanging(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    return hanging_.contains(id);
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      cv_.wait(l, [this] { return stop_ || !tasks_.empty(); });
      if (stop_ && tasks_.empty()) return;
      std::function<void()> t = std::move(tasks_.front());
      tasks_.pop_front();
      l.unlock();
      t();
      l.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::map<std::string, engine::UpdateSink> hanging_;
  std::vector<std::string> cancelled_;
  engine::GenerationRequest last_request_;
  Mode mode_ = Mode::kStream;
  int tokens_ = 3;
  absl::Status reject_;
  int submits_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

class ChaiServiceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<engine::LoadedModel> m = engine::LoadModel(chai::testing::DefaultModelPath());
    if (m.ok()) model_ = new engine::LoadedModel(*std::move(m));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(model_, nullptr) << "default model missing: run deploy/setup.sh";
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Now() + absl::Seconds(2));
    server_.reset();
    service_.reset();
    if (log_file_ != nullptr) std::fclose(log_file_);
  }

  // Starts the server; activates the service unless told not to.
  void Start(bool activate = true, const ApiKeys* keys = nullptr,
             int32_t max_receive_bytes = 4 << 20) {
    log_path_ = ::testing::TempDir() + "/access_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".log";
    log_file_ = std::fopen(log_path_.c_str(), "w");
    access_log_ = std::make_unique<AccessLog>(log_file_);
    ChaiServiceImpl::Options o;
    o.api_keys = keys;
    o.access_log = access_log_.get();
    o.on_failure = [this](absl::StatusCode c) {
      std::lock_guard<std::mutex> l(failures_mu_);
      failures_.push_back(c);
    };
    service_ = std::make_unique<ChaiServiceImpl>(o);
    GrpcServerOptions so;
    so.host = "127.0.0.1";
    so.port = 0;
    so.max_receive_message_bytes = max_receive_bytes;
    so.health_service_names = {"chai.v1.ChaiService"};
    absl::StatusOr<std::unique_ptr<GrpcServer>> s = GrpcServer::Start(so, {service_.get()});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    if (activate) Activate();
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::ChaiService::NewStub(channel_);
  }

  void Activate() {
    ServingState st;
    st.tokenizer = model_->tokenizer.get();
    st.engine = &engine_;
    st.limits.context_length = 128;
    st.limits.vocab_size = model_->tokenizer->vocab_size();
    st.model_info.set_name("test-model");
    st.model_info.set_vocab_size(st.limits.vocab_size);
    service_->Activate(st);
    server_->SetServing(true);
  }

  struct StreamResult {
    grpc::Status status;
    std::vector<v1::GenerateResponse> messages;
  };
  StreamResult Generate(const v1::GenerateRequest& req, grpc::ClientContext* ctx = nullptr) {
    grpc::ClientContext local;
    if (ctx == nullptr) ctx = &local;
    StreamResult r;
    std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader = stub_->Generate(ctx, req);
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) r.messages.push_back(msg);
    r.status = reader->Finish();
    return r;
  }

  std::vector<std::string> LogLines() {
    std::fflush(log_file_);
    std::ifstream in(log_path_);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  std::vector<absl::StatusCode> failures() {
    std::lock_guard<std::mutex> l(failures_mu_);
    return failures_;
  }

  static v1::GenerateRequest Text(const std::string& t) {
    v1::GenerateRequest r;
    r.set_text(t);
    return r;
  }

  static engine::LoadedModel* model_;
  FakeEngine engine_;
  std::unique_ptr<ChaiServiceImpl> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ChaiService::Stub> stub_;
  std::string log_path_;
  std::FILE* log_file_ = nullptr;
  std::unique_ptr<AccessLog> access_log_;
  std::mutex failures_mu_;
  std::vector<absl::StatusCode> failures_;
};
engine::LoadedModel* ChaiServiceTest::model_ = nullptr;

TEST_F(ChaiServiceTest, StreamsEveryTokenInOrderThenCompletes) {
  Start();
  engine_.set_tokens(200);
  v1::GenerateRequest req = Text("Hello");
  req.set_request_id("order-1");
  StreamResult r = Generate(req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  // Updates that pile up while a write is in flight are merged, so there may
  // be fewer messages than updates, but never a lost or reordered token.
  std::vector<int32_t> ids;
  std::string text;
  int logprobs = 0;
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const v1::GenerateResponse& m = r.messages[i];
    EXPECT_EQ(m.request_id(), "order-1");
    EXPECT_EQ(m.has_complete(), i + 1 == r.messages.size());
    ids.insert(ids.end(), m.token_ids().begin(), m.token_ids().end());
    text += m.text();
    logprobs += m.logprobs_size();
  }
  ASSERT_EQ(ids.size(), 200u);
  std::string want_text;
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(ids[i], 1000 + i);
    want_text += "t" + std::to_string(i) + " ";
  }
  EXPECT_EQ(text, want_text);
  EXPECT_EQ(logprobs, 200);
  const v1::GenerationComplete& c = r.messages.back().complete();
  EXPECT_EQ(c.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(c.usage().completion_tokens(), 200);
  EXPECT_TRUE(c.chai());
  // The engine got the prompt as the tokenizer encodes it.
  EXPECT_EQ(engine_.last_request().prompt, model_->tokenizer->Encode("Hello", true, false));
  EXPECT_EQ(engine_.last_request().id, "order-1");
}

TEST_F(ChaiServiceTest, GeneratesAnIdWhenTheClientGivesNone) {
  Start();
  StreamResult a = Generate(Text("a"));
  StreamResult b = Generate(Text("b"));
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  const std::string ida = a.messages.front().request_id();
  EXPECT_FALSE(ida.empty());
  EXPECT_NE(ida, b.messages.front().request_id());
}

TEST_F(ChaiServiceTest, BadRequestsNeverReachTheEngine) {
  Start();
  v1::GenerateRequest bad = Text("hi");
  bad.mutable_sampling()->set_top_p(1.5f);
  StreamResult r = Generate(bad);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(r.status.error_message().find("top_p"), std::string::npos);
  EXPECT_TRUE(r.messages.empty());
  v1::GenerateRequest oov;
  oov.mutable_token_ids()->add_ids(model_->tokenizer->vocab_size());
  EXPECT_EQ(Generate(oov).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(engine_.submits(), 0);
  EXPECT_EQ(failures(), (std::vector<absl::StatusCode>{absl::StatusCode::kInvalidArgument,
                                                       absl::StatusCode::kInvalidArgument}));
}

TEST_F(ChaiServiceTest, EngineRejectionsKeepTheirCodes) {
  Start();
  for (const absl::Status& s :
       {absl::AlreadyExistsError("id in flight"), absl::ResourceExhaustedError("queue full"),
        absl::UnavailableError("stopped")}) {
    engine_.set_reject(s);
    StreamResult r = Generate(Text("hi"));
    EXPECT_EQ(static_cast<int>(r.status.error_code()), static_cast<int>(s.code()));
    EXPECT_EQ(r.status.error_message(), std::string(s.message()));
  }
  // The engine counts its own rejections: the front end reports none.
  EXPECT_TRUE(failures().empty());
}

TEST_F(ChaiServiceTest, ClientCancelCancelsTheEngineRequest) {
  Start();
  engine_.set_mode(FakeEngine::Mode::kHang);
  v1::GenerateRequest req = Text("hi");
  req.set_request_id("to-cancel");
  grpc::ClientContext ctx;
  std::thread canceller([&] {
    for (int i = 0; i < 500 && !engine_.hanging("to-cancel"); ++i)
      absl::SleepFor(absl::Milliseconds(10));
    ctx.TryCancel();
  });
  StreamResult r = Generate(req, &ctx);
  canceller.join();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::CANCELLED);
  // OnCancel reaches the engine (it may land just after the client returns).
  for (int i = 0; i < 500 && engine_.cancelled().empty(); ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(engine_.cancelled(), (std::vector<std::string>{"to-cancel"}));
  EXPECT_TRUE(service_->WaitForStreams(absl::Seconds(5)));
}

TEST_F(ChaiServiceTest, DeadlineBecomesTheEngineDeadlineAndExpires) {
  Start();
  engine_.set_mode(FakeEngine::Mode::kHang);
  v1::GenerateRequest req = Text("hi");
  req.set_request_id("slow");
  grpc::ClientContext ctx;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(300);
  ctx.set_deadline(deadline);
  StreamResult r = Generate(req, &ctx);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const absl::Duration skew = engine_.last_request().deadline - absl::FromChrono(deadline);
  EXPECT_LT(absl::AbsDuration(skew), absl::Milliseconds(50)) << skew;
  for (int i = 0; i < 500 && engine_.cancelled().empty(); ++i)
    absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(engine_.cancelled(), (std::vector<std::string>{"slow"}));
  ASSERT_TRUE(service_->WaitForStreams(absl::Seconds(5)));
  bool logged = false;
  for (const std::string& l : LogLines()) {
    logged |= l.find("id=slow") != std::string::npos &&
              l.find("status=DEADLINE_EXCEEDED") != std::string::npos;
  }
  EXPECT_TRUE(logged);
}

TEST_F(ChaiServiceTest, NoDeadlineMeansInfiniteEngineDeadline) {
  Start();
  ASSERT_TRUE(Generate(Text("hi")).status.ok());
  EXPECT_EQ(engine_.last_request().deadline, absl::InfiniteFuture());
}

TEST_F(ChaiServiceTest, UnavailableBeforeActivateAndWhileDraining) {
  Start(/*activate=*/false);
  EXPECT_EQ(Generate(Text("hi")).status.error_code(), grpc::StatusCode::UNAVAILABLE);
  grpc::ClientContext c1;
  v1::ModelInfo info;
  EXPECT_EQ(stub_->GetModelInfo(&c1, v1::GetModelInfoRequest(), &info).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  Activate();
  EXPECT_TRUE(Generate(Text("hi")).status.ok());
  service_->StopAccepting();
  StreamResult r = Generate(Text("hi"));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(r.status.error_message().find("draining"), std::string::npos);
  EXPECT_EQ(engine_.submits(), 1);
}

TEST_F(ChaiServiceTest, HealthFollowsServingState) {
  Start(/*activate=*/false);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  auto check = [&](const std::string& service) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status s = health->Check(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.status();
  };
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  Activate();
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);
  EXPECT_EQ(check("chai.v1.ChaiService"), grpc::health::v1::HealthCheckResponse::SERVING);
  server_->SetServing(false);
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check("chai.v1.ChaiService"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
}

TEST_F(ChaiServiceTest, ApiKeyIsRequiredOnEveryMethod) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::FromText("test-key-1234\n");
  ASSERT_TRUE(keys.ok());
  Start(true, &*keys);
  EXPECT_EQ(Generate(Text("hi")).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer wrong-key-000");
    EXPECT_EQ(Generate(Text("hi"), &ctx).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer test-key-1234");
    EXPECT_TRUE(Generate(Text("hi"), &ctx).status.ok());
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-api-key", "test-key-1234");
    v1::ModelInfo info;
    EXPECT_TRUE(stub_->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info).ok());
  }
  {
    grpc::ClientContext ctx;
    v1::TokenizeRequest t;
    t.set_text("x");
    v1::TokenizeResponse resp;
    EXPECT_EQ(stub_->Tokenize(&ctx, t, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  EXPECT_EQ(engine_.submits(), 1);
  EXPECT_EQ(failures(), std::vector<absl::StatusCode>(3, absl::StatusCode::kUnauthenticated));
}

TEST_F(ChaiServiceTest, OversizeRequestIsResourceExhausted) {
  Start(true, nullptr, /*max_receive_bytes=*/1024);
  StreamResult r = Generate(Text(std::string(4096, 'a')));
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(engine_.submits(), 0);
  EXPECT_TRUE(Generate(Text("small")).status.ok());
}

TEST_F(ChaiServiceTest, TokenizeDetokenizeAndModelInfo) {
  Start();
  const engine::Tokenizer& tok = *model_->tokenizer;
  grpc::ClientContext c1;
  v1::TokenizeRequest t;
  t.set_text("Hello world");
  v1::TokenizeResponse tr;
  ASSERT_TRUE(stub_->Tokenize(&c1, t, &tr).ok());
  std::vector<int32_t> ids(tr.token_ids().begin(), tr.token_ids().end());
  EXPECT_EQ(ids, tok.Encode("Hello world", true, false));

  grpc::ClientContext c2;
  v1::DetokenizeRequest d;
  d.mutable_token_ids()->Add(ids.begin(), ids.end());
  v1::DetokenizeResponse dr;
  ASSERT_TRUE(stub_->Detokenize(&c2, d, &dr).ok());
  EXPECT_EQ(dr.text(), "Hello world");

  grpc::ClientContext c3;
  v1::DetokenizeRequest bad;
  bad.add_token_ids(-3);
  EXPECT_EQ(stub_->Detokenize(&c3, bad, &dr).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c4;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&c4, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "test-model");
  EXPECT_EQ(info.vocab_size(), tok.vocab_size());
}

TEST_F(ChaiServiceTest, OneAccessLogLinePerCall) {
  Start();
  ASSERT_TRUE(Generate(Text("hi")).status.ok());
  v1::GenerateRequest bad = Text("hi");
  bad.mutable_sampling()->set_temperature(-1);
  ASSERT_FALSE(Generate(bad).status.ok());
  grpc::ClientContext c;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&c, v1::GetModelInfoRequest(), &info).ok());
  ASSERT_TRUE(service_->WaitForStreams(absl::Seconds(5)));
  std::vector<std::string> lines = LogLines();
  ASSERT_EQ(lines.size(), 3u);
  int ok_generate = 0, bad_generate = 0, info_lines = 0;
  for (const std::string& l : lines) {
    if (l.find("method=Generate") != std::string::npos) {
      if (l.find("status=OK finish=length") != std::string::npos &&
          l.find("completion_tokens=3") != std::string::npos) {
        ++ok_generate;
      }
      if (l.find("status=INVALID_ARGUMENT") != std::string::npos) ++bad_generate;
    }
    if (l.find("method=GetModelInfo") != std::string::npos) ++info_lines;
  }
  EXPECT_EQ(ok_generate, 1);
  EXPECT_EQ(bad_generate, 1);
  EXPECT_EQ(info_lines, 1);
}

TEST_F(ChaiServiceTest, ShutdownCancelsStreamsInFlight) {
  Start();
  engine_.set_mode(FakeEngine::Mode::kHang);
  v1::GenerateRequest req = Text("hi");
  req.set_request_id("at-shutdown");
  StreamResult r;
  std::thread client([&] { r = Generate(req); });
  for (int i = 0; i < 500 && !engine_.hanging("at-shutdown"); ++i)
    absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(engine_.hanging("at-shutdown"));
  EXPECT_EQ(service_->active_streams(), 1);
  EXPECT_FALSE(service_->WaitForStreams(absl::Milliseconds(50)));
  server_->Shutdown(absl::Now() + absl::Milliseconds(100));
  client.join();
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(engine_.cancelled(), (std::vector<std::string>{"at-shutdown"}));
  EXPECT_EQ(service_->active_streams(), 0);
}

}  // namespace
}  // namespace chai::server
