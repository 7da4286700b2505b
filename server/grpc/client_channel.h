// Client side of the daemon's transport options, shared by `chai health`
// and `chai bench`: a channel to HOST:PORT, plain or TLS (with a CA file, or
// the system roots), and the API key as call metadata.
//
// Thread-safety: free functions; the returned channel is thread-safe.
#ifndef CHAI_SERVER_GRPC_CLIENT_CHANNEL_H_
#define CHAI_SERVER_GRPC_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace chai::server {

struct ClientOptions {
  std::string target = "127.0.0.1:50051";
  bool tls = false;
  std::string tls_ca_file;      // PEM roots; empty: the system's
  std::string tls_server_name;  // overrides the name checked in the cert
  std::string api_key;          // sent as "authorization: Bearer KEY"
  int32_t max_receive_message_bytes = 64 << 20;
};

// NOT_FOUND for an unreadable CA file.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeClientChannel(const ClientOptions& options);

// Adds the API key (if any) to a call.
void AddCallCredentials(const ClientOptions& options, grpc::ClientContext* context);

// Reads an API key file and returns its first key (trimmed).
absl::StatusOr<std::string> FirstApiKey(const std::string& path);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_CLIENT_CHANNEL_H_
