#include "server/grpc/api_key.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace chai::server {

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walk the longer length so a short guess takes as long as a long one; the
  // length difference is folded into the result, not branched on.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

absl::StatusOr<ApiKeys> ApiKeys::FromText(absl::string_view text) {
  ApiKeys out;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.size() < 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("API key on line ", line_no, " is shorter than 8 characters"));
    }
    for (char c : line) {
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(
            absl::StrCat("API key on line ", line_no, " has a character outside printable ASCII"));
      }
    }
    out.keys_.emplace_back(line);
  }
  if (out.keys_.empty()) return absl::InvalidArgumentError("API key file holds no key");
  return out;
}

absl::StatusOr<ApiKeys> ApiKeys::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read API key file ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<ApiKeys> keys = FromText(ss.str());
  if (!keys.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", keys.status().message()));
  }
  return keys;
}

absl::Status ApiKeys::Check(std::optional<absl::string_view> authorization,
                            std::optional<absl::string_view> x_api_key) const {
  std::optional<absl::string_view> presented;
  if (authorization.has_value()) {
    absl::string_view v = absl::StripAsciiWhitespace(*authorization);
    constexpr absl::string_view kBearer = "bearer ";
    if (v.size() > kBearer.size() && absl::StartsWithIgnoreCase(v, kBearer)) {
      presented = absl::StripAsciiWhitespace(v.substr(kBearer.size()));
    }
  }
  if (!presented.has_value() && x_api_key.has_value()) {
    presented = absl::StripAsciiWhitespace(*x_api_key);
  }
  if (!presented.has_value()) {
    return absl::UnauthenticatedError(
        "missing API key: send metadata 'authorization: Bearer KEY' or 'x-api-key: KEY'");
  }
  bool match = false;
  // Every key is compared (no early exit), so timing does not tell which
  // key, if any, matched.
  for (const std::string& key : keys_) match |= ConstantTimeEquals(*presented, key);
  if (!match) return absl::UnauthenticatedError("invalid API key");
  return absl::OkStatus();
}

}  // namespace chai::server
