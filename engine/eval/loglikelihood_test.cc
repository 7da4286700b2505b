// The batched scorer on the default model. Its claim: reusing each context's
// K/V (continuations overwrite one another in the same slot) and packing
// pieces of many requests into one Forward changes nothing -- every sum is
// bit-identical to running context + continuation alone in a fresh sequence,
// whatever the batch size or cache size.
#include "engine/eval/loglikelihood.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/eval/metrics.h"
#include "engine/eval/requests.h"
#include "engine/loaded_model.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine::eval {
namespace {

class LoglikelihoodTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LoadedModel> m = LoadModel(chai::testing::DefaultModelPath());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LoadedModel(*std::move(m));
    backend_ = kernels::CreateCpuBackend({.threads = 0}).release();
  }
  static void TearDownTestSuite() {
    delete backend_;
    delete model_;
  }

  static std::unique_ptr<EvalEngine> Engine(EvalEngineOptions o) {
    o.max_seq_len = std::min<int64_t>(o.max_seq_len, model_->weights->config.context_length);
    absl::StatusOr<std::unique_ptr<EvalEngine>> e =
        EvalEngine::Create(model_->weights.get(), backend_, o);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  // Requests from text of varied lengths: a context under CHAI's 5-token
  // window, medium and long ones; 1- to many-token continuations.
  static std::vector<LoglikelihoodRequest> Requests() {
    const std::vector<McItem> items = {
        {"Hi", {"there", "you", "all of you, friends"}, 0},
        {"Question: What do cows drink?\nAnswer:", {"water", "milk", "orange juice from Spain"}, 0},
        {"The history of the Roman Empire spans many centuries, from the founding of the city "
         "to the fall of Constantinople. Historians divide it into several periods, and the "
         "most famous emperor of the early period was",
         {"Augustus", "a small dog named Rex who lived in a barrel", "Nero"},
         0},
        {"Water boils at", {"100 degrees Celsius at sea level.", "the moon."}, 0},
    };
    std::vector<LoglikelihoodRequest> out;
    for (const McItem& it : items) {
      absl::StatusOr<LoglikelihoodRequest> r = EncodeMcItem(*model_->tokenizer, it);
      EXPECT_TRUE(r.ok()) << r.status();
      out.push_back(*r);
    }
    return out;
  }

  // Each context + continuation alone, in a fresh one-sequence cache, every
  // row's logits requested: what the scorer must reproduce.
  static std::vector<std::vector<double>> NaiveSums(const std::vector<LoglikelihoodRequest>& reqs) {
    const LlamaConfig& c = model_->weights->config;
    absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
        ModelRunner::Create(model_->weights.get(), backend_, 256);
    EXPECT_TRUE(runner.ok());
    std::vector<std::vector<double>> sums;
    for (const LoglikelihoodRequest& r : reqs) {
      sums.emplace_back();
      for (const std::vector<int32_t>& cont : r.continuations) {
        std::vector<int32_t> toks = r.context;
        toks.insert(toks.end(), cont.begin(), cont.end());
        const int32_t n = static_cast<int32_t>(toks.size());
        KvCacheOptions kv;
        kv.num_blocks = (n + 15) / 16;
        kv.max_seq_len = n;
        absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(backend_, c, kv);
        EXPECT_TRUE(cache.ok());
        absl::StatusOr<int32_t> slot = (*cache)->AddSequence();
        EXPECT_TRUE((*cache)->Reserve(*slot, n).ok());
        std::vector<int32_t> slots(n, *slot), pos(n), rows(n);
        for (int32_t i = 0; i < n; ++i) pos[i] = rows[i] = i;
        std::vector<float> logits(static_cast<size_t>(n) * c.vocab_size);
        EXPECT_TRUE((*runner)->Forward({toks, slots, pos, rows}, **cache, logits).ok());
        double sum = 0;
        const size_t ctx = r.context.size();
        for (size_t j = 0; j < cont.size(); ++j) {
          std::span<const float> row(logits.data() + (ctx - 1 + j) * c.vocab_size, c.vocab_size);
          sum += LogSoftmaxAt(row, cont[j]);
        }
        sums.back().push_back(sum);
      }
    }
    return sums;
  }

  static LoadedModel* model_;
  static kernels::Backend* backend_;
};
LoadedModel* LoglikelihoodTest::model_ = nullptr;
kernels::Backend* LoglikelihoodTest::backend_ = nullptr;

TEST_F(LoglikelihoodTest, BitIdenticalToScoringEachContinuationAlone) {
  const std::vector<LoglikelihoodRequest> reqs = Requests();
  const std::vector<std::vector<double>> naive = NaiveSums(reqs);
  // Roomy: everything in one or two steps. Tight: 7-token steps (contexts
  // split across steps, continuations of different requests interleaved)
  // and a cache that holds about two requests at a time.
  std::vector<EvalEngineOptions> configs(2);
  configs[1].max_batch_tokens = 7;
  configs[1].max_seqs = 3;
  configs[1].kv_positions = 96;
  for (const EvalEngineOptions& o : configs) {
    std::unique_ptr<EvalEngine> engine = Engine(o);
    ASSERT_NE(engine, nullptr);
    int64_t last_done = -1, calls = 0;
    absl::StatusOr<LoglikelihoodResult> r =
        ScoreLoglikelihoods(*engine, reqs, {}, [&](int64_t done, int64_t total, int64_t) {
          EXPECT_GE(done, last_done);
          EXPECT_EQ(total, static_cast<int64_t>(reqs.size()));
          last_done = done;
          ++calls;
        });
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(last_done, static_cast<int64_t>(reqs.size()));
    ASSERT_EQ(r->plain.sums.size(), reqs.size());
    for (size_t q = 0; q < reqs.size(); ++q) {
      for (size_t c = 0; c < reqs[q].continuations.size(); ++c) {
        EXPECT_EQ(r->plain.sums[q][c], naive[q][c])
            << "request " << q << " continuation " << c << " batch " << o.max_batch_tokens;
        EXPECT_LT(r->plain.sums[q][c], 0);
      }
    }
    EXPECT_EQ(r->kl.n(), 0);  // no CHAI engine
    // Each context is fed once: tokens = contexts + all continuations.
    int64_t expect_fed = 0;
    for (const LoglikelihoodRequest& q : reqs) {
      expect_fed += static_cast<int64_t>(q.context.size());
      for (const auto& c : q.continuations) expect_fed += static_cast<int64_t>(c.size());
    }
    EXPECT_EQ(r->tokens_fed, expect_fed);
    if (o.max_batch_tokens == 7) {
      EXPECT_GE(calls, expect_fed / 7);
    }
  }
}

TEST_F(LoglikelihoodTest, TokenLogprobsAddUpToTheSums) {
  const std::vector<LoglikelihoodRequest> reqs = Requests();
  std::unique_ptr<EvalEngine> engine = Engine({});
  ASSERT_NE(engine, nullptr);
  absl::StatusOr<LoglikelihoodResult> r =
      ScoreLoglikelihoods(*engine, reqs, {.keep_token_logprobs = true}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  for (size_t q = 0; q < reqs.size(); ++q) {
    for (size_t c = 0; c < reqs[q].continuations.size(); ++c) {
      const std::vector<double>& lp = r->plain.token_logprobs[q][c];
      ASSERT_EQ(lp.size(), reqs[q].continuations[c].size());
      double sum = 0;
      for (double v : lp) {
        EXPECT_LE(v, 0);
        sum += v;
      }
      EXPECT_EQ(sum, r->plain.sums[q][c]);
    }
  }
}

TEST_F(LoglikelihoodTest, BadRequestsAreErrors) {
  std::unique_ptr<EvalEngine> engine = Engine({.max_batch_tokens = 64, .kv_positions = 64});
  ASSERT_NE(engine, nullptr);
  auto score = [&](std::vector<LoglikelihoodRequest> reqs) {
    return ScoreLoglikelihoods(*engine, reqs, {}, nullptr).status();
  };
  EXPECT_EQ(score({{{}, {{5}}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(score({{{5}, {}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(score({{{5}, {{}}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(score({{{5}, {{-1}}}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(score({{{5}, {{49152}}}}).code(), absl::StatusCode::kInvalidArgument);
  // 100 positions never fit a 64-position cache.
  EXPECT_EQ(score({{std::vector<int32_t>(90, 5), {{6}, std::vector<int32_t>(10, 7)}}}).code(),
            absl::StatusCode::kResourceExhausted);
  // The engine is still usable afterwards.
  EXPECT_TRUE(score({{{5, 6}, {{7}, {8, 9}}}}).ok());
}

TEST_F(LoglikelihoodTest, ChaiWithAllHeadsMatchesPlain) {
  const LlamaConfig& c = model_->weights->config;
  EvalEngineOptions o;
  o.chai.clusters.assign(c.n_layers, static_cast<int32_t>(c.n_heads));
  o.chai.k_heads.assign(c.n_layers, static_cast<int32_t>(c.n_kv_heads));
  std::unique_ptr<EvalEngine> engine = Engine(o);
  ASSERT_NE(engine, nullptr);
  const std::vector<LoglikelihoodRequest> reqs = Requests();
  absl::StatusOr<LoglikelihoodResult> r = ScoreLoglikelihoods(*engine, reqs, {}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  int64_t rows = 0;
  for (const LoglikelihoodRequest& q : reqs) {
    rows += 1;  // the context's last row, once
    for (const auto& cont : q.continuations) rows += static_cast<int64_t>(cont.size()) - 1;
  }
  EXPECT_EQ(r->kl.n(), rows);
  EXPECT_LT(r->kl.mean_kl(), 1e-8);
  EXPECT_EQ(r->kl.top1_agreement(), 1.0);
  for (size_t q = 0; q < reqs.size(); ++q) {
    for (size_t k = 0; k < reqs[q].continuations.size(); ++k) {
      EXPECT_NEAR(r->chai.sums[q][k], r->plain.sums[q][k], 1e-4 * std::abs(r->plain.sums[q][k]));
    }
  }
  // Requests 1 and 2 have contexts of >= 5 tokens and run CHAI; "Hi" and
  // "Water boils at" (1 and 3 tokens) run plain attention.
  EXPECT_EQ(engine->sequences_clustered(), 2);
}

TEST_F(LoglikelihoodTest, ChaiClusteringChangesTheDistribution) {
  const LlamaConfig& c = model_->weights->config;
  EvalEngineOptions o;
  // Later half of the layers clustered hard: one KV head's keys, 3 clusters.
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const bool hard = l >= c.n_layers / 2;
    o.chai.clusters.push_back(hard ? 3 : static_cast<int32_t>(c.n_heads));
    o.chai.k_heads.push_back(hard ? 1 : static_cast<int32_t>(c.n_kv_heads));
  }
  std::unique_ptr<EvalEngine> engine = Engine(o);
  ASSERT_NE(engine, nullptr);
  const std::vector<LoglikelihoodRequest> reqs = Requests();
  absl::StatusOr<LoglikelihoodResult> r = ScoreLoglikelihoods(*engine, reqs, {}, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->kl.mean_kl(), 1e-6);
  EXPECT_GT(r->kl.top1_agreement(), 0.0);
  EXPECT_LE(r->kl.top1_agreement(), 1.0);
  // Short-context requests (0 and 3) run plain attention in the CHAI cache too.
  for (size_t q : {0, 3}) {
    for (size_t k = 0; k < reqs[q].continuations.size(); ++k) {
      EXPECT_EQ(r->chai.sums[q][k], r->plain.sums[q][k]);
    }
  }
  EXPECT_EQ(engine->sequences_clustered(), 2);
  bool any_differs = false;
  for (size_t q = 1; q < 3; ++q) {
    for (size_t k = 0; k < reqs[q].continuations.size(); ++k) {
      any_differs |= r->chai.sums[q][k] != r->plain.sums[q][k];
    }
  }
  EXPECT_TRUE(any_differs);
}

// The CHAI pass resumes from the plain pass's residual stream at the first
// CHAI layer; that must not change a single bit of what it computes.
TEST_F(LoglikelihoodTest, SharingThePlainLayersKeepsEveryBit) {
  const LlamaConfig& c = model_->weights->config;
  EvalEngineOptions o;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const bool hard = l >= c.n_layers - 5;
    o.chai.clusters.push_back(hard ? 6 : static_cast<int32_t>(c.n_heads));
    o.chai.k_heads.push_back(hard ? 2 : static_cast<int32_t>(c.n_kv_heads));
  }
  const std::vector<LoglikelihoodRequest> reqs = Requests();
  std::vector<LoglikelihoodResult> results;
  for (bool share : {true, false}) {
    o.share_plain_layers = share;
    std::unique_ptr<EvalEngine> engine = Engine(o);
    ASSERT_NE(engine, nullptr);
    absl::StatusOr<LoglikelihoodResult> r = ScoreLoglikelihoods(*engine, reqs, {}, nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    results.push_back(*std::move(r));
  }
  EXPECT_EQ(results[0].chai.sums, results[1].chai.sums);
  EXPECT_EQ(results[0].plain.sums, results[1].plain.sums);
  EXPECT_EQ(results[0].kl.mean_kl(), results[1].kl.mean_kl());
  EXPECT_GT(results[0].kl.mean_kl(), 0.0);  // CHAI did change something
}

TEST_F(LoglikelihoodTest, ResumingAboveAChaiLayerIsRefused) {
  const LlamaConfig& c = model_->weights->config;
  KvCacheOptions kv;
  kv.num_blocks = 4;
  kv.max_seq_len = 64;
  kv.chai.clusters.assign(c.n_layers, static_cast<int32_t>(c.n_heads));
  kv.chai.k_heads.assign(c.n_layers, static_cast<int32_t>(c.n_kv_heads));
  kv.chai.clusters[3] = 3;
  kv.chai.k_heads[3] = 1;
  absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(backend_, c, kv);
  ASSERT_TRUE(cache.ok()) << cache.status();
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(model_->weights.get(), backend_, 16);
  ASSERT_TRUE(runner.ok());
  absl::StatusOr<int32_t> slot = (*cache)->AddSequence(false);
  ASSERT_TRUE(slot.ok());
  ASSERT_TRUE((*cache)->Reserve(*slot, 2).ok());
  const std::vector<int32_t> toks = {1, 2}, slots = {*slot, *slot}, pos = {0, 1}, rows = {1};
  std::vector<float> logits(c.vocab_size), residual(2 * c.dim, 0.5f);
  ResidualShare late{5, nullptr, residual};
  absl::Status s = (*runner)->Forward({toks, slots, pos, rows}, **cache, logits, &late);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ResidualShare wrong_size{2, nullptr, std::span<const float>(residual).first(c.dim)};
  s = (*runner)->Forward({toks, slots, pos, rows}, **cache, logits, &wrong_size);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  ResidualShare early{2, nullptr, residual};
  EXPECT_TRUE((*runner)->Forward({toks, slots, pos, rows}, **cache, logits, &early).ok());
}

}  // namespace
}  // namespace chai::engine::eval
