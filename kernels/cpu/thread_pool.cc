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
constexpr int64_t kMaxChunks = 0xffff;  // the chunk fields of claim_

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
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1);
  generation_.notify_all();
  for (std::thread& t : workers_) t.join();
}

int64_t ThreadPool::NumChunks(int64_t n, int chunks_per_thread) const {
  return std::min<int64_t>({n, int64_t{std::max(1, chunks_per_thread)} * num_threads_, kMaxChunks});
}

void ThreadPool::RunChunks(uint32_t gen) {
  uint64_t cur = claim_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t chunks = (cur >> 16) & 0xffff, next = cur & 0xffff;
    if ((cur >> 32) != gen || next >= chunks) return;
    if (!claim_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
      continue;  // cur was reloaded
    }
    const int64_t c = static_cast<int64_t>(next), nc = static_cast<int64_t>(chunks);
    (*job_)(job_n_ * c / nc, job_n_ * (c + 1) / nc);
    if (remaining_.fetch_sub(1) == 1 && caller_sleeping_.load()) {
      remaining_.notify_one();
    }
    cur = claim_.load(std::memory_order_acquire);
  }
}

void ThreadPool::WorkerLoop() {
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
    RunChunks(gen);
  }
}

void ThreadPool::ParallelFor(int64_t n, absl::FunctionRef<void(int64_t, int64_t)> fn,
                             int chunks_per_thread) {
  if (n <= 0) return;
  if (num_threads_ == 1 || n == 1 || t_inside_job) {
    fn(0, n);
    return;
  }
  std::lock_guard<std::mutex> lock(call_mu_);
  const int64_t chunks = NumChunks(n, chunks_per_thread);
  job_ = &fn;
  job_n_ = n;
  remaining_.store(static_cast<int>(chunks), std::memory_order_relaxed);
  const uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
  claim_.store((uint64_t{gen} << 32) | (static_cast<uint64_t>(chunks) << 16),
               std::memory_order_release);
  generation_.store(gen);
  if (sleeping_workers_.load() > 0) generation_.notify_all();

  t_inside_job = true;
  RunChunks(gen);
  t_inside_job = false;

  int left = remaining_.load(std::memory_order_acquire);
  for (int spin = 0; left != 0 && spin < kSpinIterations + kYieldIterations; ++spin) {
    if (spin < kSpinIterations) {
      CpuRelax();
    } else {
      std::this_thread::yield();
    }
    left = remaining_.load(std::memory_order_acquire);
  }
  if (left != 0) {
    caller_sleeping_.store(true);
    for (left = remaining_.load(); left != 0; left = remaining_.load()) remaining_.wait(left);
    caller_sleeping_.store(false);
  }
  job_ = nullptr;
}

}  // namespace chai::kernels::cpu
