// How much memory the KV cache may take when --kv-cache-bytes is not given:
// the memory this process can still use -- min(MemAvailable from
// /proc/meminfo, the cgroup's limit minus its usage; cgroup v2 memory.max /
// memory.current, or v1 memory.limit_in_bytes / memory.usage_in_bytes) --
// times a fraction, capped. Containers see their cgroup limit, not the
// host's memory, so a pod never sizes its cache past its own limit.
//
// Thread-safety: free functions; read files only.
#ifndef CHAI_SERVER_GRPC_MEMORY_BUDGET_H_
#define CHAI_SERVER_GRPC_MEMORY_BUDGET_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace chai::server {

// Where the numbers come from; tests point these at fixture files.
struct MemorySources {
  std::string meminfo = "/proc/meminfo";
  std::string cgroup_root = "/sys/fs/cgroup";
  // The process's cgroup paths ("0::/PATH" for v2, "N:memory:/PATH" for v1);
  // without a cgroup namespace the limit sits below the root at that path.
  std::string self_cgroup = "/proc/self/cgroup";
};

// Bytes this process may still allocate: min of MemAvailable and the
// cgroup's headroom (limit - usage) when it has a limit. FAILED_PRECONDITION
// when /proc/meminfo has no MemAvailable line.
absl::StatusOr<int64_t> AvailableMemoryBytes(const MemorySources& sources = {});

// The headroom (limit - usage) of one cgroup directory: v2 (memory.max,
// memory.current) or v1 (memory.limit_in_bytes, memory.usage_in_bytes).
// nullopt when unlimited or absent.
std::optional<int64_t> CgroupV2HeadroomBytes(const std::string& dir);
std::optional<int64_t> CgroupV1HeadroomBytes(const std::string& dir);

// fraction * available, at most `cap` and at most `needed` (what the
// configured sequences can ever use), at least `floor`.
int64_t KvCacheBudget(int64_t available, double fraction, int64_t cap, int64_t needed,
                      int64_t floor);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_MEMORY_BUDGET_H_
