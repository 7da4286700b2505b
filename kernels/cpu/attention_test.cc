// Paged attention (StoreKv + Attention) against dense naive attention on a
// ragged batch: sequences of different lengths, a prefill chunk mixed with
// decode tokens, block tables and K pages that are shuffled and
// non-contiguous, GQA, CHAI head maps that differ per sequence, and
// contexts long enough to be split into several parts and merged.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/test_util.h"

namespace chai::kernels {
namespace {

using cpu::testing::RandomFloats;

// The fixture's caches hold floats; the fp16 cache has its own test below.
std::unique_ptr<Backend> F32Backend(int threads) {
  return CreateCpuBackend({.threads = threads, .kv_dtype = DType::kF32});
}

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
  static constexpr int kHeadDim = 64, kBlockSize = 4, kMaxBlocks = 150;
  static constexpr int kSeqs = 4, kNumBlocks = kSeqs * kMaxBlocks;
  // Final lengths, ragged. Sequence 3 is long: its context splits into
  // parts of at most 256 positions (ops.cc kPartPositions).
  static constexpr int kLen[kSeqs] = {11, 18, 13, 600};

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
    // K pages: each (sequence, block, K slot) gets a shuffled page id.
    std::vector<int32_t> pages(kNumBlocks * n_kv_);
    std::iota(pages.begin(), pages.end(), 0);
    std::shuffle(pages.begin(), pages.end(), rng);
    k_pages_.assign(kSeqs * kMaxBlocks * n_kv_, -1);
    for (size_t i = 0; i < k_pages_.size(); ++i) k_pages_[i] = pages[i];
    k_cache_.assign(size_t{kNumBlocks} * n_kv_ * kBlockSize * kHeadDim, std::nanf(""));
    v_cache_.assign(size_t{kNumBlocks} * kBlockSize * n_kv_ * kHeadDim, std::nanf(""));
    for (int s = 0; s < kSeqs; ++s) SetIdentityMap(s);
    kv_.k = k_cache_.data();
    kv_.v = v_cache_.data();
    kv_.k_pages = k_pages_.data();
    kv_.k_src = k_src_.data();
    kv_.score_head = score_head_.data();
    kv_.k_slot = k_slot_.data();
    kv_.n_q_heads = n_q_;
    kv_.n_kv_heads = n_kv_;
    kv_.head_dim = kHeadDim;
    kv_.block_size = kBlockSize;
    kv_.num_blocks = kNumBlocks;
    kv_.num_k_pages = kNumBlocks * n_kv_;
  }

  void SetIdentityMap(int s) {
    k_src_.resize(kSeqs * n_kv_);
    score_head_.resize(kSeqs * n_q_);
    k_slot_.resize(kSeqs * n_q_);
    for (int j = 0; j < n_kv_; ++j) k_src_[s * n_kv_ + j] = j;
    for (int h = 0; h < n_q_; ++h) {
      score_head_[s * n_q_ + h] = h;
      k_slot_[s * n_q_ + h] = h / (n_q_ / n_kv_);
    }
  }

  // A CHAI map for sequence s: rep[h] is h's representative; kept lists the
  // KV heads whose keys are stored, in K slot order.
  void SetMap(int s, const std::vector<int32_t>& rep, const std::vector<int32_t>& kept) {
    const int group = n_q_ / n_kv_;
    for (int j = 0; j < n_kv_; ++j) {
      k_src_[s * n_kv_ + j] = j < static_cast<int>(kept.size()) ? kept[j] : -1;
    }
    for (int h = 0; h < n_q_; ++h) {
      score_head_[s * n_q_ + h] = rep[h];
      const auto it = std::find(kept.begin(), kept.end(), h / group);
      k_slot_[s * n_q_ + h] = it == kept.end() ? 0 : static_cast<int32_t>(it - kept.begin());
    }
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

  // Into `kv` (default: the fixture's float cache).
  void Store(Backend& be, const Batch& b, KvLayer* kv = nullptr) {
    const std::vector<float> k = Rows(k_, b, n_kv_), v = Rows(v_, b, n_kv_);
    be.StoreKv(k.data(), v.data(), Place(b), kv != nullptr ? *kv : kv_);
  }

  std::vector<float> Attend(Backend& be, const Batch& b, const KvLayer* kv = nullptr) {
    const std::vector<float> q = Rows(q_, b, n_q_);
    std::vector<float> out(q.size(), std::nanf(""));
    be.Attention(q.data(), n_q_, Place(b), kv != nullptr ? *kv : kv_, out.data());
    return out;
  }

  // Dense causal attention in float64 for token (s, p), query head h, with
  // the sequence's map: scores of h's representative r (its query, its KV
  // head's keys), values of h's own KV head.
  std::vector<double> Naive(int s, int p, int h) const {
    const int group = n_q_ / n_kv_;
    const int r = score_head_[s * n_q_ + h];
    const int kvh = h / group;
    const int kvr = r / group;
    const float* q = &q_[s][(static_cast<size_t>(p) * n_q_ + r) * kHeadDim];
    std::vector<double> scores(p + 1);
    double mx = -INFINITY;
    for (int j = 0; j <= p; ++j) {
      const float* k = &k_[s][(static_cast<size_t>(j) * n_kv_ + kvr) * kHeadDim];
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

  // Attends `step` (already stored) in `be`: dense attention, and each token
  // alone gives the same bits, single-threaded and on four threads (more
  // threads than a lone token has work items).
  void MatchesDenseAndEachTokenAlone(Backend& be, const Batch& step) {
    const std::vector<float> out = Attend(be, step);
    ExpectMatchesNaive(step, out);
    std::unique_ptr<Backend> be1 = F32Backend(1);
    std::unique_ptr<Backend> be4 = F32Backend(4);
    for (int32_t t = 0; t < step.size(); ++t) {
      Batch one;
      one.Add(step.seq[t], step.pos[t], step.pos[t] + 1);
      for (Backend* alone_be : {be1.get(), be4.get()}) {
        const std::vector<float> alone = Attend(*alone_be, one);
        ASSERT_EQ(0, std::memcmp(alone.data(), &out[static_cast<size_t>(t) * n_q_ * kHeadDim],
                                 alone.size() * sizeof(float)))
            << "token " << t << (alone_be == be1.get() ? " alone" : " alone on four threads");
      }
    }
  }

  // Step 2 of both tests: decode tokens of sequences 0 and 1 mixed with a
  // prefill chunk of sequence 2 that crosses block boundaries, in scrambled
  // order; then each token alone, single-threaded, must give the same bits.
  void MixedStepMatchesDenseAndEachTokenAlone(Backend& be) {
    Batch step2;
    step2.Add(2, 5, 9);
    step2.Add(1, 17, 18);
    step2.Add(2, 9, 13);
    step2.Add(0, 10, 11);
    Store(be, step2);
    MatchesDenseAndEachTokenAlone(be, step2);
  }

  // Sequence 3 prefilled from one part to three (contexts of 256 and 512
  // positions are the last of one and two parts) beside a short sequence,
  // then decode tokens of three parts mixed with a prefill chunk: dense
  // attention, and each token alone gives the same bits.
  void LongContextStepsMatchDenseAndEachTokenAlone(Backend& be) {
    Batch step1;
    step1.Add(3, 0, 540);
    step1.Add(1, 0, 17);
    Store(be, step1);
    ExpectMatchesNaive(step1, Attend(be, step1));
    Batch step2;
    step2.Add(3, 540, 600);
    step2.Add(1, 17, 18);
    Store(be, step2);
    MatchesDenseAndEachTokenAlone(be, step2);
  }

  int n_q_ = 0, n_kv_ = 0;
  std::vector<float> k_[kSeqs], v_[kSeqs], q_[kSeqs];
  std::vector<int32_t> tables_, k_pages_, k_src_, score_head_, k_slot_;
  std::vector<float> k_cache_, v_cache_;

  // Element d of the key at position p in K page `page`: the CPU backend's
  // pages are transposed, [head_dim, block_size] (attention_kernels.h).
  static int64_t KeyAt(int64_t page, int p, int d) {
    return (page * kHeadDim + d) * kBlockSize + p % kBlockSize;
  }
  KvLayer kv_;
};

TEST_P(PagedAttentionTest, RaggedMixedBatchMatchesDenseAttention) {
  std::unique_ptr<Backend> be = F32Backend(3);
  // Step 1: prefill chunks of all three sequences.
  Batch step1;
  step1.Add(0, 0, 10);
  step1.Add(1, 0, 17);
  step1.Add(2, 0, 5);
  Store(*be, step1);
  ExpectMatchesNaive(step1, Attend(*be, step1));

  // StoreKv wrote each position to its shuffled block and K pages.
  for (int32_t t = 0; t < step1.size(); ++t) {
    const int s = step1.seq[t], p = step1.pos[t];
    const int64_t row =
        int64_t{tables_[s * kMaxBlocks + p / kBlockSize]} * kBlockSize + p % kBlockSize;
    ASSERT_EQ(0,
              std::memcmp(&v_cache_[row * n_kv_ * kHeadDim],
                          &v_[s][static_cast<size_t>(p) * n_kv_ * kHeadDim], n_kv_ * kHeadDim * 4));
    for (int j = 0; j < n_kv_; ++j) {
      const int64_t page = k_pages_[(s * kMaxBlocks + p / kBlockSize) * n_kv_ + j];
      for (int d = 0; d < kHeadDim; ++d) {
        ASSERT_EQ(k_cache_[KeyAt(page, p, d)],
                  k_[s][(static_cast<size_t>(p) * n_kv_ + j) * kHeadDim + d]);
      }
    }
  }

  MixedStepMatchesDenseAndEachTokenAlone(*be);
}

TEST_P(PagedAttentionTest, ContextsOfSeveralPartsMergeToDenseAttention) {
  std::unique_ptr<Backend> be = F32Backend(3);
  LongContextStepsMatchDenseAndEachTokenAlone(*be);
}

// An fp16 cache (the CPU backend's default): StoreKv writes each key and
// value rounded to nearest even, and attention over it gives the bits a
// float cache holding those rounded values gives (the kernels widen fp16
// exactly), for a prefill step and a mixed decode step.
TEST_P(PagedAttentionTest, Fp16CacheStoresRoundedValuesAndAttendsAsAFloatCacheOfThem) {
  std::unique_ptr<Backend> be16 = CreateCpuBackend({.threads = 3});
  ASSERT_EQ(be16->KvDtype(), DType::kF16);
  std::vector<uint16_t> k16(k_cache_.size(), 0x7e00), v16(v_cache_.size(), 0x7e00);  // NaN
  KvLayer kv16 = kv_;
  kv16.k = k16.data();
  kv16.v = v16.data();
  Batch step1;
  step1.Add(0, 0, 10);
  step1.Add(1, 0, 17);
  step1.Add(2, 0, 5);
  Batch step2;
  step2.Add(2, 5, 9);
  step2.Add(1, 17, 18);
  step2.Add(0, 10, 11);
  const std::vector<float> k_orig[kSeqs] = {k_[0], k_[1], k_[2]};
  const std::vector<float> v_orig[kSeqs] = {v_[0], v_[1], v_[2]};
  Store(*be16, step1, &kv16);
  Store(*be16, step2, &kv16);
  // The float cache gets the rounded values.
  int changed = 0;
  for (std::vector<float>* dense : {&k_[0], &k_[1], &k_[2], &v_[0], &v_[1], &v_[2]}) {
    for (float& x : *dense) {
      const float r = cpu::Fp16ToFp32(cpu::Fp32ToFp16(x));
      changed += r != x;
      x = r;
    }
  }
  ASSERT_GT(changed, 0);
  std::unique_ptr<Backend> be32 = F32Backend(3);
  Store(*be32, step1);
  Store(*be32, step2);
  for (const Batch* b : {&step1, &step2}) {
    for (int32_t t = 0; t < b->size(); ++t) {
      const int s = b->seq[t], p = b->pos[t];
      const int64_t row =
          int64_t{tables_[s * kMaxBlocks + p / kBlockSize]} * kBlockSize + p % kBlockSize;
      for (int i = 0; i < n_kv_ * kHeadDim; ++i) {
        ASSERT_EQ(v16[row * n_kv_ * kHeadDim + i],
                  cpu::Fp32ToFp16(v_orig[s][static_cast<size_t>(p) * n_kv_ * kHeadDim + i]));
      }
      for (int j = 0; j < n_kv_; ++j) {
        const int64_t page = k_pages_[(s * kMaxBlocks + p / kBlockSize) * n_kv_ + j];
        for (int i = 0; i < kHeadDim; ++i) {
          ASSERT_EQ(
              k16[KeyAt(page, p, i)],
              cpu::Fp32ToFp16(k_orig[s][(static_cast<size_t>(p) * n_kv_ + j) * kHeadDim + i]));
        }
      }
    }
    const std::vector<float> got = Attend(*be16, *b, &kv16), want = Attend(*be32, *b);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float)));
    ExpectMatchesNaive(*b, got);  // and both match dense attention on the rounded values
  }
}

// (n_q_heads, n_kv_heads): grouped-query as in SmolLM2 (3 q heads per kv
// head), multi-head, and multi-query.
INSTANTIATE_TEST_SUITE_P(HeadLayouts, PagedAttentionTest,
                         ::testing::Values(std::make_pair(9, 3), std::make_pair(4, 4),
                                           std::make_pair(6, 1)));

// CHAI maps are written for SmolLM2's layout: 9 query heads, 3 KV heads.
class ChaiAttentionTest : public PagedAttentionTest {};

TEST_P(ChaiAttentionTest, MapsPerSequenceMatchDenseAndStoreOnlyKeptKeys) {
  // Sequence 0 plain; sequence 1 clusters {0,4,8} {1,2} {3,5,6,7} keeping all
  // keys; sequence 2 keeps only KV head 2's keys: every head scores with
  // head 6 or 8.
  SetMap(1, {0, 1, 1, 3, 0, 3, 3, 3, 0}, {0, 1, 2});
  SetMap(2, {6, 6, 8, 6, 8, 6, 6, 8, 8}, {2});
  std::unique_ptr<Backend> be = F32Backend(3);
  Batch step1;
  step1.Add(0, 0, 10);
  step1.Add(1, 0, 17);
  step1.Add(2, 0, 5);
  Store(*be, step1);
  ExpectMatchesNaive(step1, Attend(*be, step1));
  // Sequence 2 stored only K slot 0 (= KV head 2); its other pages untouched.
  for (int p = 0; p < 5; ++p) {
    for (int j = 0; j < n_kv_; ++j) {
      const int64_t page = k_pages_[(2 * kMaxBlocks + p / kBlockSize) * n_kv_ + j];
      for (int d = 0; d < kHeadDim; ++d) {
        const float got = k_cache_[KeyAt(page, p, d)];
        if (j == 0) {
          ASSERT_EQ(got, k_[2][(static_cast<size_t>(p) * n_kv_ + 2) * kHeadDim + d]);
        } else {
          ASSERT_TRUE(std::isnan(got)) << "K slot " << j << " was written";
        }
      }
    }
  }
  MixedStepMatchesDenseAndEachTokenAlone(*be);
}

TEST_P(ChaiAttentionTest, LongContextMapsMatchDenseAcrossParts) {
  // Clusters {0,2,7} {1} {3,4,5,6,8} keeping KV heads 0 and 1: the items of
  // each K slot mix heads of two KV heads, on every part.
  SetMap(3, {0, 1, 0, 3, 3, 3, 3, 0, 3}, {0, 1});
  std::unique_ptr<Backend> be = F32Backend(3);
  LongContextStepsMatchDenseAndEachTokenAlone(*be);
}

TEST_P(ChaiAttentionTest, MembersUseTheirRepresentativesProbabilitiesBitwise) {
  // With V[p][kv][d] = (d == p) for every KV head, out_h[0..pos] is exactly
  // the probability row head h used: members (even on other KV heads) must
  // equal their representative bit for bit, and the row must sum to ~1.
  for (int s = 0; s < kSeqs; ++s) {
    std::fill(v_[s].begin(), v_[s].end(), 0.0f);
    for (int p = 0; p < std::min(kLen[s], kHeadDim); ++p) {
      for (int g = 0; g < n_kv_; ++g)
        v_[s][(static_cast<size_t>(p) * n_kv_ + g) * kHeadDim + p] = 1;
    }
  }
  SetMap(0, {0, 0, 2, 0, 2, 5, 0, 2, 5}, {0, 1});
  SetMap(1, {0, 1, 1, 3, 0, 3, 3, 3, 0}, {0, 1, 2});
  std::unique_ptr<Backend> be = F32Backend(2);
  Batch b;
  b.Add(0, 0, 11);
  b.Add(1, 0, 18);
  Store(*be, b);
  const std::vector<float> out = Attend(*be, b);
  for (int32_t t = 0; t < b.size(); ++t) {
    const int s = b.seq[t];
    for (int h = 0; h < n_q_; ++h) {
      const int r = score_head_[s * n_q_ + h];
      const float* oh = &out[(static_cast<size_t>(t) * n_q_ + h) * kHeadDim];
      const float* orep = &out[(static_cast<size_t>(t) * n_q_ + r) * kHeadDim];
      ASSERT_EQ(0, std::memcmp(oh, orep, kHeadDim * sizeof(float)))
          << "token " << t << " head " << h;
      double sum = 0;
      for (int d = 0; d <= b.pos[t]; ++d) sum += oh[d];
      ASSERT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Gqa9x3, ChaiAttentionTest, ::testing::Values(std::make_pair(9, 3)));

}  // namespace
}  // namespace chai::kernels
