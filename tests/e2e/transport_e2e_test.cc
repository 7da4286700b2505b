// `chai serve`'s HTTP/2 transport limits end to end (issue 4 item 2): the
// per-connection stream cap, keepalive enforcement against clients that ping
// too often, and the maximum connection age that lets load balancers
// rebalance. Each is observed from outside, through a real client channel
// and the daemon's /metrics, against the real default model.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "tests/e2e/server_process.h"

namespace chai::e2e {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A channel of its own (unique channel args keep gRPC from sharing a
// subchannel, and so a connection, with other channels in the process).
std::shared_ptr<grpc::Channel> OwnChannel(const ServerProcess& server,
                                          grpc::ChannelArguments args = {}) {
  static std::atomic<int> id{0};
  args.SetInt("chai.test.channel_id", id++);
  return grpc::CreateCustomChannel(server.target(), grpc::InsecureChannelCredentials(), args);
}

bool Connect(const std::shared_ptr<grpc::Channel>& channel) {
  return channel->WaitForConnected(std::chrono::system_clock::now() + seconds(10));
}

// Polls the channel's state until it is no longer READY or `limit` passes;
// returns how long that took, or nullopt if it stayed READY.
std::optional<milliseconds> TimeUntilNotReady(const std::shared_ptr<grpc::Channel>& channel,
                                              milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (channel->GetState(false) != GRPC_CHANNEL_READY) {
      return std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  return std::nullopt;
}

bool TokenizeOk(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::ChaiService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + seconds(10));
  v1::TokenizeRequest req;
  req.set_text("hello");
  v1::TokenizeResponse resp;
  return stub->Tokenize(&ctx, req, &resp).ok() && resp.token_ids_size() > 0;
}

struct Goaway {
  uint32_t error_code = 0;
  std::string debug;
};

// A bare HTTP/2 client over a TCP socket: the connection preface, then frames
// written by hand. gRPC's own client cannot be made to misbehave (it paces
// its keepalive pings), which is what this test needs.
class RawHttp2 {
 public:
  explicit RawHttp2(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return;
    static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    connected_ = Send(std::string(kPreface, sizeof(kPreface) - 1)) && Frame(0x4, 0, "");
  }
  ~RawHttp2() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  void Ping(uint64_t payload) {
    std::string data(8, '\0');
    for (int i = 0; i < 8; ++i) data[i] = static_cast<char>(payload >> (56 - 8 * i));
    Frame(0x6, 0, data);
  }

  // Reads frames (acknowledging the server's SETTINGS) until a GOAWAY, the
  // connection closes or `limit` passes.
  std::optional<Goaway> ReadUntilGoaway(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      std::string header;
      if (!ReadExactly(9, end, &header)) return std::nullopt;
      const uint32_t length = (Byte(header, 0) << 16) | (Byte(header, 1) << 8) | Byte(header, 2);
      const uint8_t type = Byte(header, 3), flags = Byte(header, 4);
      std::string payload;
      if (!ReadExactly(length, end, &payload)) return std::nullopt;
      if (type == 0x4 && (flags & 0x1) == 0) Frame(0x4, 0x1, "");
      if (type == 0x7 && length >= 8) {
        Goaway g;
        g.error_code = (Byte(payload, 4) << 24) | (Byte(payload, 5) << 16) |
                       (Byte(payload, 6) << 8) | Byte(payload, 7);
        g.debug = payload.substr(8);
        return g;
      }
    }
    return std::nullopt;
  }

 private:
  static uint32_t Byte(const std::string& s, size_t i) { return static_cast<uint8_t>(s[i]); }

  bool Send(const std::string& bytes) {
    return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(bytes.size());
  }
  bool Frame(uint8_t type, uint8_t flags, const std::string& payload) {
    std::string f(9, '\0');
    f[0] = static_cast<char>(payload.size() >> 16);
    f[1] = static_cast<char>(payload.size() >> 8);
    f[2] = static_cast<char>(payload.size());
    f[3] = static_cast<char>(type);
    f[4] = static_cast<char>(flags);
    return Send(f + payload);
  }
  bool ReadExactly(size_t n, std::chrono::steady_clock::time_point end, std::string* out) {
    out->clear();
    while (out->size() < n) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
      char buf[4096];
      const ssize_t got = ::recv(fd_, buf, std::min(sizeof(buf), n - out->size()), 0);
      if (got <= 0) return false;
      out->append(buf, static_cast<size_t>(got));
    }
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
};

class TransportE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(HaveModel()) << "default model missing: run deploy/setup.sh";
  }
};

TEST_F(TransportE2eTest, MaxConcurrentStreamsCapsStreamsOnOneConnection) {
  auto server = ServerProcess::Start({"--max-concurrent-streams", "2", "--max-num-seqs", "8"});
  ASSERT_NE(server, nullptr);
  auto channel = OwnChannel(*server);
  ASSERT_TRUE(Connect(channel));
  auto stub = v1::ChaiService::NewStub(channel);

  constexpr int kStreams = 4;
  std::vector<Stream> streams(kStreams);
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest r = Greedy("Once upon a time", 24);
      r.mutable_stopping()->set_ignore_eos(true);
      streams[i] = Generate(*stub, r);
      ++done;
    });
  }
  // The daemon turns every stream it accepted into an engine request, so
  // running + waiting counts the streams the connection carries at once.
  double most = 0;
  while (done.load() < kStreams) {
    const double running = server->Metric("chai_num_requests_running").value_or(0);
    const double waiting = server->Metric("chai_num_requests_waiting").value_or(0);
    most = std::max(most, running + waiting);
    std::this_thread::sleep_for(milliseconds(30));
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(streams[i].status.ok()) << i << ": " << streams[i].status.error_message();
    EXPECT_EQ(streams[i].ids.size(), 24u);
  }
  EXPECT_EQ(most, 2.0) << "the connection carried more (or fewer) streams than the cap";
  EXPECT_EQ(server->Metric("chai_request_success_total{finished_reason=\"length\"}"),
            static_cast<double>(kStreams));
}

TEST_F(TransportE2eTest, ClientPingingTooOftenGetsGoawayTooManyPings) {
  auto server = ServerProcess::Start({});
  ASSERT_NE(server, nullptr);
  const int port = std::stoi(server->target().substr(server->target().rfind(':') + 1));

  // The daemon allows one ping per 10 s without data and answers the third
  // strike with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
  RawHttp2 abusive(port);
  ASSERT_TRUE(abusive.connected());
  for (uint64_t i = 0; i < 5; ++i) {
    abusive.Ping(i);
    std::this_thread::sleep_for(milliseconds(50));
  }
  const std::optional<Goaway> goaway = abusive.ReadUntilGoaway(seconds(5));
  ASSERT_TRUE(goaway.has_value()) << "five pings in 250 ms did not get the client disconnected";
  EXPECT_EQ(goaway->error_code, 0xbu) << "expected ENHANCE_YOUR_CALM";
  EXPECT_NE(goaway->debug.find("too_many_pings"), std::string::npos) << goaway->debug;

  // One ping is within the policy: no GOAWAY, and gRPC still works.
  RawHttp2 calm(port);
  ASSERT_TRUE(calm.connected());
  calm.Ping(42);
  EXPECT_FALSE(calm.ReadUntilGoaway(seconds(1)).has_value());
  auto channel = OwnChannel(*server);
  EXPECT_TRUE(TokenizeOk(channel));
}

TEST_F(TransportE2eTest, MaxConnectionAgeClosesConnectionsAndClientsReconnect) {
  auto aged = ServerProcess::Start({"--max-connection-age", "1s"});
  ASSERT_NE(aged, nullptr);
  auto channel = OwnChannel(*aged);
  ASSERT_TRUE(Connect(channel));
  ASSERT_TRUE(TokenizeOk(channel));
  // gRPC adds up to +-10% jitter to the age; GOAWAY then closes the idle
  // connection and the channel leaves READY.
  const std::optional<milliseconds> closed = TimeUntilNotReady(channel, seconds(6));
  ASSERT_TRUE(closed.has_value()) << "connection outlived --max-connection-age 1s";
  // The client reconnects transparently: a call after the GOAWAY succeeds.
  EXPECT_TRUE(TokenizeOk(channel));

  // Without the flag the same idle connection stays up.
  auto forever = ServerProcess::Start({});
  ASSERT_NE(forever, nullptr);
  auto kept = OwnChannel(*forever);
  ASSERT_TRUE(Connect(kept));
  EXPECT_FALSE(TimeUntilNotReady(kept, seconds(3)).has_value());
}

}  // namespace
}  // namespace chai::e2e
