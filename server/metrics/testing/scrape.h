// Test helpers for the metrics module: a strict parser of the Prometheus text
// format (0.0.4) and a plain-socket HTTP/1.1 GET. Header-only; tests only.
#ifndef CHAI_SERVER_METRICS_TESTING_SCRAPE_H_
#define CHAI_SERVER_METRICS_TESTING_SCRAPE_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/metrics/exposition.h"

namespace chai::server::metrics::testing {

struct ParsedFamily {
  std::string help;  // unescaped
  std::string type;
};

struct ParsedText {
  // Sample key -> value. The key is the sample name followed by its labels
  // sorted by name, values unescaped and `le` renormalised through
  // FormatValue, e.g. `h_bucket{a="x",le="0.5"}`, so two renderings that
  // differ only in label order or number spelling give the same keys.
  std::map<std::string, double> samples;
  std::map<std::string, ParsedFamily> families;
};

inline absl::StatusOr<double> ParseNumber(absl::string_view text) {
  if (text == "+Inf" || text == "Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  if (text == "NaN") return std::nan("");
  double v = 0;
  if (!absl::SimpleAtod(text, &v))
    return absl::InvalidArgumentError(absl::StrCat("bad number '", text, "'"));
  return v;
}

// Parses `{a="x",b="y"}` starting at text[*pos] == '{'.
inline absl::Status ParseLabels(absl::string_view text, size_t* pos,
                                std::vector<std::pair<std::string, std::string>>* labels) {
  size_t i = *pos + 1;
  while (i < text.size() && text[i] != '}') {
    const size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos) return absl::InvalidArgumentError("label without '='");
    std::string name(text.substr(i, eq - i));
    if (!IsValidLabelName(name) && name != "le") {
      return absl::InvalidArgumentError(absl::StrCat("bad label name '", name, "'"));
    }
    i = eq + 1;
    if (i >= text.size() || text[i] != '"')
      return absl::InvalidArgumentError("unquoted label value");
    ++i;
    std::string value;
    while (i < text.size() && text[i] != '"') {
      if (text[i] == '\\') {
        if (i + 1 >= text.size()) return absl::InvalidArgumentError("dangling escape");
        const char e = text[i + 1];
        if (e == 'n') {
          value.push_back('\n');
        } else if (e == '\\' || e == '"') {
          value.push_back(e);
        } else {
          return absl::InvalidArgumentError(absl::StrCat("bad escape \\", std::string(1, e)));
        }
        i += 2;
      } else {
        if (text[i] == '\n') return absl::InvalidArgumentError("raw newline in label value");
        value.push_back(text[i++]);
      }
    }
    if (i >= text.size()) return absl::InvalidArgumentError("unterminated label value");
    ++i;  // closing quote
    if (name == "le") {
      absl::StatusOr<double> le = ParseNumber(value);
      if (!le.ok()) return le.status();
      value = FormatValue(*le);
    }
    labels->emplace_back(std::move(name), std::move(value));
    if (i < text.size() && text[i] == ',') ++i;
  }
  if (i >= text.size()) return absl::InvalidArgumentError("unterminated label set");
  *pos = i + 1;
  return absl::OkStatus();
}

inline std::string UnescapeHelp(absl::string_view help) {
  std::string out;
  for (size_t i = 0; i < help.size(); ++i) {
    if (help[i] == '\\' && i + 1 < help.size() && (help[i + 1] == 'n' || help[i + 1] == '\\')) {
      out.push_back(help[i + 1] == 'n' ? '\n' : '\\');
      ++i;
    } else {
      out.push_back(help[i]);
    }
  }
  return out;
}

// INVALID_ARGUMENT (with the line) for anything that is not a comment, a
// blank line or a well-formed sample; duplicate samples are errors too.
inline absl::StatusOr<ParsedText> ParseText(absl::string_view text) {
  ParsedText out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    auto fail = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat("line ", line_no, " (", line, "): ", why));
    };
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      const size_t sp = line.find(' ');
      if (sp == absl::string_view::npos) return fail("HELP without text");
      out.families[std::string(line.substr(0, sp))].help = UnescapeHelp(line.substr(sp + 1));
      continue;
    }
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      const size_t sp = line.find(' ');
      if (sp == absl::string_view::npos) return fail("TYPE without type");
      out.families[std::string(line.substr(0, sp))].type = std::string(line.substr(sp + 1));
      continue;
    }
    if (line[0] == '#') continue;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    const std::string name(line.substr(0, pos));
    if (!IsValidMetricName(name)) return fail("bad metric name");
    std::vector<std::pair<std::string, std::string>> labels;
    if (pos < line.size() && line[pos] == '{') {
      if (absl::Status s = ParseLabels(line, &pos, &labels); !s.ok()) return fail(s.message());
    }
    if (pos >= line.size() || line[pos] != ' ') return fail("no value");
    const std::vector<absl::string_view> rest =
        absl::StrSplit(line.substr(pos + 1), ' ', absl::SkipEmpty());
    if (rest.empty() || rest.size() > 2) return fail("expected value [timestamp]");
    absl::StatusOr<double> value = ParseNumber(rest[0]);
    if (!value.ok()) return fail(value.status().message());
    std::sort(labels.begin(), labels.end());
    std::string key = name;
    if (!labels.empty()) {
      key += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        absl::StrAppend(&key, i ? "," : "", labels[i].first, "=\"", labels[i].second, "\"");
      }
      key += "}";
    }
    if (!out.samples.emplace(key, *value).second) return fail("duplicate sample");
  }
  return out;
}

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// One HTTP/1.1 request to 127.0.0.1:port over a plain socket; reads until the
// server closes. Fails instead of hanging: 10 s socket timeouts.
inline absl::StatusOr<HttpResponse> HttpRequest(int port, const std::string& method,
                                                const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to port ", port, " failed"));
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return absl::InternalError("send failed");
  }
  std::string raw;
  char buf[4096];
  while (true) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      close(fd);
      return absl::DeadlineExceededError("recv failed or timed out");
    }
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return absl::InternalError("no header terminator");
  HttpResponse response;
  response.body = raw.substr(end + 4);
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, end), "\r\n");
  const std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::InternalError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  return response;
}

}  // namespace chai::server::metrics::testing

#endif  // CHAI_SERVER_METRICS_TESTING_SCRAPE_H_
