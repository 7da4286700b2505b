// The gRPC server of the daemon: listening socket (plain or TLS), transport
// limits, grpc.health.v1, optional reflection, and shutdown.
//
//   auto server = GrpcServer::Start(options, &service);   // health NOT_SERVING
//   ... load the model, service.Activate(...) ...
//   (*server)->SetServing(true);
//   ... on SIGTERM: SetServing(false), drain, Shutdown(deadline) ...
//
// Ownership: borrows the services (they must outlive the server).
// Thread-safety: SetServing and Shutdown may be called from any thread;
// Shutdown once.
#ifndef CHAI_SERVER_GRPC_GRPC_SERVER_H_
#define CHAI_SERVER_GRPC_GRPC_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace chai::server {

struct GrpcServerOptions {
  std::string host = "0.0.0.0";
  int32_t port = 50051;  // 0: an ephemeral port (see GrpcServer::port())
  // PEM files; both or neither. With them the port speaks TLS only.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Largest request the server reads (bigger ones: RESOURCE_EXHAUSTED from
  // gRPC) and largest message it sends.
  int32_t max_receive_message_bytes = 4 << 20;
  int32_t max_send_message_bytes = 16 << 20;
  // HTTP/2 streams per connection.
  int32_t max_concurrent_streams = 1024;
  // Server keepalive pings on idle connections, and the enforcement of
  // client pings: a client pinging more often than min_client_ping_interval
  // gets GOAWAY (ENHANCE_YOUR_CALM) after a few strikes.
  absl::Duration keepalive_time = absl::Minutes(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration min_client_ping_interval = absl::Seconds(10);
  bool permit_keepalive_without_calls = true;
  // Connections are closed gracefully after this age (plus the grace), so
  // a load balancer can rebalance long-lived clients. Infinite: never.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // grpc.reflection.v1alpha (off unless asked: it exposes the API surface).
  bool reflection = false;
  // Service names the health service reports on besides "" (the server as a
  // whole), e.g. "chai.v1.ChaiService".
  std::vector<std::string> health_service_names;

  // INVALID_ARGUMENT for a port outside [0, 65535], a lone TLS file,
  // non-positive sizes or durations.
  absl::Status Validate() const;
};

class GrpcServer {
 public:
  // Builds and starts the server with `services` registered and the health
  // service reporting NOT_SERVING. UNAVAILABLE when the address cannot be
  // bound; NOT_FOUND / INVALID_ARGUMENT for unreadable TLS files.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const GrpcServerOptions& options, const std::vector<grpc::Service*>& services);
  ~GrpcServer();

  // The bound port (the real one when options.port was 0).
  int32_t port() const { return port_; }
  // "HOST:PORT" as clients should dial it (IPv6 hosts in brackets).
  std::string address() const;

  // The health status of every service ("" and each registered name).
  void SetServing(bool serving);
  // Stops listening, cancels the calls still running at `deadline`, and
  // returns when every call has finished.
  void Shutdown(absl::Time deadline);

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string host_;
  std::vector<std::string> health_names_;
  int32_t port_ = 0;
  bool shut_down_ = false;
};

// HOST:PORT with IPv6 literals bracketed.
std::string JoinHostPort(const std::string& host, int32_t port);

// Reads a whole file (TLS PEMs, API keys). NOT_FOUND when unreadable.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_GRPC_SERVER_H_
