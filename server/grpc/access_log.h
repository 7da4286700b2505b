// One line per request on stderr (DESIGN.md section 3): what operators grep
// when a client reports a problem. Format (key=value, space separated, one
// line, fields never contain spaces):
//
//   access method=Generate id=req-12 peer=ipv4:127.0.0.1:5310 status=OK
//       finish=length prompt_tokens=9 completion_tokens=16 queue_s=0.001
//       ttft_s=0.052 total_s=0.310
//
// Thread-safety: Write may be called from any thread; each line is written
// whole (one write under a mutex).
#ifndef CHAI_SERVER_GRPC_ACCESS_LOG_H_
#define CHAI_SERVER_GRPC_ACCESS_LOG_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace chai::server {

struct AccessRecord {
  std::string method;  // "Generate", "Tokenize", ...
  std::string request_id;
  std::string peer;
  absl::StatusCode code = absl::StatusCode::kOk;
  std::string finish_reason;  // "" when the request never finished in the engine
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_s = 0;
  double ttft_s = 0;
  double total_s = 0;
  std::string error;  // the status message when code != OK (spaces kept, quoted)
};

std::string FormatAccessRecord(const AccessRecord& r);

class AccessLog {
 public:
  // `out` is not owned (stderr in the daemon, a temp file in tests).
  explicit AccessLog(std::FILE* out) : out_(out) {}
  void Write(const AccessRecord& r);

 private:
  absl::Mutex mu_;
  std::FILE* out_;
};

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_ACCESS_LOG_H_
