#include "kernels/cpu/memory_bandwidth.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/status/statusor.h"
#include "kernels/cpu/weight_arena.h"

namespace chai::kernels::cpu {
namespace {

// Prefetch distances tried (0 = none): the best read of a buffer may need the
// same software prefetching the matmul kernels use (kWeightPrefetchBytes in
// matmul_avx2_common.h), and a yardstick that reads slower than the kernels
// would overstate their share of it.
constexpr size_t kPrefetchDistances[] = {0, 2048, 8192};

// XOR-folds a range with four independent 32-byte loads in flight, so the
// loop is bound by memory, not by a dependency chain; prefetches `ahead`
// bytes ahead when nonzero.
__attribute__((target("avx2"))) uint64_t ReadRangeAvx2(const uint8_t* p, size_t n, size_t ahead) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    if (ahead != 0) {
      _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + 64), _MM_HINT_T0);
    }
    a0 = _mm256_xor_si256(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i a = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return static_cast<uint64_t>(_mm256_extract_epi64(a, 0) ^ _mm256_extract_epi64(a, 3));
}

uint64_t ReadRangeScalar(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 ^= v[0];
    a1 ^= v[1];
    a2 ^= v[2];
    a3 ^= v[3];
  }
  return a0 ^ a1 ^ a2 ^ a3;
}

// Best bytes/s of `passes` rounds of reads of buf (bytes, 4 KiB-aligned).
double BestRead(ThreadPool& pool, uint8_t* buf, size_t bytes, int passes) {
  std::memset(buf, 1, bytes);  // fault the pages in before timing
  const bool avx2 = __builtin_cpu_supports("avx2");
  const int64_t chunks = static_cast<int64_t>(pool.num_threads()) * 16;
  const size_t chunk = bytes / chunks / 128 * 128;
  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int i = 0; i < passes; ++i) {
    for (const size_t ahead : kPrefetchDistances) {
      if (!avx2 && ahead != 0) continue;
      const auto t0 = std::chrono::steady_clock::now();
      pool.ParallelFor(chunks, [&](int64_t b, int64_t e) {
        uint64_t local = 0;
        for (int64_t c = b; c < e; ++c) {
          local ^= avx2 ? ReadRangeAvx2(buf + c * chunk, chunk, ahead)
                        : ReadRangeScalar(buf + c * chunk, chunk);
        }
        sink.fetch_xor(local, std::memory_order_relaxed);
      });
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, static_cast<double>(chunk * chunks) / s);
    }
  }
  return sink.load() == 0xdeadbeef ? best + 1e-9 : best;  // keeps `sink` observable
}

}  // namespace

double MeasureReadBandwidth(ThreadPool& pool, size_t bytes, int passes) {
  bytes = std::max<size_t>(bytes / 4096 * 4096, 4096);
  // One buffer of huge pages where the system grants them, as the weights
  // are (weight_arena.h), then one of plain 4 KiB pages: the yardstick is
  // the best read either gives. One at a time, each read `passes` times in a
  // row: alternating two model-sized buffers would evict each other from a
  // last-level cache that holds one.
  double best = 0;
  {
    absl::StatusOr<std::unique_ptr<Buffer>> huge = AllocateHugePageBuffer(bytes);
    if (huge.ok()) best = BestRead(pool, static_cast<uint8_t*>((*huge)->data()), bytes, passes);
  }
  auto* plain = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (plain != nullptr) best = std::max(best, BestRead(pool, plain, bytes, passes));
  std::free(plain);
  return best;
}

}  // namespace chai::kernels::cpu
