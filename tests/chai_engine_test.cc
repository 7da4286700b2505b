// CHAI inside the engine on the real default model (DESIGN.md section 4,
// docs/CHAI.md): online clustering at prefill, clustered attention with a
// really smaller K cache, per-request switch, batch invariance.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/chai/chai_plan.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

struct Fixture {
  LoadedModel model;
  std::unique_ptr<kernels::Backend> backend;
  std::unique_ptr<ModelRunner> runner;
};

// A plan clustering the second half of the layers hard: 3 clusters of the 9
// query heads, keys of 1 of the 3 KV heads.
ChaiPlan HardPlan(const LlamaConfig& c) {
  ChaiPlan p;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const bool chai = l >= c.n_layers / 2;
    p.clusters.push_back(chai ? 3 : static_cast<int32_t>(c.n_heads));
    p.k_heads.push_back(chai ? 1 : static_cast<int32_t>(c.n_kv_heads));
  }
  return p;
}

ChaiPlan FullPlan(const LlamaConfig& c) {  // k_l = H everywhere
  return {std::vector<int32_t>(c.n_layers, static_cast<int32_t>(c.n_heads)),
          std::vector<int32_t>(c.n_layers, static_cast<int32_t>(c.n_kv_heads))};
}

class ChaiEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LoadedModel> m = LoadModel(chai::testing::DefaultModelPath());
    if (!m.ok()) return;  // each test skips
    fx_ = new Fixture{*std::move(m), kernels::CreateCpuBackend({.threads = 2}), nullptr};
    absl::StatusOr<std::unique_ptr<ModelRunner>> r =
        ModelRunner::Create(fx_->model.weights.get(), fx_->backend.get(), 512);
    ASSERT_TRUE(r.ok()) << r.status();
    fx_->runner = *std::move(r);
  }
  static void TearDownTestSuite() {
    delete fx_;
    fx_ = nullptr;
  }
  void SetUp() override {
    if (fx_ == nullptr) GTEST_SKIP() << "default model missing: run deploy/setup.sh";
  }
  const LlamaConfig& config() const { return fx_->model.weights->config; }
  int64_t vocab() const { return config().vocab_size; }

  std::vector<int32_t> Encode(const std::string& text) const {
    return fx_->model.tokenizer->Encode(text, true, false);
  }

  std::unique_ptr<KvCache> NewCache(const ChaiPlan& plan, int32_t seqs, int64_t len) {
    KvCacheOptions o;
    o.max_seqs = seqs;
    o.max_seq_len = len;
    o.num_blocks = seqs * ((len + 15) / 16);
    o.chai = plan;
    absl::StatusOr<std::unique_ptr<KvCache>> c = KvCache::Create(fx_->backend.get(), config(), o);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  // Logits at every position of each prompt, all prompts prefilled in one
  // batch (interleaved in `order`), then `decode` greedy steps batched.
  // Returns per prompt: prefill logits followed by each decode step's logits.
  std::vector<std::vector<float>> Run(const ChaiPlan& plan, const std::vector<bool>& chai,
                                      const std::vector<std::vector<int32_t>>& prompts,
                                      int32_t decode) {
    const int32_t n_seq = static_cast<int32_t>(prompts.size());
    auto cache = NewCache(plan, n_seq, 128);
    std::vector<int32_t> tokens, slots, pos, rows;
    for (int32_t s = 0; s < n_seq; ++s) {
      EXPECT_EQ(*cache->AddSequence(chai[s]), s);
      EXPECT_TRUE(cache->Reserve(s, static_cast<int64_t>(prompts[s].size()) + decode).ok());
      for (size_t i = 0; i < prompts[s].size(); ++i) {
        tokens.push_back(prompts[s][i]);
        slots.push_back(s);
        pos.push_back(static_cast<int32_t>(i));
        rows.push_back(static_cast<int32_t>(rows.size()));
      }
    }
    std::vector<float> logits(tokens.size() * vocab());
    absl::Status st = fx_->runner->Forward({tokens, slots, pos, rows}, *cache, logits);
    EXPECT_TRUE(st.ok()) << st;
    std::vector<std::vector<float>> out(n_seq);
    size_t row = 0;
    for (int32_t s = 0; s < n_seq; ++s) {
      out[s].assign(logits.begin() + row * vocab(),
                    logits.begin() + (row + prompts[s].size()) * vocab());
      row += prompts[s].size();
    }
    for (int32_t step = 0; step < decode; ++step) {
      std::vector<int32_t> t, sl, p, r;
      for (int32_t s = 0; s < n_seq; ++s) {
        const float* last = out[s].data() + out[s].size() - vocab();
        t.push_back(static_cast<int32_t>(std::max_element(last, last + vocab()) - last));
        sl.push_back(s);
        p.push_back(static_cast<int32_t>(prompts[s].size()) + step);
        r.push_back(s);
      }
      std::vector<float> lg(n_seq * vocab());
      st = fx_->runner->Forward({t, sl, p, r}, *cache, lg);
      EXPECT_TRUE(st.ok()) << st;
      for (int32_t s = 0; s < n_seq; ++s) {
        out[s].insert(out[s].end(), lg.begin() + s * vocab(), lg.begin() + (s + 1) * vocab());
      }
    }
    return out;
  }

  static Fixture* fx_;
};
Fixture* ChaiEngineTest::fx_ = nullptr;

const char* kPrompts[] = {
    "The capital of France is Paris, and the capital of Germany is",
    "def fibonacci(n):\n    if n < 2:\n        return n\n",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who",
};

TEST_F(ChaiEngineTest, AllHeadsKeptEqualsPlainAttention) {
  std::vector<std::vector<int32_t>> prompts;
  for (const char* p : kPrompts) prompts.push_back(Encode(p));
  const auto plain = Run({}, {false, false, false}, prompts, 4);
  const auto full = Run(FullPlan(config()), {true, true, true}, prompts, 4);
  for (size_t s = 0; s < prompts.size(); ++s) {
    float max_abs = 0, max_diff = 0;
    for (size_t i = 0; i < plain[s].size(); ++i) {
      max_abs = std::max(max_abs, std::fabs(plain[s][i]));
      max_diff = std::max(max_diff, std::fabs(plain[s][i] - full[s][i]));
    }
    EXPECT_LE(max_diff, 1e-4f * max_abs) << "prompt " << s;
  }
}

TEST_F(ChaiEngineTest, ClusteringShrinksKAndChangesOnlyChaiLayers) {
  const ChaiPlan plan = HardPlan(config());
  auto cache = NewCache(plan, 2, 64);
  const std::vector<int32_t> ids = Encode(kPrompts[2]);
  ASSERT_EQ(*cache->AddSequence(true), 0);
  ASSERT_TRUE(cache->Reserve(0, static_cast<int64_t>(ids.size())).ok());
  std::vector<int32_t> slots(ids.size(), 0), pos(ids.size());
  std::iota(pos.begin(), pos.end(), 0);
  std::vector<float> logits(vocab());
  const int32_t last[1] = {static_cast<int32_t>(ids.size()) - 1};
  ASSERT_TRUE(fx_->runner->Forward({ids, slots, pos, last}, *cache, logits).ok());
  EXPECT_EQ(fx_->runner->last_forward_stats().sequences_clustered, 1);
  EXPECT_GT(fx_->runner->last_forward_stats().clustering_s, 0.0);
  EXPECT_FALSE(cache->needs_clustering(0));
  const int32_t group = static_cast<int32_t>(config().n_heads / config().n_kv_heads);
  for (int64_t l = 0; l < config().n_layers; ++l) {
    const HeadMap m = cache->GetHeadMap(0, l);
    if (plan.clusters[l] == config().n_heads) {
      const HeadMap id = IdentityHeadMap(config().n_heads, config().n_kv_heads);
      EXPECT_EQ(m.score_head, id.score_head) << "layer " << l;
      continue;
    }
    // At most k_l representatives, all on the one kept KV head.
    EXPECT_LE(m.num_representatives(), plan.clusters[l]) << "layer " << l;
    EXPECT_GE(m.k_src[0], 0);
    EXPECT_EQ(m.k_src[1], -1);
    for (int32_t h = 0; h < config().n_heads; ++h) {
      const int32_t r = m.score_head[h];
      EXPECT_EQ(r / group, m.k_src[0]) << "layer " << l << " head " << h;
    }
  }
  // K memory: the pool and the bytes in use follow the plan's widths.
  ASSERT_EQ(cache->kv_dtype(), kernels::DType::kF16);  // the CPU backend's default
  const int64_t page = 16 * config().head_dim * 2;
  int64_t widths = 0;
  for (int32_t w : plan.k_heads) widths += w;
  EXPECT_EQ(cache->k_pool_bytes(), cache->options().num_blocks * widths * page);
  const int64_t blocks = (static_cast<int64_t>(ids.size()) + 15) / 16;
  EXPECT_EQ(cache->k_bytes_in_use(), blocks * widths * page);
  EXPECT_EQ(cache->k_bytes_full_in_use(), blocks * config().n_layers * config().n_kv_heads * page);
  EXPECT_EQ(cache->k_bytes_per_token(0),
            KvCache::KBytesPerToken(config(), plan.k_heads, kernels::DType::kF16));
}

// Benchmarks time attention through the runner; timing must not change a
// bit of the result, and costs nothing when off.
TEST_F(ChaiEngineTest, AttentionTimingIsOptInAndChangesNoLogits) {
  const ChaiPlan plan = HardPlan(config());
  const std::vector<int32_t> ids = Encode(kPrompts[0]);
  std::vector<int32_t> slots(ids.size(), 0), pos(ids.size());
  std::iota(pos.begin(), pos.end(), 0);
  const int32_t last[1] = {static_cast<int32_t>(ids.size()) - 1};
  std::vector<std::vector<float>> logits(2, std::vector<float>(vocab()));
  double attention_s[2];
  for (int timed = 0; timed < 2; ++timed) {
    auto cache = NewCache(plan, 1, 64);
    ASSERT_EQ(*cache->AddSequence(true), 0);
    ASSERT_TRUE(cache->Reserve(0, static_cast<int64_t>(ids.size())).ok());
    fx_->runner->SetTimeAttention(timed == 1);
    ASSERT_TRUE(fx_->runner->Forward({ids, slots, pos, last}, *cache, logits[timed]).ok());
    attention_s[timed] = fx_->runner->last_forward_stats().attention_s;
  }
  fx_->runner->SetTimeAttention(false);
  EXPECT_EQ(attention_s[0], 0.0);
  EXPECT_GT(attention_s[1], 0.0);
  EXPECT_EQ(0, std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * 4));
}

TEST_F(ChaiEngineTest, MixedMapsInOneBatchAreBitIdenticalToEachAlone) {
  const ChaiPlan plan = HardPlan(config());
  std::vector<std::vector<int32_t>> prompts;
  for (const char* p : kPrompts) prompts.push_back(Encode(p));
  // Sequence 1 runs plain attention in the CHAI cache (the per-request
  // switch); the others get their own cluster maps.
  const std::vector<bool> chai = {true, false, true};
  const auto together = Run(plan, chai, prompts, 6);
  for (size_t s = 0; s < prompts.size(); ++s) {
    const auto alone = Run(plan, {chai[s]}, {prompts[s]}, 6);
    ASSERT_EQ(alone[0].size(), together[s].size());
    EXPECT_EQ(0, std::memcmp(alone[0].data(), together[s].data(), alone[0].size() * 4))
        << "sequence " << s;
  }
  // The plain sequence equals a run without any CHAI plan; the CHAI ones differ.
  const auto plain = Run({}, {false, false, false}, prompts, 6);
  EXPECT_EQ(0, std::memcmp(plain[1].data(), together[1].data(), plain[1].size() * 4));
  EXPECT_NE(0, std::memcmp(plain[0].data(), together[0].data(), plain[0].size() * 4));
}

TEST_F(ChaiEngineTest, ChaiStaysCloseToPlainAttention) {
  // Not a fidelity measurement (chai eval does that), a guard against gross
  // errors: hard clustering of half the layers keeps the next-token
  // distribution close on natural text.
  const std::vector<int32_t> ids = Encode(kPrompts[2]);
  const auto plain = Run({}, {false}, {ids}, 0);
  const auto chai = Run(HardPlan(config()), {true}, {ids}, 0);
  double kl_sum = 0;
  int agree = 0;
  const size_t n = ids.size();
  for (size_t t = 0; t < n; ++t) {
    const float* p = plain[0].data() + t * vocab();
    const float* q = chai[0].data() + t * vocab();
    const float mp = *std::max_element(p, p + vocab()), mq = *std::max_element(q, q + vocab());
    double zp = 0, zq = 0;
    for (int64_t i = 0; i < vocab(); ++i) {
      zp += std::exp(double{p[i]} - mp);
      zq += std::exp(double{q[i]} - mq);
    }
    double kl = 0;
    for (int64_t i = 0; i < vocab(); ++i) {
      const double lp = p[i] - mp - std::log(zp), lq = q[i] - mq - std::log(zq);
      kl += std::exp(lp) * (lp - lq);
    }
    kl_sum += kl;
    agree += (std::max_element(p, p + vocab()) - p) == (std::max_element(q, q + vocab()) - q);
  }
  const double mean_kl = kl_sum / static_cast<double>(n);
  std::printf("hard plan on %zu tokens: mean KL %.4f, top-1 agreement %d/%zu\n", n, mean_kl, agree,
              n);
  EXPECT_GT(mean_kl, 0.0);
  EXPECT_LT(mean_kl, 1.0);
  EXPECT_GE(agree * 2, static_cast<int>(n));
}

TEST_F(ChaiEngineTest, ChaiSequenceNeedsItsFirstFiveTokensInOneBatch) {
  auto cache = NewCache(HardPlan(config()), 1, 32);
  ASSERT_EQ(*cache->AddSequence(true), 0);
  ASSERT_TRUE(cache->Reserve(0, 8).ok());
  const std::vector<int32_t> ids = {1, 2, 3}, slots = {0, 0, 0}, pos = {0, 1, 2};
  std::vector<float> logits(vocab());
  const int32_t last[1] = {2};
  const absl::Status s = fx_->runner->Forward({ids, slots, pos, last}, *cache, logits);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(cache->needs_clustering(0));
}

}  // namespace
}  // namespace chai::engine
