// Host memory for the CPU backend's prepared weights (the interleaved copies
// CpuBackend::PrepareWeight makes), cut in order from large slabs aligned to
// 2 MiB that the kernel is asked to back with transparent huge pages
// (madvise(MADV_HUGEPAGE); honoured where the system's THP setting is
// "madvise" or "always", ignored elsewhere).
//
// Why: a batch-1 decode step streams all ~96 MB of the default model's
// weights once per token. With 4 KiB pages that is ~24,000 page walks per
// token, one every 4 KiB of a stream the kernels otherwise keep ahead of with
// prefetches; 2 MiB pages need ~50. Separate allocations per matrix (most
// are 0.1-1.1 MB) can never get huge pages. Back-to-back placement in load
// order also means a kernel's prefetches past the end of one matrix land on
// the next one it will read. docs/PERFORMANCE.md (session 12) has the
// measurements.
//
// Ownership: each buffer keeps its slab alive; a slab is freed when the
// arena no longer cuts from it and every buffer cut from it is gone, so
// buffers may outlive the arena.
//
// Thread-safety: Allocate may be called from any thread.
#ifndef CHAI_KERNELS_CPU_WEIGHT_ARENA_H_
#define CHAI_KERNELS_CPU_WEIGHT_ARENA_H_

#include <cstddef>
#include <memory>
#include <mutex>

#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace chai::kernels::cpu {

class WeightArena {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kAlignment = 64;  // of every buffer: a cache line

  // Slabs hold `slab_bytes` (rounded up to whole huge pages); a buffer larger
  // than half a slab gets a mapping of its own (AllocateHugePageBuffer), so
  // no slab wastes more than half.
  explicit WeightArena(size_t slab_bytes = size_t{32} << 20);
  ~WeightArena();

  WeightArena(const WeightArena&) = delete;
  WeightArena& operator=(const WeightArena&) = delete;

  // A kAlignment-aligned buffer of `bytes` bytes (uninitialised; its
  // size() is `bytes`), or RESOURCE_EXHAUSTED when the memory cannot be had.
  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes);

  // Slabs allocated so far, including buffers that got their own (tests).
  int slabs_allocated() const;

  struct Slab;  // one mapping; internal to weight_arena.cc

 private:
  const size_t slab_bytes_;
  mutable std::mutex mu_;
  std::shared_ptr<Slab> current_;  // the slab cut from next; guarded by mu_
  size_t used_ = 0;                // bytes of current_ handed out; guarded by mu_
  int slabs_ = 0;                  // guarded by mu_
};

// A buffer of `bytes` bytes in a mapping of its own that starts on a 2 MiB
// boundary and is madvised MADV_HUGEPAGE: its whole 2 MiB pieces can be huge
// pages, a last partial one keeps 4 KiB pages (so it maps nothing beyond
// `bytes` rounded up to 4 KiB). Freed with the buffer. WeightArena uses it
// for buffers larger than half a slab. RESOURCE_EXHAUSTED when the memory
// cannot be had.
absl::StatusOr<std::unique_ptr<Buffer>> AllocateHugePageBuffer(size_t bytes);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_WEIGHT_ARENA_H_
