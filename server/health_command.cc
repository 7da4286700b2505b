#include "server/health_command.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/cli_flags.h"
#include "server/grpc/client_channel.h"

namespace chai::server {
namespace {

constexpr char kSynopsis[] =
    "chai health [--target HOST:PORT] [--service NAME] [--timeout-ms N] [--tls] [--tls-ca F] "
    "[--tls-server-name NAME]";

}  // namespace

int RunHealth(const std::vector<std::string>& args) {
  FlagSet f;
  f.Value("target", "server address", "127.0.0.1:50051");
  f.Value("service", "service to ask about; empty = the server as a whole", "");
  f.Value("timeout-ms", "give up after this long", "3000");
  f.Bool("tls", "connect with TLS");
  f.Value("tls-ca", "PEM root certificates for --tls (default: the system's)");
  f.Value("tls-server-name", "name to verify in the server's certificate");
  if (absl::Status s = f.Parse(args); !s.ok()) {
    std::fprintf(stderr, "chai health: %s (see --help)\n", std::string(s.message()).c_str());
    return 2;
  }
  if (f.help_requested()) {
    std::cout << f.Usage(kSynopsis);
    return 0;
  }
  absl::StatusOr<int64_t> timeout_ms = f.Int("timeout-ms", 1, 600000);
  if (!timeout_ms.ok()) {
    std::fprintf(stderr, "chai health: %s (see --help)\n",
                 std::string(timeout_ms.status().message()).c_str());
    return 2;
  }
  ClientOptions co;
  co.target = f.Str("target");
  co.tls = f.On("tls");
  co.tls_ca_file = f.Str("tls-ca");
  co.tls_server_name = f.Str("tls-server-name");
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = MakeClientChannel(co);
  if (!channel.ok()) {
    std::fprintf(stderr, "chai health: %s\n", std::string(channel.status().message()).c_str());
    return 1;
  }
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(*timeout_ms));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(f.Str("service"));
  grpc::health::v1::HealthCheckResponse resp;
  grpc::Status s = stub->Check(&ctx, req, &resp);
  if (!s.ok()) {
    std::fprintf(stderr, "chai health: %s: %s\n", co.target.c_str(), s.error_message().c_str());
    std::cout << "UNREACHABLE\n";
    return 1;
  }
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace chai::server
