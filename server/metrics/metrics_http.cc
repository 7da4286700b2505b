#include "server/metrics/metrics_http.h"

#include <arpa/inet.h>
#include <civetweb.h>

#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/metrics/exposition.h"

namespace chai::server::metrics {
namespace {

// civetweb reports why mg_start failed only through its log callback, which
// runs on the starting thread; this collects those lines during Start.
thread_local std::vector<std::string>* start_log = nullptr;

int LogMessage(const mg_connection* /*connection*/, const char* message) {
  if (start_log != nullptr && message != nullptr) start_log->emplace_back(message);
  return 1;  // handled: civetweb prints nothing itself
}

void InitCivetweb() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

// The address civetweb is given: numeric, with "localhost" spelled out.
std::string BindAddress(const std::string& option) {
  return option == "localhost" ? "127.0.0.1" : option;
}

void SendResponse(mg_connection* connection, int status, const char* reason,
                  const char* content_type, const std::string& body, bool head,
                  const char* extra_headers) {
  mg_printf(connection,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
            "Connection: close\r\n\r\n",
            status, reason, content_type, body.size(), extra_headers);
  if (!head && !body.empty()) mg_write(connection, body.data(), body.size());
}

}  // namespace

absl::Status MetricsHttpOptions::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port must be in [0, 65535], got ", port));
  }
  if (num_threads < 1 || num_threads > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics server threads must be in [1, 64], got ", num_threads));
  }
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, BindAddress(bind_address).c_str(), &v4) == 1) return absl::OkStatus();
  if (inet_pton(AF_INET6, bind_address.c_str(), &v6) == 1) {
    InitCivetweb();
    if (mg_check_feature(MG_FEATURES_IPV6) != 0) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("metrics bind address ", bind_address,
                                                   ": this civetweb build has no IPv6 support"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("metrics bind address \"", bind_address,
                   "\" is not a numeric IPv4 address or localhost (e.g. 0.0.0.0, 127.0.0.1)"));
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const MetricsHttpOptions& options, const Registry* registry) {
  if (registry == nullptr) return absl::InvalidArgumentError("metrics server: null registry");
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  InitCivetweb();

  const std::string address = BindAddress(options.bind_address);
  const bool v6 = address.find(':') != std::string::npos;
  const std::string listen = v6 ? absl::StrCat("[", address, "]:", options.port)
                                : absl::StrCat(address, ":", options.port);
  const std::string threads = absl::StrCat(options.num_threads);
  const char* config[] = {"listening_ports", listen.c_str(), "num_threads", threads.c_str(),
                          // A stuck client must not hold a worker forever.
                          "request_timeout_ms", "10000", nullptr};
  mg_callbacks callbacks;
  std::memset(&callbacks, 0, sizeof(callbacks));
  callbacks.log_message = LogMessage;

  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer(registry, address));
  mg_init_data init{&callbacks, server.get(), config};
  char error_text[256] = "";
  unsigned error_code = 0;
  mg_error_data error{&error_code, error_text, sizeof(error_text)};

  std::vector<std::string> log;
  start_log = &log;
  server->context_ = mg_start2(&init, &error);
  start_log = nullptr;
  if (server->context_ == nullptr) {
    // civetweb's own text is generic ("Failed to setup server ports"); the
    // log lines carry the reason ("cannot bind to ...: Address already in use").
    if (error_text[0] != '\0') log.emplace_back(error_text);
    return absl::UnavailableError(
        absl::StrCat("metrics server cannot listen on ", listen, ": ", absl::StrJoin(log, "; ")));
  }
  mg_set_request_handler(server->context_, "/", &MetricsHttpServer::Handle, server.get());

  mg_server_port ports[4];
  const int n = mg_get_server_ports(server->context_, 4, ports);
  if (n < 1 || ports[0].port <= 0) {
    return absl::InternalError(absl::StrCat("metrics server on ", listen, ": no bound port"));
  }
  server->port_ = ports[0].port;
  return server;
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

void MetricsHttpServer::Stop() {
  if (context_ == nullptr) return;
  mg_stop(context_);
  context_ = nullptr;
}

std::string MetricsHttpServer::address() const {
  return bind_address_.find(':') != std::string::npos
             ? absl::StrCat("[", bind_address_, "]:", port_)
             : absl::StrCat(bind_address_, ":", port_);
}

int MetricsHttpServer::Handle(mg_connection* connection, void* server) {
  const mg_request_info* request = mg_get_request_info(connection);
  const std::string uri = request->local_uri != nullptr ? request->local_uri : "";
  const std::string method = request->request_method != nullptr ? request->request_method : "";
  const bool head = method == "HEAD";
  if (uri != "/metrics") {
    SendResponse(connection, 404, "Not Found", "text/plain; charset=utf-8",
                 "404 not found: metrics are at /metrics\n", head, "");
    return 404;
  }
  if (method != "GET" && !head) {
    SendResponse(connection, 405, "Method Not Allowed", "text/plain; charset=utf-8",
                 "405 method not allowed: use GET\n", false, "Allow: GET, HEAD\r\n");
    return 405;
  }
  const std::string body = static_cast<MetricsHttpServer*>(server)->registry_->Render();
  SendResponse(connection, 200, "OK", kTextContentType, body, head, "");
  return 200;
}

}  // namespace chai::server::metrics
