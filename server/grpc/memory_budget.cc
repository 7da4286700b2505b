#include "server/grpc/memory_budget.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace chai::server {
namespace {

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<int64_t> ReadNumber(const std::string& path) {
  std::optional<std::string> text = ReadSmallFile(path);
  if (!text.has_value()) return std::nullopt;
  int64_t v;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &v) || v < 0) return std::nullopt;
  return v;
}

// cgroup v1 reports "no limit" as a huge page-rounded number.
constexpr int64_t kUnlimitedV1 = int64_t{1} << 60;

}  // namespace

std::optional<int64_t> CgroupV2HeadroomBytes(const std::string& dir) {
  // memory.max is "max" (no limit) or bytes.
  std::optional<std::string> max = ReadSmallFile(dir + "/memory.max");
  int64_t limit;
  if (!max.has_value() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*max), &limit)) {
    return std::nullopt;
  }
  const int64_t used = ReadNumber(dir + "/memory.current").value_or(0);
  return std::max<int64_t>(limit - used, 0);
}

std::optional<int64_t> CgroupV1HeadroomBytes(const std::string& dir) {
  std::optional<int64_t> limit = ReadNumber(dir + "/memory.limit_in_bytes");
  if (!limit.has_value() || *limit >= kUnlimitedV1) return std::nullopt;
  const int64_t used = ReadNumber(dir + "/memory.usage_in_bytes").value_or(0);
  return std::max<int64_t>(*limit - used, 0);
}

absl::StatusOr<int64_t> AvailableMemoryBytes(const MemorySources& sources) {
  std::optional<std::string> meminfo = ReadSmallFile(sources.meminfo);
  std::optional<int64_t> available;
  if (meminfo.has_value()) {
    for (absl::string_view line : absl::StrSplit(*meminfo, '\n')) {
      if (!absl::ConsumePrefix(&line, "MemAvailable:")) continue;
      line = absl::StripAsciiWhitespace(line);
      int64_t kb;
      if (absl::ConsumeSuffix(&line, "kB") &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &kb) && kb >= 0) {
        available = kb * 1024;
      }
      break;
    }
  }
  if (!available.has_value()) {
    return absl::FailedPreconditionError("cannot read MemAvailable from " + sources.meminfo +
                                         "; pass --kv-cache-bytes");
  }
  // The process's own cgroup first, then the (namespaced) root.
  std::string v2_path, v1_path;
  if (std::optional<std::string> self = ReadSmallFile(sources.self_cgroup)) {
    for (absl::string_view line : absl::StrSplit(*self, '\n')) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
      if (parts.size() != 3) continue;
      if (parts[0] == "0" && parts[1].empty()) v2_path = std::string(parts[2]);
      for (absl::string_view c : absl::StrSplit(parts[1], ',')) {
        if (c == "memory") v1_path = std::string(parts[2]);
      }
    }
  }
  std::optional<int64_t> headroom;
  for (const std::optional<int64_t>& h :
       {CgroupV2HeadroomBytes(sources.cgroup_root + v2_path),
        CgroupV2HeadroomBytes(sources.cgroup_root),
        CgroupV1HeadroomBytes(sources.cgroup_root + "/memory" + v1_path),
        CgroupV1HeadroomBytes(sources.cgroup_root + "/memory")}) {
    if (h.has_value()) {
      headroom = h;
      break;
    }
  }
  if (headroom.has_value()) available = std::min(*available, *headroom);
  return *available;
}

int64_t KvCacheBudget(int64_t available, double fraction, int64_t cap, int64_t needed,
                      int64_t floor) {
  int64_t budget = static_cast<int64_t>(static_cast<double>(available) * fraction);
  budget = std::min({budget, cap, needed});
  return std::max(budget, floor);
}

}  // namespace chai::server
