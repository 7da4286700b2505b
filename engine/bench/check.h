// CheckOrExit: the benchmarks' answer to a failed engine call. A benchmark
// whose Forward, AddSequence or Reserve failed measures nothing (an ignored
// failure once let long-context decode attend over never-written cache
// memory, docs/PERFORMANCE.md session 13), so it prints the status and exits
// non-zero. Thread-safety: none needed (no state).
#ifndef CHAI_ENGINE_BENCH_CHECK_H_
#define CHAI_ENGINE_BENCH_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace chai::engine {

inline void CheckOrExit(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "benchmark: %s failed: %s\n", what, std::string(s.message()).c_str());
  std::exit(1);
}

}  // namespace chai::engine

#endif  // CHAI_ENGINE_BENCH_CHECK_H_
