#include "kernels/cpu/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace chai::kernels::cpu {
namespace {

TEST(ThreadPoolTest, CoversEveryIndexOnceInTheDocumentedChunks) {
  for (int threads : {1, 2, 3, 8}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int per_thread : {ThreadPool::kDefaultChunksPerThread, 1, 2}) {
      for (int64_t n : {1, 2, 3, 7, 8, 100, 1001}) {
        std::vector<std::atomic<int>> hits(n);
        std::vector<std::atomic<int64_t>> range_end(n);  // indexed by begin
        for (auto& e : range_end) e = -1;
        pool.ParallelFor(
            n,
            [&](int64_t begin, int64_t end) {
              ASSERT_LT(begin, end);
              range_end[begin] = end;
              for (int64_t i = begin; i < end; ++i) hits[i]++;
            },
            per_thread);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i], 1) << "n=" << n << " i=" << i;
        if (n == 1 || threads == 1) continue;  // runs inline as one range
        const int64_t chunks = pool.NumChunks(n, per_thread);
        EXPECT_EQ(chunks, std::min<int64_t>(n, per_thread * threads));
        for (int64_t c = 0; c < chunks; ++c) {
          const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
          EXPECT_EQ(range_end[b], e)
              << "threads=" << threads << " per_thread=" << per_thread << " n=" << n;
        }
      }
    }
  }
  EXPECT_EQ(ThreadPool(2).NumChunks(100), 4 * 2);  // the default is 4 per thread
}

// The caller does not wait for a slow (or descheduled) worker to take its
// share: while the first chunk a worker claims is stalled, the caller runs
// the other chunks. Static one-range-per-thread splitting would leave half
// of them to the stalled worker.
TEST(ThreadPoolTest, CallerTakesChunksAWorkerHasNotStarted) {
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  for (int round = 0; round < 5; ++round) {
    std::atomic<int> by_caller{0}, by_worker{0};
    std::atomic<bool> worker_stalled{false};
    pool.ParallelFor(8, [&](int64_t b, int64_t e) {
      if (std::this_thread::get_id() == caller) {
        by_caller += static_cast<int>(e - b);
      } else {
        by_worker += static_cast<int>(e - b);
        if (!worker_stalled.exchange(true)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    });
    EXPECT_EQ(by_caller + by_worker, 8);
    EXPECT_GE(by_caller, 7) << "round " << round;
  }
}

// Every thread of the pool takes part: each chunk waits (bounded) until all
// three have started, which only three distinct threads can achieve.
TEST(ThreadPoolTest, UsesSeveralThreads) {
  ThreadPool pool(3);
  std::vector<std::thread::id> ids(3);
  std::atomic<int> started{0};
  pool.ParallelFor(3, [&](int64_t b, int64_t e) {
    ids[b] = std::this_thread::get_id();
    ++started;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started < 3 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  });
  EXPECT_EQ(started, 3);
  EXPECT_NE(ids[1], ids[0]);
  EXPECT_NE(ids[2], ids[0]);
  EXPECT_NE(ids[1], ids[2]);
  // The caller participates.
  EXPECT_TRUE(ids[0] == std::this_thread::get_id() || ids[1] == std::this_thread::get_id() ||
              ids[2] == std::this_thread::get_id());
}

TEST(ThreadPoolTest, ManyCallsAcrossSpinAndSleep) {
  ThreadPool pool(4);
  std::atomic<int64_t> total{0};
  for (int call = 0; call < 3000; ++call) {
    pool.ParallelFor(64, [&](int64_t b, int64_t e) { total += e - b; });
    // Now and then let the workers fall asleep so both wake paths run.
    if (call % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(total, 3000 * 64);
}

TEST(ThreadPoolTest, NestedCallRunsInline) {
  ThreadPool pool(2);
  std::atomic<int64_t> total{0};
  pool.ParallelFor(4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      pool.ParallelFor(10, [&](int64_t b2, int64_t e2) { total += e2 - b2; });
    }
  });
  EXPECT_EQ(total, 40);
}

TEST(ThreadPoolTest, ConcurrentCallersAreSerialised) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  auto caller = [&] {
    for (int i = 0; i < 200; ++i) {
      pool.ParallelFor(30, [&](int64_t b, int64_t e) { total += e - b; });
    }
  };
  std::thread a(caller), b(caller);
  a.join();
  b.join();
  EXPECT_EQ(total, 2 * 200 * 30);
}

}  // namespace
}  // namespace chai::kernels::cpu
