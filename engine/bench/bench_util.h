// Helpers shared by the engine benchmarks (engine_bench.cc, chai_bench.cc).
//
// CheckOrExit: a benchmark whose Forward, AddSequence or Reserve failed
// measures nothing (an ignored failure once let long-context decode attend
// over never-written cache memory, docs/PERFORMANCE.md session 13), so it
// prints the status and exits non-zero.
//
// PrefillPrompt: one sequence's prompt through the runner in chunks of at
// most max_batch_tokens(), every call checked; after_chunk (if set) runs
// after each chunk, e.g. to read last_forward_stats().
//
// Thread-safety: none needed (no state of their own).
#ifndef CHAI_ENGINE_BENCH_BENCH_UTIL_H_
#define CHAI_ENGINE_BENCH_BENCH_UTIL_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"

namespace chai::engine {

inline void CheckOrExit(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "benchmark: %s failed: %s\n", what, std::string(s.message()).c_str());
  std::exit(1);
}

// Positions 0..toks.size()-1 of sequence `slot`; logits of the last token
// land in logits[0, vocab).
inline void PrefillPrompt(ModelRunner& runner, KvCache& cache, int32_t slot,
                          std::span<const int32_t> toks, std::span<float> logits,
                          const std::function<void()>& after_chunk = {}) {
  const int64_t n = static_cast<int64_t>(toks.size());
  for (int64_t p = 0; p < n; p += runner.max_batch_tokens()) {
    const int64_t c = std::min<int64_t>(runner.max_batch_tokens(), n - p);
    std::vector<int32_t> slots(c, slot), pos(c);
    std::iota(pos.begin(), pos.end(), static_cast<int32_t>(p));
    std::vector<int32_t> rows;
    if (p + c == n) rows.push_back(static_cast<int32_t>(c - 1));
    CheckOrExit(runner.Forward({toks.subspan(p, c), slots, pos, rows}, cache, logits),
                "prompt Forward");
    if (after_chunk) after_chunk();
  }
}

}  // namespace chai::engine

#endif  // CHAI_ENGINE_BENCH_BENCH_UTIL_H_
