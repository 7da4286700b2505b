// The /metrics HTTP endpoint: a small civetweb server that renders a
// Registry in the Prometheus text format on each scrape.
//
//   GET or HEAD /metrics  200, Content-Type text/plain; version=0.0.4
//   other methods there   405 with an Allow header
//   any other path        404
//
// Ownership: the server borrows `registry`, which must outlive it.
// Thread-safety: Start/Stop/port are for one owning thread; scrapes run on
// civetweb's worker threads (Registry is thread-safe).
#ifndef CHAI_SERVER_METRICS_METRICS_HTTP_H_
#define CHAI_SERVER_METRICS_METRICS_HTTP_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/metrics/registry.h"

struct mg_connection;
struct mg_context;

namespace chai::server::metrics {

struct MetricsHttpOptions {
  // A numeric IPv4 address ("0.0.0.0": every interface) or "localhost"
  // (127.0.0.1). IPv6 addresses are accepted only when the linked civetweb
  // has IPv6 (Debian 12's has not). No other host names are resolved.
  std::string bind_address = "0.0.0.0";
  // 0 picks a free ephemeral port (read it back with port()).
  int port = 9090;
  // Worker threads, i.e. scrapes served at once.
  int num_threads = 2;

  // INVALID_ARGUMENT naming the bad field.
  absl::Status Validate() const;
};

class MetricsHttpServer {
 public:
  // Binds and starts serving. INVALID_ARGUMENT for bad options; UNAVAILABLE
  // when the address cannot be bound (port in use, address not local), with
  // the operating system's reason.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const MetricsHttpOptions& options,
                                                                  const Registry* registry);

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer();  // Stop()

  // Stops listening and waits for in-flight scrapes. Idempotent. Takes up
  // to about 2 s: civetweb's listener polls in 2 s quanta.
  void Stop();

  // The bound port (the ephemeral one when options.port was 0).
  int port() const { return port_; }
  // "ADDRESS:PORT" as bound, for the start-up log line.
  std::string address() const;

 private:
  MetricsHttpServer(const Registry* registry, std::string bind_address)
      : registry_(registry), bind_address_(std::move(bind_address)) {}

  // civetweb's request handler; `server` is this.
  static int Handle(mg_connection* connection, void* server);

  const Registry* const registry_;
  const std::string bind_address_;
  mg_context* context_ = nullptr;
  int port_ = 0;
};

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_METRICS_HTTP_H_
