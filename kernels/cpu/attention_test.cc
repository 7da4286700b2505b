// Paged attention (StoreKv + Attention) against dense naive attention on a
// ragged batch: sequences of different lengths, a prefill chunk mixed with
// decode tokens, block tables that are shuffled and non-contiguous, GQA.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/test_util.h"

namespace chai::kernels {
namespace {

using cpu::testing::RandomFloats;

struct Batch {  // one flat batch of tokens, as the engine builds it
  std::vector<int32_t> seq, pos;
  void Add(int32_t s, int32_t from, int32_t to) {  // positions [from, to)
    for (int32_t p = from; p < to; ++p) {
      seq.push_back(s);
      pos.push_back(p);
    }
  }
  int32_t size() const { return static_cast<int32_t>(seq.size()); }
};

class PagedAttentionTest : public ::testing::TestWithParam<std::pair<int, int>> {
 protected:
  static constexpr int kHeadDim = 64, kBlockSize = 4, kNumBlocks = 40, kMaxBlocks = 8;
  static constexpr int kSeqs = 3;
  static constexpr int kLen[kSeqs] = {11, 18, 13};  // final lengths, ragged

  void SetUp() override {
    n_q_ = GetParam().first;
    n_kv_ = GetParam().second;
    std::mt19937 rng(21);
    // Dense per-sequence K, V, Q: [seq][pos][heads][head_dim].
    for (int s = 0; s < kSeqs; ++s) {
      k_[s] = RandomFloats(kLen[s] * n_kv_ * kHeadDim, rng);
      v_[s] = RandomFloats(kLen[s] * n_kv_ * kHeadDim, rng);
      q_[s] = RandomFloats(kLen[s] * n_q_ * kHeadDim, rng, 2.0f);
    }
    // Shuffled physical blocks: no sequence gets consecutive or ordered ids.
    std::vector<int32_t> blocks(kNumBlocks);
    std::iota(blocks.begin(), blocks.end(), 0);
    std::shuffle(blocks.begin(), blocks.end(), rng);
    tables_.assign(kSeqs * kMaxBlocks, -1);
    int next = 0;
    for (int s = 0; s < kSeqs; ++s) {
      for (int b = 0; b < (kLen[s] + kBlockSize - 1) / kBlockSize; ++b) {
        tables_[s * kMaxBlocks + b] = blocks[next++];
      }
    }
    k_cache_.assign(size_t{kNumBlocks} * kBlockSize * n_kv_ * kHeadDim, std::nanf(""));
    v_cache_ = k_cache_;
    kv_ = {k_cache_.data(), v_cache_.data(), n_kv_, n_kv_, kHeadDim, kBlockSize, kNumBlocks};
  }

  TokenPlacement Place(const Batch& b) const {
    return {b.size(), b.seq.data(), b.pos.data(), tables_.data(), kMaxBlocks};
  }

  // Gathers the batch's rows of a dense per-sequence tensor.
  std::vector<float> Rows(const std::vector<float> (&dense)[kSeqs], const Batch& b,
                          int heads) const {
    std::vector<float> out;
    for (int32_t t = 0; t < b.size(); ++t) {
      const float* src = &dense[b.seq[t]][static_cast<size_t>(b.pos[t]) * heads * kHeadDim];
      out.insert(out.end(), src, src + heads * kHeadDim);
    }
    return out;
  }

  void Store(Backend& be, const Batch& b) {
    const std::vector<float> k = Rows(k_, b, n_kv_), v = Rows(v_, b, n_kv_);
    be.StoreKv(k.data(), v.data(), Place(b), kv_);
  }

  std::vector<float> Attend(Backend& be, const Batch& b) {
    const std::vector<float> q = Rows(q_, b, n_q_);
    std::vector<float> out(q.size(), std::nanf(""));
    be.Attention(q.data(), n_q_, Place(b), kv_, out.data());
    return out;
  }

  // Dense causal attention in float64 for token (s, p), query head h.
  std::vector<double> Naive(int s, int p, int h) const {
    const int kvh = h / (n_q_ / n_kv_);
    const float* q = &q_[s][(static_cast<size_t>(p) * n_q_ + h) * kHeadDim];
    std::vector<double> scores(p + 1);
    double mx = -INFINITY;
    for (int j = 0; j <= p; ++j) {
      const float* k = &k_[s][(static_cast<size_t>(j) * n_kv_ + kvh) * kHeadDim];
      double d = 0;
      for (int i = 0; i < kHeadDim; ++i) d += double{q[i]} * k[i];
      scores[j] = d / std::sqrt(double{kHeadDim});
      mx = std::max(mx, scores[j]);
    }
    double sum = 0;
    for (double& x : scores) sum += (x = std::exp(x - mx));
    std::vector<double> out(kHeadDim, 0.0);
    for (int j = 0; j <= p; ++j) {
      const float* v = &v_[s][(static_cast<size_t>(j) * n_kv_ + kvh) * kHeadDim];
      for (int i = 0; i < kHeadDim; ++i) out[i] += scores[j] / sum * v[i];
    }
    return out;
  }

  void ExpectMatchesNaive(const Batch& b, const std::vector<float>& out) const {
    for (int32_t t = 0; t < b.size(); ++t) {
      for (int h = 0; h < n_q_; ++h) {
        const std::vector<double> ref = Naive(b.seq[t], b.pos[t], h);
        for (int i = 0; i < kHeadDim; ++i) {
          ASSERT_NEAR(out[(static_cast<size_t>(t) * n_q_ + h) * kHeadDim + i], ref[i], 2e-5)
              << "token " << t << " (seq " << b.seq[t] << " pos " << b.pos[t] << ") head " << h;
        }
      }
    }
  }

  int n_q_ = 0, n_kv_ = 0;
  std::vector<float> k_[kSeqs], v_[kSeqs], q_[kSeqs];
  std::vector<int32_t> tables_;
  std::vector<float> k_cache_, v_cache_;
  KvLayer kv_;
};

TEST_P(PagedAttentionTest, RaggedMixedBatchMatchesDenseAttention) {
  std::unique_ptr<Backend> be = CreateCpuBackend({.threads = 3});
  // Step 1: prefill chunks of all three sequences.
  Batch step1;
  step1.Add(0, 0, 10);
  step1.Add(1, 0, 17);
  step1.Add(2, 0, 5);
  Store(*be, step1);
  ExpectMatchesNaive(step1, Attend(*be, step1));

  // StoreKv wrote each position to its shuffled physical slot.
  for (int32_t t = 0; t < step1.size(); ++t) {
    const int s = step1.seq[t], p = step1.pos[t];
    const int64_t slot =
        int64_t{tables_[s * kMaxBlocks + p / kBlockSize]} * kBlockSize + p % kBlockSize;
    ASSERT_EQ(0,
              std::memcmp(&k_cache_[slot * n_kv_ * kHeadDim],
                          &k_[s][static_cast<size_t>(p) * n_kv_ * kHeadDim], n_kv_ * kHeadDim * 4));
    ASSERT_EQ(0,
              std::memcmp(&v_cache_[slot * n_kv_ * kHeadDim],
                          &v_[s][static_cast<size_t>(p) * n_kv_ * kHeadDim], n_kv_ * kHeadDim * 4));
  }

  // Step 2: decode tokens of sequences 0 and 1 mixed with a prefill chunk of
  // sequence 2 that crosses block boundaries, in scrambled order.
  Batch step2;
  step2.Add(2, 5, 9);
  step2.Add(1, 17, 18);
  step2.Add(2, 9, 13);
  step2.Add(0, 10, 11);
  Store(*be, step2);
  const std::vector<float> out2 = Attend(*be, step2);
  ExpectMatchesNaive(step2, out2);

  // Determinism: each token alone, single-threaded, gives the same bits.
  std::unique_ptr<Backend> be1 = CreateCpuBackend({.threads = 1});
  for (int32_t t = 0; t < step2.size(); ++t) {
    Batch one;
    one.Add(step2.seq[t], step2.pos[t], step2.pos[t] + 1);
    const std::vector<float> alone = Attend(*be1, one);
    ASSERT_EQ(0, std::memcmp(alone.data(), &out2[static_cast<size_t>(t) * n_q_ * kHeadDim],
                             alone.size() * sizeof(float)))
        << "token " << t;
  }
}

// (n_q_heads, n_kv_heads): grouped-query as in SmolLM2 (3 q heads per kv
// head), multi-head, and multi-query.
INSTANTIATE_TEST_SUITE_P(HeadLayouts, PagedAttentionTest,
                         ::testing::Values(std::make_pair(9, 3), std::make_pair(4, 4),
                                           std::make_pair(6, 1)));

TEST(PagedAttentionGqaTest, QueryHeadsReadTheirGroupsKvHead) {
  // kv head 1's values are all 1 and kv head 0's all 0: with 4 q heads over 2
  // kv heads, q heads 0-1 must output 0 and q heads 2-3 must output 1.
  std::unique_ptr<Backend> be = CreateCpuBackend({.threads = 2});
  const int hd = 8, bs = 2;
  std::vector<float> kc(4 * bs * 2 * hd, 0.0f), vc(4 * bs * 2 * hd, 0.0f);
  KvLayer kv{kc.data(), vc.data(), 2, 2, hd, bs, 4};
  const std::vector<int32_t> table = {3, 1};
  const std::vector<int32_t> seq = {0, 0, 0}, pos = {0, 1, 2};
  std::vector<float> k(3 * 2 * hd, 0.25f), v(3 * 2 * hd, 0.0f);
  for (int t = 0; t < 3; ++t) std::fill_n(&v[(t * 2 + 1) * hd], hd, 1.0f);
  TokenPlacement place{3, seq.data(), pos.data(), table.data(), 2};
  be->StoreKv(k.data(), v.data(), place, kv);
  std::vector<float> q(3 * 4 * hd, 1.0f), out(3 * 4 * hd);
  be->Attention(q.data(), 4, place, kv, out.data());
  for (int t = 0; t < 3; ++t) {
    for (int h = 0; h < 4; ++h) {
      for (int i = 0; i < hd; ++i) EXPECT_EQ(out[(t * 4 + h) * hd + i], h < 2 ? 0.0f : 1.0f);
    }
  }
}

}  // namespace
}  // namespace chai::kernels
