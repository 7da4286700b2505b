#include "server/grpc/access_log.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace chai::server {
namespace {

// Keeps a field one token: client-chosen text must not break the line format.
std::string Token(const std::string& s) {
  if (s.empty()) return "-";
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(c > 0x20 && c < 0x7f && c != '"' ? c : '_');
  return out;
}

// Status messages are quoted; quotes and control characters are escaped.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

std::string FormatAccessRecord(const AccessRecord& r) {
  std::string line = absl::StrCat(
      "access method=", Token(r.method), " id=", Token(r.request_id), " peer=", Token(r.peer),
      " status=", absl::StatusCodeToString(r.code), " finish=", Token(r.finish_reason),
      " prompt_tokens=", r.prompt_tokens, " completion_tokens=", r.completion_tokens,
      absl::StrFormat(" queue_s=%.4f ttft_s=%.4f total_s=%.4f", r.queue_s, r.ttft_s, r.total_s));
  if (r.code != absl::StatusCode::kOk && !r.error.empty()) {
    absl::StrAppend(&line, " error=", Quoted(r.error));
  }
  return line;
}

void AccessLog::Write(const AccessRecord& r) {
  const std::string line = FormatAccessRecord(r) + "\n";
  absl::MutexLock lock(&mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

}  // namespace chai::server
