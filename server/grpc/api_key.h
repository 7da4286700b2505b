// API-key authentication for the gRPC front end (--api-key-file).
//
// A request carries its key in the metadata "authorization: Bearer KEY" or
// "x-api-key: KEY" (the conventions of OpenAI-style servers and of API
// gateways). Keys are compared in constant time, so response timing does not
// reveal how much of a guessed key was right.
//
// Thread-safety: immutable after Load; Check may be called concurrently.
#ifndef CHAI_SERVER_GRPC_API_KEY_H_
#define CHAI_SERVER_GRPC_API_KEY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chai::server {

class ApiKeys {
 public:
  // Reads the keys from `path`: one per line, surrounding whitespace trimmed,
  // blank lines and lines starting with '#' ignored (several keys allow
  // rotation). NOT_FOUND / PERMISSION_DENIED when unreadable,
  // INVALID_ARGUMENT when it holds no key or a key shorter than 8 bytes or
  // with characters outside printable ASCII.
  static absl::StatusOr<ApiKeys> Load(const std::string& path);
  static absl::StatusOr<ApiKeys> FromText(absl::string_view text);

  // OK when either header value names a configured key. `authorization` must
  // be "Bearer KEY" (scheme case-insensitive); absent headers are nullopt.
  // UNAUTHENTICATED otherwise, with a message that never echoes the key.
  absl::Status Check(std::optional<absl::string_view> authorization,
                     std::optional<absl::string_view> x_api_key) const;

  size_t size() const { return keys_.size(); }

 private:
  std::vector<std::string> keys_;
};

// True iff a == b, in time that depends only on the lengths.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_API_KEY_H_
