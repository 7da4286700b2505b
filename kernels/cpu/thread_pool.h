// A fixed pool of worker threads for data-parallel kernels.
//
// ParallelFor splits [0, n) into C = min(n, K * T) contiguous chunks (chunk c
// is [n*c/C, n*(c+1)/C); K = 4 chunks per thread unless the call asks for
// fewer); the calling thread and the T-1 workers claim chunks
// from a shared counter until none is left, and the call returns when every
// chunk has run. The caller never waits for a worker that has not started:
// on a loaded machine a descheduled worker only means the caller (and the
// other workers) run more chunks, not that every op stalls until the worker
// is scheduled again. Which thread runs a chunk is therefore not fixed, and
// kernels must not depend on it: each output is computed by one call with a
// fixed reduction order, so results never depend on the partition.
//
// Workers spin briefly after finishing a job (decode issues hundreds of small
// jobs per token, and a futex wake costs more than the job), then yield, then
// sleep on a futex. ParallelFor allocates nothing and makes no system call
// while the workers are spinning.
//
// Thread-safety: ParallelFor may be called from any thread; concurrent calls
// are serialised. A ParallelFor issued from inside a job (of this or any
// other pool) runs inline on the calling thread (no deadlock, no extra
// parallelism).
#ifndef CHAI_KERNELS_CPU_THREAD_POOL_H_
#define CHAI_KERNELS_CPU_THREAD_POOL_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"

namespace chai::kernels::cpu {

class ThreadPool {
 public:
  // `threads` >= 1 is the total parallelism including the caller; 0 means
  // std::thread::hardware_concurrency().
  explicit ThreadPool(int threads);
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(begin, end) once per chunk of [0, n) (see the file comment) and
  // waits. `fn` must not throw. chunks_per_thread (>= 1): fewer chunks cost
  // less per call but leave more to wait for when a thread runs late or the
  // chunks' work is uneven. MatMul's decode calls use 1 (uniform work, ~2 us
  // per chunk saved on session 9's Xeon VM: docs/PERFORMANCE.md).
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn,
                   int chunks_per_thread = kDefaultChunksPerThread);

  // The number of chunks ParallelFor(n, ..., chunks_per_thread) uses.
  int64_t NumChunks(int64_t n, int chunks_per_thread = kDefaultChunksPerThread) const;

  // Enough that a thread which starts late (or runs slower) leaves its share
  // to the others, few enough that claiming stays cheap.
  static constexpr int kDefaultChunksPerThread = 4;

 private:
  void WorkerLoop();
  // Claims and runs chunks of job `gen` until none is left (or the job is no
  // longer current).
  void RunChunks(uint32_t gen);

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers

  // Current job; written by the caller before publishing claim_. A thread
  // reads them only after claiming a chunk of the job, and the job cannot
  // end (nor these change) before that chunk is done.
  const absl::FunctionRef<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;

  // Chunk claims: generation (bits 63-32), chunk count (31-16), next chunk
  // (15-0). Tagging with the generation makes a claim by a worker that wakes
  // after its job ended fail instead of taking a chunk of a later job.
  alignas(64) std::atomic<uint64_t> claim_{0};
  // 32-bit so that wait/notify map onto a futex. Notifies are skipped unless
  // someone sleeps (the counters), which keeps the common spinning case free
  // of system calls; seq_cst on both sides makes the check race-free.
  alignas(64) std::atomic<uint32_t> generation_{0};  // bumped once per job
  std::atomic<int> sleeping_workers_{0};
  alignas(64) std::atomic<int> remaining_{0};  // chunks of the job not yet done
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_THREAD_POOL_H_
