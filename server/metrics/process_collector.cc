#include "server/metrics/process_collector.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace chai::server::metrics {
namespace {

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(std::string("cannot read ") + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::StatusOr<ProcStat> ReadSelfStat() {
  absl::StatusOr<std::string> text = ReadFile("/proc/self/stat");
  if (!text.ok()) return text.status();
  return ParseProcStat(*text, static_cast<double>(sysconf(_SC_CLK_TCK)),
                       static_cast<double>(sysconf(_SC_PAGESIZE)));
}

// Counts /proc/self/fd entries, not counting the descriptor the count itself
// holds open.
absl::StatusOr<double> CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnavailableError("cannot list /proc/self/fd");
  const int own_fd = dirfd(dir);
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    int fd = 0;
    if (!absl::SimpleAtoi(entry->d_name, &fd)) continue;  // "." and ".."
    if (fd != own_fd) ++count;
  }
  closedir(dir);
  return count;
}

std::vector<MetricPoint> OnePoint(absl::StatusOr<double> value) {
  if (!value.ok()) return {};
  MetricPoint point;
  point.value = *value;
  return {point};
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(absl::string_view text, double clock_ticks_per_second,
                                       double page_size_bytes) {
  const size_t close = text.rfind(')');
  if (close == absl::string_view::npos || text.find('(') > close) {
    return absl::InvalidArgumentError("proc stat: no (command) field");
  }
  // Field 3 (state) onwards.
  const std::vector<absl::string_view> fields =
      absl::StrSplit(text.substr(close + 1), ' ', absl::SkipWhitespace());
  // Field N is fields[N - 3]; we need up to field 24 (rss).
  if (fields.size() < 22) return absl::InvalidArgumentError("proc stat: too few fields");
  auto field = [&](int n, double* out) {
    absl::string_view f = absl::StripAsciiWhitespace(fields[n - 3]);
    return absl::SimpleAtod(f, out);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &start) || !field(23, &vsize) ||
      !field(24, &rss) || clock_ticks_per_second <= 0) {
    return absl::InvalidArgumentError("proc stat: malformed numeric field");
  }
  ProcStat stat;
  stat.cpu_seconds = (utime + stime) / clock_ticks_per_second;
  stat.start_seconds_after_boot = start / clock_ticks_per_second;
  stat.virtual_bytes = vsize;
  stat.resident_bytes = rss * page_size_bytes;
  return stat;
}

absl::StatusOr<double> ParseBootTime(absl::string_view proc_stat_text) {
  for (absl::string_view line : absl::StrSplit(proc_stat_text, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double btime = 0;
      if (absl::SimpleAtod(absl::StripAsciiWhitespace(line), &btime)) return btime;
    }
  }
  return absl::InvalidArgumentError("proc stat: no btime line");
}

absl::Status RegisterProcessMetrics(Registry* registry) {
  struct Def {
    const char* name;
    const char* help;
    MetricType type;
    CollectFn collect;
  };
  const Def defs[] = {
      {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
       MetricType::kCounter,
       [] {
         absl::StatusOr<ProcStat> s = ReadSelfStat();
         return OnePoint(s.ok() ? absl::StatusOr<double>(s->cpu_seconds) : s.status());
       }},
      {"process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::kGauge,
       [] {
         absl::StatusOr<ProcStat> s = ReadSelfStat();
         return OnePoint(s.ok() ? absl::StatusOr<double>(s->resident_bytes) : s.status());
       }},
      {"process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::kGauge,
       [] {
         absl::StatusOr<ProcStat> s = ReadSelfStat();
         return OnePoint(s.ok() ? absl::StatusOr<double>(s->virtual_bytes) : s.status());
       }},
      {"process_open_fds", "Number of open file descriptors.", MetricType::kGauge,
       [] { return OnePoint(CountOpenFds()); }},
      {"process_max_fds", "Maximum number of open file descriptors.", MetricType::kGauge,
       [] {
         rlimit limit{};
         if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return OnePoint(absl::UnavailableError(""));
         return OnePoint(limit.rlim_cur == RLIM_INFINITY ? std::numeric_limits<double>::infinity()
                                                         : static_cast<double>(limit.rlim_cur));
       }},
      {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
       MetricType::kGauge,
       [] {
         absl::StatusOr<ProcStat> s = ReadSelfStat();
         absl::StatusOr<std::string> proc_stat = ReadFile("/proc/stat");
         if (!s.ok() || !proc_stat.ok()) return OnePoint(absl::UnavailableError(""));
         absl::StatusOr<double> boot = ParseBootTime(*proc_stat);
         if (!boot.ok()) return OnePoint(boot.status());
         return OnePoint(*boot + s->start_seconds_after_boot);
       }},
  };
  for (const Def& def : defs) {
    if (absl::Status s = registry->AddCallback(def.name, def.help, def.type, def.collect);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace chai::server::metrics
