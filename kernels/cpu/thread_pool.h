// A fixed pool of worker threads for data-parallel kernels.
//
// ParallelFor splits [0, n) into one contiguous range per thread (static
// partitioning: thread t of T gets [n*t/T, n*(t+1)/T)), runs them
// concurrently and returns when all are done. The calling thread runs range 0
// itself, so a pool of T threads starts T-1 workers. Static ranges mean that
// which thread computes an index depends only on n and T -- but kernels must
// not rely on that for their results: each output is computed by one call
// with a fixed reduction order, so results never depend on the partition.
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

  // Calls fn(begin, end) for the non-empty static ranges of [0, n) and waits.
  // `fn` must not throw.
  void ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn);

 private:
  void WorkerLoop(int index);
  void RunRange(int index);

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mu_;  // serialises ParallelFor callers

  // Current job; written by the caller before bumping generation_.
  const absl::FunctionRef<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;

  // 32-bit so that wait/notify map onto a futex. Notifies are skipped unless
  // someone sleeps (the counters), which keeps the common spinning case free
  // of system calls; seq_cst on both sides makes the check race-free.
  alignas(64) std::atomic<uint32_t> generation_{0};  // bumped once per job
  std::atomic<int> sleeping_workers_{0};
  alignas(64) std::atomic<int> pending_{0};  // workers still running the job
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
};

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_THREAD_POOL_H_
