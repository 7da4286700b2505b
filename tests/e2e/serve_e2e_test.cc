// `chai serve` end to end over loopback with the real default model: a
// child process on ephemeral ports, driven by gRPC clients and scraped on
// /metrics. Outputs are short (the machine is small); each test starts its
// own server because ctest runs every test case as its own process.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/server_process.h"

namespace chai::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

grpc::health::v1::HealthCheckResponse::ServingStatus Health(const ServerProcess& server) {
  auto stub = grpc::health::v1::Health::NewStub(server.Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

// One raw message on a streaming call by method name (no generated stub):
// for malformed requests and for services whose .proto Debian lacks.
std::pair<grpc::Status, std::string> RawCall(const std::shared_ptr<grpc::Channel>& channel,
                                             const std::string& method, const std::string& bytes) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(&ctx, method, &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  cq.Next(&tag, &ok);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  cq.Next(&tag, &ok);
  call->WritesDone(reinterpret_cast<void*>(3));
  cq.Next(&tag, &ok);
  std::string response;
  grpc::ByteBuffer reply;
  call->Read(&reply, reinterpret_cast<void*>(4));
  cq.Next(&tag, &ok);
  if (ok) {
    std::vector<grpc::Slice> slices;
    (void)reply.Dump(&slices);
    for (const grpc::Slice& sl : slices) {
      response.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
    }
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(5)) {
  }
  return {status, response};
}

class ServeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(HaveModel()) << "default model missing: run deploy/setup.sh";
  }
};

TEST_F(ServeE2eTest, SixtyFourConcurrentGreedyStreamsMatchEachAlone) {
  auto server = ServerProcess::Start({"--max-num-seqs", "64"});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  const std::vector<std::string> prompts = {"The capital of France is",
                                            "Once upon a time",
                                            "1, 2, 3, 4,",
                                            "def add(a, b):",
                                            "The quick brown fox",
                                            "Water boils at",
                                            "My favourite colour is",
                                            "In 1492,"};
  constexpr int kTokens = 8;
  std::vector<Stream> alone;
  for (const std::string& p : prompts) {
    v1::GenerateRequest r = Greedy(p, kTokens);
    r.mutable_stopping()->set_ignore_eos(true);
    alone.push_back(Generate(*stub, r));
    ASSERT_TRUE(alone.back().status.ok()) << alone.back().status.error_message();
    ASSERT_EQ(alone.back().ids.size(), static_cast<size_t>(kTokens)) << p;
  }
  std::vector<Stream> together(64);
  std::vector<std::thread> threads;
  for (int i = 0; i < 64; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest r = Greedy(prompts[i % prompts.size()], kTokens);
      r.mutable_stopping()->set_ignore_eos(true);
      r.set_request_id("c" + std::to_string(i));
      together[i] = Generate(*stub, r);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 64; ++i) {
    const Stream& a = alone[i % prompts.size()];
    ASSERT_TRUE(together[i].status.ok()) << i << ": " << together[i].status.error_message();
    EXPECT_EQ(together[i].ids, a.ids) << "stream " << i;
    EXPECT_EQ(together[i].Text(), a.Text()) << "stream " << i;
    ASSERT_TRUE(together[i].complete.has_value());
    EXPECT_EQ(together[i].complete->finish_reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(together[i].complete->usage().completion_tokens(), kTokens);
  }
  // The first alone request is the one `chai generate` would produce too:
  // the text is what the tokens decode to.
  grpc::ClientContext ctx;
  v1::DetokenizeRequest d;
  d.mutable_token_ids()->Add(alone[0].ids.begin(), alone[0].ids.end());
  v1::DetokenizeResponse dr;
  ASSERT_TRUE(stub->Detokenize(&ctx, d, &dr).ok());
  EXPECT_EQ(dr.text(), alone[0].Text());
  EXPECT_EQ(server->Metric("chai_request_success_total{finished_reason=\"length\"}"),
            64.0 + prompts.size());
}

TEST_F(ServeE2eTest, CancelMidStreamAndDuringPrefillFreesTheCache) {
  // Small prefill chunks make a long prompt take many steps, so a cancel can
  // land during prefill even on a fast CI machine (30 steps of 16 tokens).
  auto server = ServerProcess::Start({"--max-batch-tokens", "16", "--max-num-seqs", "8"});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  ASSERT_EQ(server->Metric("chai_kv_cache_usage_ratio"), 0.0);

  {  // Mid-stream: read two messages, then cancel.
    grpc::ClientContext ctx;
    v1::GenerateRequest r = Greedy("Tell me a long story about a dragon.", 400);
    r.mutable_stopping()->set_ignore_eos(true);
    auto reader = stub->Generate(&ctx, r);
    v1::GenerateResponse msg;
    ASSERT_TRUE(reader->Read(&msg));
    ASSERT_TRUE(reader->Read(&msg));
    EXPECT_GT(server->Metric("chai_kv_cache_usage_ratio").value_or(0), 0.0);
    ctx.TryCancel();
    while (reader->Read(&msg)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(Eventually([&] { return server->Metric("chai_kv_cache_usage_ratio") == 0.0; },
                         milliseconds(3000)))
      << server->ScrapeMetrics();
  EXPECT_EQ(server->Metric("chai_num_requests_running"), 0.0);
  EXPECT_TRUE(Eventually(
      [&] {
        return server->Metric("chai_request_success_total{finished_reason=\"cancelled\"}") == 1.0;
      },
      milliseconds(3000)));

  {  // During prefill: a 480-token prompt in 16-token chunks; cancel before
     // the first token.
    grpc::ClientContext ctx;
    v1::GenerateRequest r;
    for (int i = 0; i < 480; ++i) r.mutable_token_ids()->add_ids(1000 + i);
    r.mutable_sampling()->set_temperature(0);
    r.mutable_stopping()->set_max_tokens(8);
    std::atomic<bool> got_token{false};
    auto reader = stub->Generate(&ctx, r);
    ASSERT_TRUE(Eventually([&] { return server->Metric("chai_kv_cache_usage_ratio") > 0.0; },
                           milliseconds(10000)));
    ctx.TryCancel();
    v1::GenerateResponse msg;
    while (reader->Read(&msg)) got_token = got_token || msg.token_ids_size() > 0;
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
    EXPECT_FALSE(got_token) << "the cancel landed after prefill; the test did not test prefill";
  }
  EXPECT_TRUE(Eventually([&] { return server->Metric("chai_kv_cache_usage_ratio") == 0.0; },
                         milliseconds(3000)))
      << server->ScrapeMetrics();
  EXPECT_EQ(server->Metric("chai_kv_cache_bytes{cache=\"k\"}"), 0.0);
  // The server still serves.
  EXPECT_TRUE(Generate(*stub, Greedy("Hello", 2)).status.ok());
}

TEST_F(ServeE2eTest, DeadlineExpiresAndTheServerCarriesOn) {
  auto server = ServerProcess::Start({});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + milliseconds(400));
  v1::GenerateRequest r = Greedy("Write a long essay about the sea.", 400);
  r.mutable_stopping()->set_ignore_eos(true);
  Stream s = Generate(*stub, r, &ctx);
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(s.ids.size(), 400u);
  EXPECT_TRUE(Eventually([&] { return server->Metric("chai_kv_cache_usage_ratio") == 0.0; },
                         milliseconds(3000)));
  EXPECT_TRUE(Generate(*stub, Greedy("Hello", 2)).status.ok());
  EXPECT_TRUE(
      Eventually([&] { return server->Stderr().find("DEADLINE_EXCEEDED") != std::string::npos; },
                 milliseconds(3000)))
      << server->Stderr();
}

TEST_F(ServeE2eTest, FullQueueIsResourceExhausted) {
  auto server = ServerProcess::Start({"--max-num-seqs", "1", "--max-queue", "1"});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  std::vector<Stream> streams(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest r = Greedy("Count slowly:", 24);
      r.mutable_stopping()->set_ignore_eos(true);
      streams[i] = Generate(*stub, r);
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (const Stream& s : streams) {
    if (s.status.ok()) ++ok;
    if (s.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) ++exhausted;
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(exhausted, 1);
  EXPECT_EQ(ok + exhausted, 6);
  EXPECT_EQ(server->Metric("chai_request_failure_total{reason=\"resource_exhausted\"}"),
            static_cast<double>(exhausted));
}

TEST_F(ServeE2eTest, BadRequestsGetTheirCodesWhileOtherStreamsCarryOn) {
  auto server = ServerProcess::Start({});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  // Two good streams run throughout.
  std::vector<Stream> good(2);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest r = Greedy("Tell me about the moon.", 48);
      r.set_request_id("good-" + std::to_string(i));
      r.mutable_stopping()->set_ignore_eos(true);
      good[i] = Generate(*stub, r);
    });
  }
  ASSERT_TRUE(Eventually([&] { return server->Metric("chai_num_requests_running") == 2.0; },
                         milliseconds(10000)));

  {  // First, while the good streams surely run: a duplicate request id.
    v1::GenerateRequest dup = Greedy("hi", 4);
    dup.set_request_id("good-0");
    Stream s = Generate(*stub, dup);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << s.status.error_message();
  }
  std::map<std::string, std::pair<v1::GenerateRequest, grpc::StatusCode>> cases;
  auto with = [](const std::function<void(v1::GenerateRequest*)>& edit) {
    v1::GenerateRequest r = Greedy("hi", 4);
    edit(&r);
    return r;
  };
  cases["nan temperature"] = {
      with([](auto* r) { r->mutable_sampling()->set_temperature(std::nanf("")); }),
      grpc::StatusCode::INVALID_ARGUMENT};
  cases["negative temperature"] = {
      with([](auto* r) { r->mutable_sampling()->set_temperature(-1); }),
      grpc::StatusCode::INVALID_ARGUMENT};
  cases["top_p 0"] = {with([](auto* r) { r->mutable_sampling()->set_top_p(0); }),
                      grpc::StatusCode::INVALID_ARGUMENT};
  cases["top_p 1.5"] = {with([](auto* r) { r->mutable_sampling()->set_top_p(1.5f); }),
                        grpc::StatusCode::INVALID_ARGUMENT};
  cases["token id outside vocab"] = {with([](auto* r) { r->mutable_token_ids()->add_ids(49152); }),
                                     grpc::StatusCode::INVALID_ARGUMENT};
  cases["prompt + max_tokens over context"] = {
      with([](auto* r) { r->mutable_stopping()->set_max_tokens(512); }),
      grpc::StatusCode::INVALID_ARGUMENT};
  cases["oversize message"] = {with([](auto* r) { r->set_text(std::string(5 << 20, 'a')); }),
                               grpc::StatusCode::RESOURCE_EXHAUSTED};
  for (const auto& [name, c] : cases) {
    Stream s = Generate(*stub, c.first);
    EXPECT_EQ(s.status.error_code(), c.second) << name << ": " << s.status.error_message();
    EXPECT_TRUE(s.ids.empty()) << name;
  }
  {  // Malformed protobuf: bytes that do not parse as a GenerateRequest.
    // gRPC 1.51's callback handler fails a request it cannot deserialize
    // with UNIMPLEMENTED before any reactor exists (server_callback_handlers.h).
    grpc::Status status = RawCall(server->Channel(), "/chai.v1.ChaiService/Generate",
                                  std::string("\xff\xff\xff\xff\x0f\x01", 6))
                              .first;
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED) << status.error_message();
  }
  for (std::thread& t : threads) t.join();
  for (const Stream& s : good) {
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    EXPECT_EQ(s.ids.size(), 48u);
  }
  EXPECT_EQ(Health(*server), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ServeE2eTest, MultibyteCharacterSplitAcrossTokensArrivesWhole) {
  // Plain attention: the answer below is plain attention's greedy output.
  auto server = ServerProcess::Start({"--chai-config", "none"});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  // Greedy SmolLM2 answers this with "🌟" spelled as three byte tokens.
  v1::GenerateRequest r;
  v1::ChatMessage* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Reply with three emoji.");
  r.mutable_sampling()->set_temperature(0);
  r.mutable_stopping()->set_max_tokens(6);
  Stream s = Generate(*stub, r);
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  for (const std::string& t : s.texts) {
    EXPECT_TRUE(ValidUtf8(t)) << "a message carried a partial character";
    EXPECT_EQ(t.find("\xEF\xBF\xBD"), std::string::npos) << "a character was mangled";
  }
  EXPECT_NE(s.Text().find("\xF0\x9F\x8C\x9F"), std::string::npos) << s.Text();  // U+1F31F
  // At least one streamed token is a fragment of a character on its own.
  int fragments = 0;
  for (int32_t id : s.ids) {
    grpc::ClientContext ctx;
    v1::DetokenizeRequest d;
    d.add_token_ids(id);
    v1::DetokenizeResponse dr;
    ASSERT_TRUE(stub->Detokenize(&ctx, d, &dr).ok());
    fragments += dr.text().find("\xEF\xBF\xBD") != std::string::npos;
  }
  EXPECT_GE(fragments, 2);
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  return std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1) + ":" + out;
}

TEST_F(ServeE2eTest, TlsAndApiKey) {
  const std::string dir = ::testing::TempDir() + "/chai_tls_" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string gen =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  if (std::system(gen.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a test certificate";
  std::ofstream(dir + "/keys.txt") << "# test keys\ne2e-secret-key-42\n";
  auto server = ServerProcess::Start({"--tls-cert", dir + "/cert.pem", "--tls-key",
                                      dir + "/key.pem", "--api-key-file", dir + "/keys.txt"});
  ASSERT_NE(server, nullptr);
  std::ifstream cert_in(dir + "/cert.pem");
  std::stringstream cert;
  cert << cert_in.rdbuf();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = cert.str();
  auto stub =
      v1::ChaiService::NewStub(grpc::CreateChannel(server->target(), grpc::SslCredentials(ssl)));
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer e2e-secret-key-42");
    Stream s = Generate(*stub, Greedy("Hello", 3), &ctx);
    EXPECT_TRUE(s.status.ok()) << s.status.error_message();
    EXPECT_EQ(s.ids.size(), 3u);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-api-key", "e2e-secret-key-42");
    EXPECT_TRUE(Generate(*stub, Greedy("Hello", 1), &ctx).status.ok());
  }
  EXPECT_EQ(Generate(*stub, Greedy("Hello", 1)).status.error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer e2e-secret-key-43");
    EXPECT_EQ(Generate(*stub, Greedy("Hello", 1), &ctx).status.error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {  // A plaintext client cannot talk to the TLS port.
    auto plain = server->Stub();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + seconds(3));
    ctx.AddMetadata("authorization", "Bearer e2e-secret-key-42");
    EXPECT_FALSE(Generate(*plain, Greedy("Hello", 1), &ctx).status.ok());
  }
  EXPECT_EQ(server->Metric("chai_request_failure_total{reason=\"unauthenticated\"}"), 2.0);
  // `chai health` speaks TLS too (health needs no key).
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " health --target " + server->target() +
                  " --tls --tls-ca " + dir + "/cert.pem"),
            "0:SERVING\n");
}

TEST_F(ServeE2eTest, SigtermDrainsStreamsInFlightAndExitsZero) {
  auto server = ServerProcess::Start({"--drain-grace", "4s", "--drain-timeout", "60s"});
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " health --target " + server->target()),
            "0:SERVING\n");
  auto stub = server->Stub();
  std::vector<Stream> streams(3);
  std::vector<std::thread> threads;
  std::atomic<int> started{0};
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      v1::GenerateRequest r = Greedy("Describe a forest in detail.", 40);
      r.mutable_stopping()->set_ignore_eos(true);
      auto reader = stub->Generate(&ctx, r);
      v1::GenerateResponse first;
      Stream s;
      if (reader->Read(&first)) {
        s.ids.assign(first.token_ids().begin(), first.token_ids().end());
        ++started;
      }
      Stream rest = ReadStream(reader.get());
      s.ids.insert(s.ids.end(), rest.ids.begin(), rest.ids.end());
      s.status = rest.status;
      s.complete = rest.complete;
      streams[i] = s;
    });
  }
  ASSERT_TRUE(Eventually([&] { return started == 3; }, milliseconds(30000)));
  const auto signalled = std::chrono::steady_clock::now();
  server->Signal(SIGTERM);
  // Load balancers see NOT_SERVING at once, while requests are still admitted
  // during the grace period (4 s: generous for a loaded machine).
  EXPECT_TRUE(Eventually(
      [&] { return Health(*server) == grpc::health::v1::HealthCheckResponse::NOT_SERVING; },
      milliseconds(2500)));
  Stream during_grace = Generate(*stub, Greedy("Hi", 1));
  const bool sent_in_grace = std::chrono::steady_clock::now() - signalled < milliseconds(3500);
  // After the grace period new requests are refused.
  std::this_thread::sleep_until(signalled + milliseconds(4500));
  Stream after_grace = Generate(*stub, Greedy("Hi", 1));
  EXPECT_EQ(after_grace.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << after_grace.status.error_message();
  for (std::thread& t : threads) t.join();
  for (const Stream& s : streams) {
    ASSERT_TRUE(s.status.ok()) << s.status.error_message();
    EXPECT_EQ(s.ids.size(), 40u);
    ASSERT_TRUE(s.complete.has_value());
    EXPECT_EQ(s.complete->finish_reason(), v1::FINISH_REASON_LENGTH);
  }
  EXPECT_EQ(server->WaitExit(seconds(60)), 0) << server->Stderr();
  // The request sent well inside the grace period was served.
  if (sent_in_grace) {
    EXPECT_TRUE(during_grace.status.ok()) << during_grace.status.error_message();
  }
}

TEST_F(ServeE2eTest, DrainTimeoutCancelsWhatIsLeftAndExitsZero) {
  auto server = ServerProcess::Start(
      {"--drain-grace", "0s", "--drain-timeout", "1s", "--max-model-len", "512"});
  ASSERT_NE(server, nullptr);
  auto stub = server->Stub();
  grpc::ClientContext ctx;
  v1::GenerateRequest r = Greedy("Write a very long poem.", 480);
  r.mutable_stopping()->set_ignore_eos(true);
  auto reader = stub->Generate(&ctx, r);
  v1::GenerateResponse msg;
  ASSERT_TRUE(reader->Read(&msg));
  server->Signal(SIGTERM);
  Stream rest = ReadStream(reader.get());
  EXPECT_FALSE(rest.status.ok());
  EXPECT_EQ(server->WaitExit(seconds(60)), 0) << server->Stderr();
  EXPECT_NE(server->Stderr().find("cancelling 1 streams"), std::string::npos) << server->Stderr();
}

TEST_F(ServeE2eTest, ReflectionOnlyWhenAsked) {
  // ServerReflectionRequest{list_services: "*"} (field 7), hand-encoded:
  // Debian ships the reflection plugin but not its .proto.
  const std::string list_services("\x3a\x01*", 3);
  const std::string method = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  {
    auto server = ServerProcess::Start({"--metrics-port", "-1"});
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(RawCall(server->Channel(), method, list_services).first.error_code(),
              grpc::StatusCode::UNIMPLEMENTED);
  }
  auto server = ServerProcess::Start({"--reflection", "--metrics-port", "-1"});
  ASSERT_NE(server, nullptr);
  auto [status, response] = RawCall(server->Channel(), method, list_services);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_NE(response.find("chai.v1.ChaiService"), std::string::npos);
}

TEST_F(ServeE2eTest, BadCommandLinesExitTwo) {
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " serve --bogus 2>/dev/null"), "2:");
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " serve --model x --port 70000 2>/dev/null"), "2:");
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " serve --model x --tls-cert a 2>/dev/null"), "2:");
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " serve --model x --drain-timeout soon 2>/dev/null"),
            "2:");
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " bench --concurrency 0 --requests 1 2>/dev/null"),
            "2:");
  EXPECT_EQ(Shell(std::string(CHAI_BINARY) + " health --nope 2>/dev/null"), "2:");
  // Nothing listens there: health says so with exit 1.
  EXPECT_EQ(
      Shell(std::string(CHAI_BINARY) + " health --target 127.0.0.1:1 --timeout-ms 500 2>/dev/null"),
      "1:UNREACHABLE\n");
}

TEST_F(ServeE2eTest, BenchReportsJson) {
  auto server = ServerProcess::Start({});
  ASSERT_NE(server, nullptr);
  const std::string out = Shell(std::string(CHAI_BINARY) + " bench --target " + server->target() +
                                " --concurrency 2 --requests 4 --prompt-tokens 8 --max-tokens 4 "
                                "--json");
  ASSERT_EQ(out.substr(0, 2), "0:") << out;
  nlohmann::json j = nlohmann::json::parse(out.substr(2));
  EXPECT_EQ(j["succeeded"], 4);
  EXPECT_EQ(j["output_tokens"], 16);
  EXPECT_EQ(j["ttft_s"]["n"], 4);
  EXPECT_EQ(j["itl_s"]["n"], 12);  // 3 gaps per request
  EXPECT_GT(j["output_throughput"].get<double>(), 0);
  EXPECT_LE(j["ttft_s"]["p50"].get<double>(), j["ttft_s"]["p99"].get<double>());
  EXPECT_TRUE(j["errors"].empty());
}

}  // namespace
}  // namespace chai::e2e
