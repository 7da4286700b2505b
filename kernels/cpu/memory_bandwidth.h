// Measures the machine's sustained memory read bandwidth: the yardstick
// decode throughput is reported against (weight bytes read per token / time
// versus this number, DESIGN.md section 9).
//
// Thread-safety: uses the pool exclusively while it runs.
#ifndef CHAI_KERNELS_CPU_MEMORY_BANDWIDTH_H_
#define CHAI_KERNELS_CPU_MEMORY_BANDWIDTH_H_

#include <cstddef>

#include "kernels/cpu/thread_pool.h"

namespace chai::kernels::cpu {

// Best bytes/s over `passes` streaming reads of a `bytes`-sized buffer split
// across the pool's threads, each pass once without and once with software
// prefetching at two distances, over a buffer of huge pages where the system
// grants them (weight_arena.h: where the CPU backend keeps its weights) and
// one of 4 KiB pages. For a decode roofline pass the bytes one
// token reads (the model's weights): a buffer of that size is served from
// the same level of the hierarchy as the weights are. On a machine whose
// last-level cache holds the model (the 480 MiB L3 of session 9's Xeon VM)
// that is ~2x what a 512 MiB buffer reads; on the Zen 3 VM (32 MiB L3) both
// are DRAM. The default, 512 MiB, measures DRAM on most machines.
double MeasureReadBandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int passes = 5);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_MEMORY_BANDWIDTH_H_
