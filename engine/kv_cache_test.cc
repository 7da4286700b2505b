// Paged KV cache with per-head K pages and CHAI widths (engine/kv_cache.h).
#include "engine/kv_cache.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"

namespace chai::engine {
namespace {

LlamaConfig TinyConfig() {
  LlamaConfig c;
  c.n_layers = 3;
  c.dim = 36;
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 6;
  c.vocab_size = 10;
  c.context_length = 64;
  return c;
}

// Layer 0 plain, layer 1 keeps 2 key heads, layer 2 keeps 1.
ChaiPlan Plan() { return {{6, 3, 2}, {3, 2, 1}}; }

// Every test runs with both KV element types the CPU backend offers.
class KvCacheTest : public ::testing::TestWithParam<kernels::DType> {
 protected:
  std::unique_ptr<KvCache> Make(const ChaiPlan& plan, int64_t blocks, int32_t seqs = 4) {
    KvCacheOptions o;
    o.block_size = 4;
    o.num_blocks = blocks;
    o.max_seqs = seqs;
    o.max_seq_len = 32;
    o.chai = plan;
    absl::StatusOr<std::unique_ptr<KvCache>> c = KvCache::Create(backend_.get(), config_, o);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }
  LlamaConfig config_ = TinyConfig();
  std::unique_ptr<kernels::Backend> backend_ =
      kernels::CreateCpuBackend({.threads = 1, .kv_dtype = GetParam()});
  const int64_t elem_ = GetParam() == kernels::DType::kF16 ? 2 : 4;
  const int64_t page_ = 4 * 6 * elem_;  // block_size * head_dim * element bytes
};

TEST_P(KvCacheTest, PoolBytesFollowThePlansWidths) {
  auto plain = Make({}, 10);
  EXPECT_EQ(plain->k_pool_bytes(), 10 * (3 + 3 + 3) * page_);
  EXPECT_EQ(plain->v_pool_bytes(), 10 * 9 * page_);
  auto chai = Make(Plan(), 10);
  EXPECT_EQ(chai->k_pool_bytes(), 10 * (3 + 2 + 1) * page_);
  EXPECT_EQ(chai->v_pool_bytes(), 10 * 9 * page_);
  EXPECT_EQ(chai->kv_dtype(), GetParam());
  EXPECT_EQ(KvCache::KBytesPerToken(config_, Plan().k_heads, GetParam()), 6 * 6 * elem_);
  EXPECT_EQ(KvCache::VBytesPerToken(config_, GetParam()), 9 * 6 * elem_);
  EXPECT_EQ(KvCache::BlocksForBytes(config_, Plan(), 4, GetParam(), 10 * (6 + 9) * page_), 10);
}

TEST_P(KvCacheTest, ChaiSequencesTakeFewerPagesAndGiveThemAllBack) {
  auto cache = Make(Plan(), 10);
  const int32_t a = *cache->AddSequence(true);
  const int32_t b = *cache->AddSequence(false);
  ASSERT_TRUE(cache->Reserve(a, 9).ok());  // 3 blocks
  ASSERT_TRUE(cache->Reserve(b, 4).ok());  // 1 block
  EXPECT_EQ(cache->used_blocks(), 4);
  EXPECT_EQ(cache->k_bytes_in_use(), (3 * (3 + 2 + 1) + 1 * 9) * page_);
  EXPECT_EQ(cache->k_bytes_full_in_use(), 4 * 9 * page_);
  EXPECT_EQ(cache->free_k_pages(2), 10 - 3 - 3);
  EXPECT_EQ(cache->k_bytes_per_token(a), 6 * 6 * elem_);
  EXPECT_EQ(cache->k_bytes_per_token(b), 9 * 6 * elem_);
  // Pages of different slots never collide within a layer.
  cache->RemoveSequence(a);
  cache->RemoveSequence(b);
  EXPECT_EQ(cache->used_blocks(), 0);
  EXPECT_EQ(cache->k_bytes_in_use(), 0);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(cache->free_k_pages(l), 10 * Plan().k_heads[l]);
}

TEST_P(KvCacheTest, PlainSequencesInAChaiCacheRunOutOfKeyPagesFirst) {
  auto cache = Make(Plan(), 10);
  const int32_t s = *cache->AddSequence(false);
  // Layer 2 has 10 pages; a plain sequence needs 3 per block there.
  EXPECT_TRUE(cache->CanReserve(s, 12));   // 3 blocks, 9 pages
  EXPECT_FALSE(cache->CanReserve(s, 16));  // 4 blocks, 12 pages > 10
  const absl::Status st = cache->Reserve(s, 16);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_EQ(cache->used_blocks(), 0);  // nothing taken
  EXPECT_EQ(cache->Reserve(s, 40).code(), absl::StatusCode::kOutOfRange);
}

TEST_P(KvCacheTest, SlotPagesAreDistinct) {
  auto cache = Make(Plan(), 12);
  std::vector<int32_t> slots;
  for (int i = 0; i < 3; ++i) {
    slots.push_back(*cache->AddSequence(i != 1));
    ASSERT_TRUE(cache->Reserve(slots.back(), 8).ok());
  }
  for (int64_t l = 0; l < 3; ++l) {
    const kernels::KvLayer& kv = cache->layer(l);
    std::vector<int> seen(kv.num_k_pages, 0);
    for (int32_t s : slots) {
      for (int32_t b = 0; b < 2; ++b) {
        for (int32_t j = 0; j < cache->width(s, l); ++j) {
          ++seen[kv.k_pages[(s * cache->max_blocks_per_seq() + b) * 3 + j]];
        }
      }
    }
    for (int x : seen) EXPECT_LE(x, 1) << "layer " << l;
  }
}

TEST_P(KvCacheTest, NewSequencesGetValidMapsAndBadMapsAreRejected) {
  auto cache = Make(Plan(), 10);
  const int32_t s = *cache->AddSequence(true);
  EXPECT_TRUE(cache->needs_clustering(s));
  const HeadMap id = IdentityHeadMap(6, 3);
  EXPECT_EQ(cache->GetHeadMap(s, 0).score_head, id.score_head);
  // Layer 2 keeps one key head: the placeholder map uses KV head 0 only.
  const HeadMap m2 = cache->GetHeadMap(s, 2);
  EXPECT_EQ(m2.k_src, (std::vector<int32_t>{0, -1, -1}));
  for (int32_t r : m2.score_head) EXPECT_LT(r / 2, 1);
  // Three key heads in a layer that keeps one.
  EXPECT_FALSE(cache->SetHeadMap(s, 2, id).ok());
  // A member pointing at a non-representative.
  HeadMap bad = IdentityHeadMap(6, 3);
  bad.score_head[1] = 0;
  bad.score_head[0] = 2;
  EXPECT_FALSE(cache->SetHeadMap(s, 0, bad).ok());
  // A representative whose K slot holds another KV head.
  HeadMap wrong = {{0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0}, {1, 0, -1}};
  EXPECT_FALSE(cache->SetHeadMap(s, 1, wrong).ok());
  HeadMap good = {{0, 0, 0, 0, 4, 4}, {0, 0, 0, 0, 1, 0}, {0, 2, -1}};
  EXPECT_TRUE(cache->SetHeadMap(s, 1, good).ok());
  EXPECT_EQ(cache->GetHeadMap(s, 1).score_head, good.score_head);
  EXPECT_EQ(cache->AddSequence(true).ok(), true);
  EXPECT_EQ(Make({}, 4)->AddSequence(true).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(KvCacheTest, RejectsBadPlans) {
  KvCacheOptions o;
  o.num_blocks = 4;
  o.max_seq_len = 16;
  o.chai = {{6, 3}, {3, 2}};  // two layers for a three-layer model
  EXPECT_FALSE(o.Validate(config_).ok());
  o.chai = {{6, 7, 2}, {3, 2, 1}};  // 7 clusters of 6 heads
  EXPECT_FALSE(o.Validate(config_).ok());
  o.chai = {{6, 3, 2}, {3, 0, 1}};  // no key head kept
  EXPECT_FALSE(o.Validate(config_).ok());
  o.chai = {{6, 3, 2}, {3, 2}};
  EXPECT_FALSE(o.Validate(config_).ok());
}

INSTANTIATE_TEST_SUITE_P(KvDtypes, KvCacheTest,
                         ::testing::Values(kernels::DType::kF16, kernels::DType::kF32),
                         [](const ::testing::TestParamInfo<kernels::DType>& info) {
                           return std::string(kernels::Name(info.param));
                         });

}  // namespace
}  // namespace chai::engine
