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

// Best bytes/s over `passes` streaming reads of a `bytes`-sized buffer (make
// it several times the last-level cache) split across the pool's threads.
double MeasureReadBandwidth(ThreadPool& pool, size_t bytes = size_t{512} << 20, int passes = 5);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_MEMORY_BANDWIDTH_H_
