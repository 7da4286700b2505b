// The standard process_* metrics every Prometheus client exports (names and
// meanings as in client_golang's process collector), read from /proc/self at
// scrape time:
//   process_cpu_seconds_total      user + system CPU time, seconds (counter)
//   process_resident_memory_bytes  resident set size
//   process_virtual_memory_bytes   virtual memory size
//   process_open_fds               open file descriptors
//   process_max_fds                the soft RLIMIT_NOFILE
//   process_start_time_seconds     start time, seconds since the Unix epoch
// Where /proc cannot be read, the families render without samples.
//
// Thread-safety: all functions are thread-safe.
#ifndef CHAI_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define CHAI_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics/registry.h"

namespace chai::server::metrics {

// The fields of /proc/<pid>/stat the metrics need, converted to seconds and
// bytes.
struct ProcStat {
  double cpu_seconds = 0;               // utime + stime
  double start_seconds_after_boot = 0;  // starttime
  double virtual_bytes = 0;             // vsize
  double resident_bytes = 0;            // rss pages * page size
};

// Parses the text of /proc/<pid>/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from its last ')'.
// INVALID_ARGUMENT when the text is not in that format.
absl::StatusOr<ProcStat> ParseProcStat(absl::string_view text, double clock_ticks_per_second,
                                       double page_size_bytes);

// Parses the boot time (the "btime" line, seconds since the epoch) out of
// the text of /proc/stat. INVALID_ARGUMENT when missing.
absl::StatusOr<double> ParseBootTime(absl::string_view proc_stat_text);

// Registers the six process_* families on `registry`. Fails like
// Registry::AddCallback (ALREADY_EXISTS when registered twice).
absl::Status RegisterProcessMetrics(Registry* registry);

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_PROCESS_COLLECTOR_H_
