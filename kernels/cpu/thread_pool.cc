#include "kernels/cpu/thread_pool.h"

#include <algorithm>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace chai::kernels::cpu {
namespace {

// Waiting is spin (pause), then yield, then sleep on a futex. Spinning covers
// the gaps between the ops of one forward pass (tens of microseconds);
// yielding lets an oversubscribed machine (more runnable threads than cores)
// run the thread we are waiting for instead of burning its time slice.
constexpr int kSpinIterations = 2000;
constexpr int kYieldIterations = 200;

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

thread_local bool t_inside_job = false;

}  // namespace

ThreadPool::ThreadPool(int threads)
    : num_threads_(threads > 0
                       ? threads
                       : std::max(1, static_cast<int>(std::thread::hardware_concurrency()))) {
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { WorkerLoop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::RunRange(int index) {
  const int64_t begin = job_n_ * index / num_threads_;
  const int64_t end = job_n_ * (index + 1) / num_threads_;
  if (begin < end) (*job_)(begin, end);
}

void ThreadPool::WorkerLoop(int index) {
  t_inside_job = true;
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations + kYieldIterations; ++spin) {
      if (spin < kSpinIterations) {
        CpuRelax();
      } else {
        std::this_thread::yield();
      }
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      sleeping_workers_.fetch_add(1);
      generation_.wait(seen);
      sleeping_workers_.fetch_sub(1);
      continue;
    }
    seen = gen;
    if (stop_.load(std::memory_order_acquire)) return;
    RunRange(index);
    if (pending_.fetch_sub(1) == 1 && caller_sleeping_.load()) pending_.notify_one();
  }
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1 || t_inside_job) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> lock(call_mu_);
  job_ = &fn;
  job_n_ = n;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);
  if (sleeping_workers_.load() > 0) generation_.notify_all();

  t_inside_job = true;
  RunRange(0);
  t_inside_job = false;

  int left = pending_.load(std::memory_order_acquire);
  for (int spin = 0; left != 0 && spin < kSpinIterations + kYieldIterations; ++spin) {
    if (spin < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
    left = pending_.load(std::memory_order_acquire);
  }
  if (left != 0) {
    caller_sleeping_.store(true);
    for (left = pending_.load(); left != 0; left = pending_.load()) pending_.wait(left);
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

}  // namespace chai::kernels::cpu
