// The AVX2 and AVX-512 attention kernels against the portable ones: same
// bits for every head size the SIMD paths take (multiples of 8 or 16,
// including sizes that split into several 64-element spans and a
// remainder), for block sizes that the AVX-512 Score takes (multiples of
// 16), that only the AVX2 one takes (multiples of 8) and that neither does,
// that do and do not divide Mix's 64-position spans, for sequences long
// enough to cross many spans, and for per-sequence CHAI maps
// (attention_kernels.h states the operation order all follow).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/test_util.h"
#include "kernels/cpu/thread_pool.h"

namespace chai::kernels::cpu {
namespace {

struct Case {
  int n_q, n_kv, head_dim, block_size;
};

class SimdAttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(SimdAttentionTest, BitIdenticalToPortableKernels) {
  if (!internal::CpuHasAvx2Fma()) GTEST_SKIP() << "no AVX2+FMA on this CPU";
  const Case c = GetParam();
  const int group = c.n_q / c.n_kv;
  const std::vector<int32_t> lens = {1, 7, 64, 65, 203, 331};
  const int n_seqs = static_cast<int>(lens.size());
  const int max_len = *std::max_element(lens.begin(), lens.end());
  const int max_blocks = (max_len + c.block_size - 1) / c.block_size;
  std::mt19937 rng(7 + c.head_dim + c.block_size);

  // Block tables and K pages: shuffled unique ids.
  std::vector<int32_t> tables(n_seqs * max_blocks), pages(n_seqs * max_blocks * c.n_kv);
  std::iota(tables.begin(), tables.end(), 0);
  std::shuffle(tables.begin(), tables.end(), rng);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(pages.begin(), pages.end(), rng);
  const std::vector<float> k =
      testing::RandomFloats(pages.size() * c.block_size * c.head_dim, rng, 1.5f);
  const std::vector<float> v =
      testing::RandomFloats(tables.size() * c.block_size * c.n_kv * c.head_dim, rng);

  // Maps: sequence 0 plain; the others keep a random non-empty prefix of a
  // shuffled KV-head list and send every head to a random representative on
  // a kept KV head.
  std::vector<int32_t> k_src(n_seqs * c.n_kv, -1), score_head(n_seqs * c.n_q),
      k_slot(n_seqs * c.n_q, 0);
  for (int s = 0; s < n_seqs; ++s) {
    std::vector<int32_t> kv(c.n_kv);
    std::iota(kv.begin(), kv.end(), 0);
    int kept = c.n_kv;
    if (s > 0) {
      std::shuffle(kv.begin(), kv.end(), rng);
      kept = 1 + static_cast<int>(rng() % c.n_kv);
      std::sort(kv.begin(), kv.begin() + kept);
    }
    for (int j = 0; j < kept; ++j) k_src[s * c.n_kv + j] = kv[j];
    std::vector<int32_t> reps;
    for (int h = 0; h < c.n_q; ++h) {
      const bool on_kept = std::find(kv.begin(), kv.begin() + kept, h / group) != kv.begin() + kept;
      if (on_kept && (s == 0 || rng() % 2 == 0 || reps.empty())) reps.push_back(h);
    }
    for (int h = 0; h < c.n_q; ++h) {
      const bool is_rep = std::find(reps.begin(), reps.end(), h) != reps.end();
      const int32_t r = is_rep ? h : reps[rng() % reps.size()];
      score_head[s * c.n_q + h] = r;
      k_slot[s * c.n_q + h] =
          static_cast<int32_t>(std::find(kv.begin(), kv.begin() + kept, r / group) - kv.begin());
    }
  }
  KvLayer layer;
  layer.k = const_cast<float*>(k.data());
  layer.v = const_cast<float*>(v.data());  // PagedAttention only reads the pools
  layer.k_pages = pages.data();
  layer.k_src = k_src.data();
  layer.score_head = score_head.data();
  layer.k_slot = k_slot.data();
  layer.n_q_heads = c.n_q;
  layer.n_kv_heads = c.n_kv;
  layer.head_dim = c.head_dim;
  layer.block_size = c.block_size;
  layer.num_blocks = static_cast<int32_t>(tables.size());
  layer.num_k_pages = static_cast<int32_t>(pages.size());

  // One flat batch: a prefill chunk of each sequence's last 5 positions and
  // a decode token at its last position, interleaved.
  std::vector<int32_t> seq, pos;
  for (int s = 0; s < n_seqs; ++s) {
    for (int p = std::max(0, lens[s] - 5); p < lens[s]; ++p) {
      seq.push_back(s);
      pos.push_back(p);
    }
  }
  const TokenPlacement place{static_cast<int32_t>(seq.size()), seq.data(), pos.data(),
                             tables.data(), max_blocks};
  const std::vector<float> q = testing::RandomFloats(seq.size() * c.n_q * c.head_dim, rng, 2.0f);
  ThreadPool pool(2);
  // Every level this CPU has (a level it lacks falls back to the next one
  // down, which is then tested twice).
  std::vector<SimdIsa> levels = {SimdIsa::kAvx2};
  if (internal::CpuHasAvx512F()) levels.push_back(SimdIsa::kAvx512);
  auto run = [&](const KvLayer& l, DType dtype, SimdIsa isa) {
    std::vector<float> out(q.size(), std::nanf(""));
    PagedAttention(q.data(), c.n_q, place, l, dtype, out.data(), &pool, isa);
    return out;
  };
  const std::vector<float> portable = run(layer, DType::kF32, SimdIsa::kPortable);
  auto expect_same = [&](const std::vector<float>& a, const std::vector<float>& b,
                         const char* what) {
    for (size_t t = 0; t < seq.size(); ++t) {
      const size_t row = t * c.n_q * c.head_dim;
      ASSERT_EQ(0, std::memcmp(&a[row], &b[row], c.n_q * c.head_dim * sizeof(float)))
          << what << ": token " << t << " (seq " << seq[t] << ", pos " << pos[t] << ")";
    }
  };
  // Every SIMD level against the portable result on the same cache.
  auto expect_levels = [&](const KvLayer& l, DType dtype, const std::vector<float>& want,
                           const std::string& cache) {
    for (SimdIsa isa : levels) {
      ASSERT_NO_FATAL_FAILURE(expect_same(
          run(l, dtype, isa), want,
          (cache + (isa == SimdIsa::kAvx2 ? ", AVX2" : ", AVX-512") + " vs portable").c_str()));
    }
  };
  ASSERT_NO_FATAL_FAILURE(expect_levels(layer, DType::kF32, portable, "float cache"));
  EXPECT_TRUE(
      std::all_of(portable.begin(), portable.end(), [](float x) { return std::isfinite(x); }));

  // The same cache in fp16, and a float cache holding its values: both
  // implementations read fp16 exactly, so all four give the same bits.
  std::vector<uint16_t> k16(k.size()), v16(v.size());
  std::vector<float> k_rounded(k.size()), v_rounded(v.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k16[i] = Fp32ToFp16(k[i]);
    k_rounded[i] = Fp16ToFp32(k16[i]);
  }
  for (size_t i = 0; i < v.size(); ++i) {
    v16[i] = Fp32ToFp16(v[i]);
    v_rounded[i] = Fp16ToFp32(v16[i]);
  }
  ASSERT_NE(k_rounded, k);  // the rounding is real
  KvLayer layer16 = layer, rounded = layer;
  layer16.k = k16.data();
  layer16.v = v16.data();
  rounded.k = k_rounded.data();
  rounded.v = v_rounded.data();
  const std::vector<float> portable16 = run(layer16, DType::kF16, SimdIsa::kPortable);
  const std::vector<float> reference = run(rounded, DType::kF32, SimdIsa::kPortable);
  ASSERT_NO_FATAL_FAILURE(expect_levels(layer16, DType::kF16, portable16, "fp16 cache"));
  ASSERT_NO_FATAL_FAILURE(expect_same(portable16, reference, "fp16 cache vs its float values"));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SimdAttentionTest,
    ::testing::Values(Case{9, 3, 64, 16},    // SmolLM2: GQA 3:1, head 64, the engine's blocks
                      Case{9, 3, 64, 5},     // no SIMD Score; blocks not dividing Mix's spans
                      Case{4, 4, 128, 16},   // two 64-element spans per head
                      Case{8, 2, 200, 16},   // three spans and an 8-element remainder (AVX2 Mix)
                      Case{6, 1, 8, 3},      // one 8-element span, multi-query
                      Case{4, 2, 24, 64},    // 4 AVX-512 vectors per page, AVX2 Mix
                      Case{12, 4, 64, 8},    // AVX2 Score only, one vector per page
                      Case{10, 2, 48, 24},   // AVX2 Score, 5 heads per KV head, AVX-512 Mix
                      Case{2, 1, 16, 48}));  // 2 heads: 3 AVX-512 vectors per page

// The kernels' prefetch queue: every line of every run, once, in order
// (a run's partial last line included), then nothing; Rest finishes what
// Next left; capacity and Clear. A lost line costs only speed, so only this
// test would notice one.
TEST(LinePrefetcherTest, HandsOutEveryLineOfEveryRunOnceInOrder) {
  alignas(64) static char mem[4096];
  internal::LinePrefetcher pf;
  ASSERT_TRUE(pf.Add(mem, 128));
  ASSERT_TRUE(pf.Add(mem + 1024, 64));
  ASSERT_TRUE(pf.Add(mem + 2048, 100));
  const std::vector<const char*> want = {mem, mem + 64, mem + 1024, mem + 2048, mem + 2112};
  std::vector<const char*> got;
  for (const char* p = pf.Next(); p != nullptr; p = pf.Next()) got.push_back(p);
  EXPECT_EQ(got, want);
  EXPECT_EQ(pf.Next(), nullptr);

  pf.Clear();
  EXPECT_EQ(pf.Next(), nullptr);
  ASSERT_TRUE(pf.Add(mem, 256));
  EXPECT_EQ(pf.Next(), mem);
  pf.Rest();
  EXPECT_EQ(pf.Next(), nullptr);

  pf.Clear();
  for (int i = 0; i < internal::LinePrefetcher::kMaxRuns; ++i)
    ASSERT_TRUE(pf.Add(mem + 64 * i, 64));
  EXPECT_FALSE(pf.Add(mem, 64));
  int lines = 0;
  while (pf.Next() != nullptr) ++lines;
  EXPECT_EQ(lines, internal::LinePrefetcher::kMaxRuns);
}

}  // namespace
}  // namespace chai::kernels::cpu
