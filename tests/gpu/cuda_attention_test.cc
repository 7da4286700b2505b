// StoreKv and paged Attention of the CUDA backend against the CPU backend:
// ragged batches mixing prefill chunks and decode rows, block tables and K
// pages scattered over the pools, different CHAI head maps per sequence,
// contexts long enough to split, and the identities CHAI must keep.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/test_util.h"
#include "tests/gpu/gpu_test_util.h"

namespace chai::testing {
namespace {

struct Dims {
  int32_t n_q, n_kv, head_dim, block_size;
};

// Host description of one layer's paged cache for a set of sequences, in the
// layout of kernels/backend.h's KvLayer.
struct Layout {
  Dims d;
  int32_t max_seqs = 0, max_blocks = 0, num_blocks = 0, num_k_pages = 0;
  std::vector<int32_t> tables, k_pages, k_src, score_head, k_slot;
};

// A random partition of the query heads into `clusters` clusters (every
// cluster non-empty, representative = lowest head); clusters == n_q is plain.
std::vector<int32_t> RandomScoreHeads(int32_t n_q, int32_t clusters, std::mt19937& rng) {
  std::vector<int32_t> order(n_q), cluster(n_q);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  for (int32_t i = 0; i < n_q; ++i) {
    cluster[order[i]] = i < clusters ? i : static_cast<int32_t>(rng() % clusters);
  }
  std::vector<int32_t> rep(clusters, -1), head(n_q);
  for (int32_t h = 0; h < n_q; ++h) {
    if (rep[cluster[h]] < 0) rep[cluster[h]] = h;
    head[h] = rep[cluster[h]];
  }
  return head;
}

// Block tables and K pages drawn at random from shuffled pools, so that no
// sequence's blocks or pages are contiguous. clusters[s] per sequence.
Layout MakeLayout(const Dims& d, const std::vector<int32_t>& max_len,
                  const std::vector<int32_t>& clusters, std::mt19937& rng) {
  Layout L;
  L.d = d;
  L.max_seqs = static_cast<int32_t>(max_len.size());
  for (int32_t len : max_len)
    L.max_blocks = std::max(L.max_blocks, (len + d.block_size - 1) / d.block_size);
  L.num_blocks = L.max_seqs * L.max_blocks + 7;  // spare blocks nobody uses
  L.num_k_pages = L.num_blocks * d.n_kv;
  std::vector<int32_t> blocks(L.num_blocks), pages(L.num_k_pages);
  std::iota(blocks.begin(), blocks.end(), 0);
  std::iota(pages.begin(), pages.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  std::shuffle(pages.begin(), pages.end(), rng);
  size_t next_block = 0, next_page = 0;
  const int32_t group = d.n_q / d.n_kv;
  L.tables.assign(size_t(L.max_seqs) * L.max_blocks, 0);
  L.k_pages.assign(size_t(L.max_seqs) * L.max_blocks * d.n_kv, -1);
  L.k_src.assign(size_t(L.max_seqs) * d.n_kv, -1);
  L.score_head.resize(size_t(L.max_seqs) * d.n_q);
  L.k_slot.resize(size_t(L.max_seqs) * d.n_q);
  for (int32_t s = 0; s < L.max_seqs; ++s) {
    const std::vector<int32_t> head = RandomScoreHeads(d.n_q, clusters[s], rng);
    // Packed K slots, one per KV head some representative scores with.
    std::vector<int32_t> slot_of(d.n_kv, -1);
    int32_t width = 0;
    for (int32_t h = 0; h < d.n_q; ++h) {
      if (head[h] == h && slot_of[h / group] < 0) slot_of[h / group] = width++;
    }
    // A plain sequence (every head its own representative) stores all KV heads in order.
    for (int32_t kvh = 0; kvh < d.n_kv; ++kvh) {
      if (slot_of[kvh] >= 0) L.k_src[s * d.n_kv + slot_of[kvh]] = kvh;
    }
    for (int32_t h = 0; h < d.n_q; ++h) {
      L.score_head[s * d.n_q + h] = head[h];
      L.k_slot[s * d.n_q + h] = slot_of[head[h] / group];
    }
    const int32_t n_blocks = (max_len[s] + d.block_size - 1) / d.block_size;
    for (int32_t b = 0; b < n_blocks; ++b) {
      L.tables[s * L.max_blocks + b] = blocks[next_block++];
      for (int32_t j = 0; j < width; ++j) {
        L.k_pages[(int64_t{s} * L.max_blocks + b) * d.n_kv + j] = pages[next_page++];
      }
    }
  }
  return L;
}

// The layout's buffers on one backend, and the KvLayer / TokenPlacement over them.
struct OnBackend {
  std::unique_ptr<kernels::Buffer> k, v, tables, k_pages, k_src, score_head, k_slot;
  kernels::KvLayer kv;
};

uint32_t Seed() {
  const uint32_t seed =
      static_cast<uint32_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  ::testing::Test::RecordProperty("seed", static_cast<int>(seed & 0x7fffffff));
  return seed;
}

// fp32 throughout; only the order of the dot products' and softmax sums'
// additions differs from the CPU (and the online softmax's rescaling), so
// the outputs agree to a few float roundings per term.
constexpr double kAttnBound = 2e-5;
// Batches of more than 64 rows with head_dim 64 or 128 run on tensor cores
// (kernels/cuda/attention_mma.cu): Q, K, V and P rounded to fp16. A float64
// model of that rounding on this test's inputs (uniform q in +-1.5, k and v
// in +-1, 300-3000 positions) gives 2.7e-4 relative error; 2e-3 leaves room
// while a wrong kernel (O(1) errors) still fails.
constexpr double kMmaAttnBound = 2e-3;

// The bound for a batch of n rows, by the kernel kernels/cuda/cuda_kernels.h's
// PlanAttention picks for it.
double Bound(size_t n, int32_t head_dim) {
  return n > 64 && (head_dim == 64 || head_dim == 128) ? kMmaAttnBound : kAttnBound;
}

class CudaAttentionTest : public CudaVsCpuTest {
 protected:
  OnBackend Upload(kernels::Backend& be, const Layout& L) {
    OnBackend o;
    const size_t k_floats = size_t(L.num_k_pages) * L.d.block_size * L.d.head_dim;
    const size_t v_floats = size_t(L.num_blocks) * L.d.block_size * L.d.n_kv * L.d.head_dim;
    // Zeroed pools, so that the pools compare equal after StoreKv.
    o.k = Put(be, std::vector<float>(k_floats, 0.0f));
    o.v = Put(be, std::vector<float>(v_floats, 0.0f));
    o.tables = Put(be, L.tables);
    o.k_pages = Put(be, L.k_pages);
    o.k_src = Put(be, L.k_src);
    o.score_head = Put(be, L.score_head);
    o.k_slot = Put(be, L.k_slot);
    o.kv = {F(o.k),  F(o.v),   I(o.k_pages), I(o.k_src),     I(o.score_head), I(o.k_slot),
            L.d.n_q, L.d.n_kv, L.d.head_dim, L.d.block_size, L.num_blocks,    L.num_k_pages};
    return o;
  }

  // Runs StoreKv then Attention for the batch (seq[i], pos[i]) with random
  // q/k/v on both backends; returns {gpu out, cpu out}. REQUIRES: earlier
  // positions of each sequence were stored by an earlier call or come earlier
  // in this batch.
  std::pair<std::vector<float>, std::vector<float>> Step(const Layout& L, OnBackend& g,
                                                         OnBackend& c,
                                                         const std::vector<int32_t>& seq,
                                                         const std::vector<int32_t>& pos,
                                                         std::mt19937& rng) {
    const int32_t n = static_cast<int32_t>(seq.size());
    const int32_t hd = L.d.head_dim;
    const std::vector<float> q =
        kernels::cpu::testing::RandomFloats(int64_t{n} * L.d.n_q * hd, rng, 1.5f);
    const std::vector<float> k =
        kernels::cpu::testing::RandomFloats(int64_t{n} * L.d.n_kv * hd, rng);
    const std::vector<float> v =
        kernels::cpu::testing::RandomFloats(int64_t{n} * L.d.n_kv * hd, rng);
    std::vector<float> want(q.size());
    const kernels::TokenPlacement cp{n, seq.data(), pos.data(), L.tables.data(), L.max_blocks};
    cpu_->StoreKv(k.data(), v.data(), cp, c.kv);
    cpu_->Attention(q.data(), L.d.n_q, cp, c.kv, want.data());
    auto gq = Put(*gpu_, q), gk = Put(*gpu_, k), gv = Put(*gpu_, v);
    auto gs = Put(*gpu_, seq), gp = Put(*gpu_, pos);
    auto gout = Put(*gpu_, std::vector<float>(q.size(), NAN));
    const kernels::TokenPlacement gpl{n, I(gs), I(gp), I(g.tables), L.max_blocks};
    gpu_->StoreKv(F(gk), F(gv), gpl, g.kv);
    gpu_->Attention(F(gq), L.d.n_q, gpl, g.kv, F(gout));
    return {Get<float>(*gpu_, *gout, q.size()), want};
  }

  void ExpectPoolsEqual(const Layout& L, OnBackend& g, OnBackend& c) {
    const size_t k_floats = size_t(L.num_k_pages) * L.d.block_size * L.d.head_dim;
    const size_t v_floats = size_t(L.num_blocks) * L.d.block_size * L.d.n_kv * L.d.head_dim;
    // StoreKv only copies floats: the pools must hold the same values. The
    // CPU backend keeps each K page transposed, [head_dim, block_size]
    // (kernels/cpu/attention_kernels.h); the CUDA one [block_size, head_dim].
    const std::vector<float> cpu_k = Get<float>(*cpu_, *c.k, k_floats);
    std::vector<float> cpu_k_rows(k_floats);
    const int64_t bs = L.d.block_size, hd = L.d.head_dim;
    for (int64_t page = 0; page < L.num_k_pages; ++page) {
      for (int64_t i = 0; i < bs; ++i) {
        for (int64_t d = 0; d < hd; ++d) {
          cpu_k_rows[(page * bs + i) * hd + d] = cpu_k[(page * hd + d) * bs + i];
        }
      }
    }
    EXPECT_EQ(Get<float>(*gpu_, *g.k, k_floats), cpu_k_rows);
    EXPECT_EQ(Get<float>(*gpu_, *g.v, v_floats), Get<float>(*cpu_, *c.v, v_floats));
  }

  // Prefill chunks of several sequences and decode rows in one batch, more than
  // 64 rows (tiles of 16 that mix sequences), then decode-only batches (one row
  // per block, context split), with a different CHAI map per sequence.
  void RaggedBatches(const Dims& d, const std::vector<int32_t>& clusters) {
    std::mt19937 rng(Seed());
    const std::vector<int32_t> max_len = {300, 100, 50, 700, 10};
    const Layout L = MakeLayout(d, max_len, clusters, rng);
    OnBackend g = Upload(*gpu_, L), c = Upload(*cpu_, L);
    // History: positions 0..n-1 of sequences 0 and 3 (long contexts).
    {
      std::vector<int32_t> seq, pos;
      for (int32_t p = 0; p < 250; ++p) seq.push_back(0), pos.push_back(p);
      for (int32_t p = 0; p < 650; ++p) seq.push_back(3), pos.push_back(p);
      auto [got, want] = Step(L, g, c, seq, pos, rng);
      const double err = RelErr(got, want);
      std::printf("head_dim %d: history prefill (%zu rows) rel. error %.3g\n", d.head_dim,
                  seq.size(), err);
      EXPECT_LE(err, Bound(seq.size(), d.head_dim)) << "history prefill";
    }
    // Mixed: a 90-token prefill of seq 1 interleaved with decode rows of 0 and 3,
    // a chunk of seq 2, a whole short prompt of seq 4.
    {
      std::vector<int32_t> seq, pos;
      for (int32_t p = 0; p < 45; ++p) seq.push_back(1), pos.push_back(p);
      seq.push_back(0), pos.push_back(250);
      for (int32_t p = 45; p < 90; ++p) seq.push_back(1), pos.push_back(p);
      seq.push_back(3), pos.push_back(650);
      for (int32_t p = 0; p < 41; ++p) seq.push_back(2), pos.push_back(p);
      for (int32_t p = 0; p < 5; ++p) seq.push_back(4), pos.push_back(p);
      ASSERT_GT(seq.size(), 64u);
      auto [got, want] = Step(L, g, c, seq, pos, rng);
      const double err = RelErr(got, want);
      std::printf("head_dim %d: mixed batch (%zu rows) rel. error %.3g\n", d.head_dim, seq.size(),
                  err);
      EXPECT_LE(err, Bound(seq.size(), d.head_dim)) << "mixed batch";
    }
    // Decode only: one row per sequence (ragged contexts 6..653), twice.
    for (int32_t step = 0; step < 2; ++step) {
      const std::vector<int32_t> seq = {3, 0, 4, 2, 1};
      const std::vector<int32_t> pos = {651 + step, 251 + step, 5 + step, 41 + step, 90 + step};
      auto [got, want] = Step(L, g, c, seq, pos, rng);
      EXPECT_LE(RelErr(got, want), Bound(seq.size(), d.head_dim)) << "decode step " << step;
    }
    ExpectPoolsEqual(L, g, c);
  }
};

TEST_F(CudaAttentionTest, RaggedGqaPlainAndChai) {
  // SmolLM2's shape: 9 query heads, 3 KV heads, head_dim 64; sequences plain
  // (9 clusters) and clustered down to 1..5 clusters.
  RaggedBatches({9, 3, 64, 16}, {9, 3, 1, 5, 9});
}

TEST_F(CudaAttentionTest, RaggedMhaChai) {
  // LLaMA-7B-like multi-head attention (head_dim 128), block size 32.
  RaggedBatches({8, 8, 128, 32}, {4, 8, 2, 1, 3});
}

TEST_F(CudaAttentionTest, UnusualHeadSizes) {
  RaggedBatches({4, 2, 32, 16}, {1, 4, 2, 4, 3});
  RaggedBatches({4, 4, 256, 8}, {2, 4, 1, 3, 4});
}

// A single long context: the decode kernel splits it across blocks.
TEST_F(CudaAttentionTest, LongContextDecode) {
  std::mt19937 rng(Seed());
  const Dims d{8, 8, 128, 16};
  const Layout L = MakeLayout(d, {3001}, {8}, rng);
  OnBackend g = Upload(*gpu_, L), c = Upload(*cpu_, L);
  std::vector<int32_t> seq(3000, 0), pos(3000);
  std::iota(pos.begin(), pos.end(), 0);
  auto [g1, w1] = Step(L, g, c, seq, pos, rng);
  std::printf("3000-token prefill rel. error %.3g\n", RelErr(g1, w1));
  EXPECT_LE(RelErr(g1, w1), Bound(seq.size(), d.head_dim)) << "3000-token prefill";
  auto [g2, w2] = Step(L, g, c, {0}, {3000}, rng);
  EXPECT_LE(RelErr(g2, w2), kAttnBound) << "decode at 3000";
}

// CHAI with every head its own representative (identity maps), stored in a
// different K page layout, gives plain attention's bits; members of a cluster
// that share their representative's KV head output exactly its result.
TEST_F(CudaAttentionTest, IdentityMapsEqualPlainAndMembersReuseProbabilities) {
  std::mt19937 rng(Seed());
  const Dims d{9, 3, 64, 16};
  const std::vector<int32_t> max_len = {200, 33};
  Layout plain = MakeLayout(d, max_len, {9, 9}, rng);
  // The same sequences as CHAI sequences with k_l = H: every head its own
  // representative, K slots in another order (slot 0 holds KV head 2, ...),
  // and the pages of each block's slots swapped.
  Layout ident = plain;
  for (int32_t s = 0; s < 2; ++s) {
    const int32_t order[3] = {2, 0, 1}, slot_of[3] = {1, 2, 0};
    for (int32_t j = 0; j < 3; ++j) ident.k_src[s * 3 + j] = order[j];
    for (int32_t h = 0; h < 9; ++h) ident.k_slot[s * 9 + h] = slot_of[h / 3];
  }
  for (size_t i = 0; i + 3 <= ident.k_pages.size(); i += 3) {
    if (ident.k_pages[i] >= 0) std::swap(ident.k_pages[i], ident.k_pages[i + 2]);
  }
  OnBackend gp = Upload(*gpu_, plain), gi = Upload(*gpu_, ident);
  std::vector<int32_t> seq, pos;
  for (int32_t p = 0; p < 200; ++p) seq.push_back(0), pos.push_back(p);
  for (int32_t p = 0; p < 33; ++p) seq.push_back(1), pos.push_back(p);
  const int32_t n = static_cast<int32_t>(seq.size());
  const auto q = kernels::cpu::testing::RandomFloats(int64_t{n} * 9 * 64, rng);
  const auto k = kernels::cpu::testing::RandomFloats(int64_t{n} * 3 * 64, rng);
  const auto v = kernels::cpu::testing::RandomFloats(int64_t{n} * 3 * 64, rng);
  auto gq = Put(*gpu_, q), gk = Put(*gpu_, k), gv = Put(*gpu_, v);
  auto gs = Put(*gpu_, seq), gpos = Put(*gpu_, pos);
  auto run = [&](OnBackend& o, const Layout& L) {
    auto out = Put(*gpu_, std::vector<float>(q.size(), NAN));
    const kernels::TokenPlacement pl{n, I(gs), I(gpos), I(o.tables), L.max_blocks};
    gpu_->StoreKv(F(gk), F(gv), pl, o.kv);
    gpu_->Attention(F(gq), 9, pl, o.kv, F(out));
    return Get<float>(*gpu_, *out, q.size());
  };
  EXPECT_EQ(run(gi, ident), run(gp, plain));

  // Heads 0, 1, 2 share KV head 0: cluster {0, 1, 2} with representative 0.
  Layout chai = plain;
  for (int32_t s = 0; s < 2; ++s) {
    chai.score_head[s * 9 + 1] = 0;
    chai.score_head[s * 9 + 2] = 0;
  }
  OnBackend gc = Upload(*gpu_, chai);
  const std::vector<float> out = run(gc, chai);
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t dd = 0; dd < 64; ++dd) {
      const float rep = out[(int64_t{t} * 9 + 0) * 64 + dd];
      ASSERT_EQ(out[(int64_t{t} * 9 + 1) * 64 + dd], rep) << "token " << t;
      ASSERT_EQ(out[(int64_t{t} * 9 + 2) * 64 + dd], rep) << "token " << t;
    }
  }
}

}  // namespace
}  // namespace chai::testing
