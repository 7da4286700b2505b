#include "engine/serving/scheduler.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "engine/serving/fake_kv_allocator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::ElementsAre;

const ScheduledChunk* FindChunk(const StepPlan& plan, int64_t seq) {
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.seq == seq) return &c;
  }
  return nullptr;
}

FakeKvAllocator::Options Pool(int64_t blocks, int32_t block_size = 4, int32_t slots = 64) {
  FakeKvAllocator::Options o;
  o.num_blocks = blocks;
  o.block_size = block_size;
  o.max_slots = slots;
  o.num_k_pages = blocks * o.plain_pages;
  return o;
}

// Runs one step of a model that only advances counters: commits the plan and
// samples a token for every chunk that reaches its sequence's end.
void FakeStep(Scheduler& s, const StepPlan& plan) {
  s.Commit(plan);
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.samples) s.AppendToken(c.seq);
  }
}

TEST(SchedulerOptionsTest, RejectsNonPositive) {
  EXPECT_TRUE(SchedulerOptions{}.Validate().ok());
  for (const SchedulerOptions& bad :
       {SchedulerOptions{0, 8, 8}, SchedulerOptions{8, 0, 8}, SchedulerOptions{8, 8, 0}}) {
    EXPECT_EQ(bad.Validate().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(SchedulerTest, AddRejectsBadInput) {
  FakeKvAllocator alloc(Pool(16));
  Scheduler s({4, 64, 16}, &alloc);
  EXPECT_EQ(s.Add(1, 0, false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.Add(1, 5, false, 0).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.Add(1, 5, false).ok());
  EXPECT_EQ(s.Add(1, 5, false).code(), absl::StatusCode::kAlreadyExists);
}

TEST(SchedulerTest, ChunkedPrefillThenDecode) {
  FakeKvAllocator alloc(Pool(64));
  Scheduler s({4, 64, 32}, &alloc);
  ASSERT_TRUE(s.Add(7, 100, false).ok());
  std::vector<int32_t> sizes;
  std::vector<bool> samples;
  for (int step = 0; step < 6; ++step) {
    StepPlan plan = s.Schedule();
    ASSERT_EQ(plan.chunks.size(), 1u);
    sizes.push_back(plan.chunks[0].num_tokens);
    samples.push_back(plan.chunks[0].samples);
    FakeStep(s, plan);
  }
  EXPECT_THAT(sizes, ElementsAre(32, 32, 32, 4, 1, 1));
  EXPECT_THAT(samples, ElementsAre(false, false, false, true, true, true));
  EXPECT_EQ(s.View(7).num_generated, 3);
  EXPECT_EQ(s.View(7).num_computed, 102);
  EXPECT_EQ(alloc.BlocksHeld(7), (102 + 3) / 4);
  s.Remove(7);
  EXPECT_EQ(alloc.free_blocks(), 64);
  EXPECT_EQ(alloc.num_open(), 0);
}

TEST(SchedulerTest, DecodesFirstThenPrefillFromLeftoverBudget) {
  FakeKvAllocator alloc(Pool(256));
  Scheduler s({8, 10, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 3, false).ok());
  ASSERT_TRUE(s.Add(2, 3, false).ok());
  FakeStep(s, s.Schedule());  // both prefilled (6 tokens), both sampled
  ASSERT_TRUE(s.Add(3, 50, false).ok());
  StepPlan plan = s.Schedule();
  ASSERT_EQ(plan.chunks.size(), 3u);
  EXPECT_EQ(plan.chunks[0].seq, 1);
  EXPECT_EQ(plan.chunks[0].num_tokens, 1);
  EXPECT_EQ(plan.chunks[1].seq, 2);
  EXPECT_EQ(plan.chunks[1].num_tokens, 1);
  EXPECT_EQ(plan.chunks[2].seq, 3);
  EXPECT_EQ(plan.chunks[2].num_tokens, 8);  // 10 - 2 decodes
  EXPECT_FALSE(plan.chunks[2].samples);
  EXPECT_EQ(plan.num_tokens, 10);
  EXPECT_EQ(plan.num_prefill_tokens, 8);
  EXPECT_THAT(plan.admitted, ElementsAre(3));
}

TEST(SchedulerTest, FcfsHeadThatDoesNotFitBlocksLaterArrivals) {
  FakeKvAllocator alloc(Pool(8, 4));  // 32 positions
  Scheduler s({8, 64, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 20, false).ok());
  FakeStep(s, s.Schedule());              // holds 5 blocks + grows to 6 next
  ASSERT_TRUE(s.Add(2, 16, false).ok());  // needs 4 blocks: does not fit in 3
  ASSERT_TRUE(s.Add(3, 2, false).ok());   // would fit, but arrived later
  StepPlan plan = s.Schedule();
  EXPECT_TRUE(plan.admitted.empty());
  EXPECT_THAT(s.waiting(), ElementsAre(2, 3));
  ASSERT_EQ(plan.chunks.size(), 1u);
  EXPECT_EQ(plan.chunks[0].seq, 1);
}

TEST(SchedulerTest, MaxNumSeqsBoundsRunning) {
  FakeKvAllocator alloc(Pool(256));
  Scheduler s({2, 64, 64}, &alloc);
  for (int64_t i = 0; i < 5; ++i) ASSERT_TRUE(s.Add(i, 3, false).ok());
  StepPlan plan = s.Schedule();
  EXPECT_THAT(plan.admitted, ElementsAre(0, 1));
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.num_waiting(), 3);
}

TEST(SchedulerTest, ChaiFirstChunkHoldsFiveTokens) {
  FakeKvAllocator alloc(Pool(256));
  Scheduler s({8, 8, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 5, false).ok());  // plain, 5 tokens
  ASSERT_TRUE(s.Add(2, 9, true, 5).ok());
  StepPlan plan = s.Schedule();  // 8 - 5 = 3 left: not enough for seq 2's 5
  EXPECT_THAT(plan.admitted, ElementsAre(1));
  FakeStep(s, plan);
  plan = s.Schedule();  // 1 decode, 7 left
  EXPECT_THAT(plan.admitted, ElementsAre(2));
  const ScheduledChunk* c = FindChunk(plan, 2);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->num_tokens, 7);

  // A short CHAI prompt needs only its own length.
  FakeKvAllocator alloc2(Pool(256));
  Scheduler s2({8, 3, 64}, &alloc2);
  ASSERT_TRUE(s2.Add(9, 3, true, 5).ok());
  plan = s2.Schedule();
  EXPECT_THAT(plan.admitted, ElementsAre(9));
}

TEST(SchedulerTest, PreemptsYoungestAndRecomputesPromptPlusGenerated) {
  FakeKvAllocator alloc(Pool(4, 4));  // 16 positions
  Scheduler s({8, 64, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 4, false).ok());
  ASSERT_TRUE(s.Add(2, 4, false).ok());
  StepPlan plan = s.Schedule();
  EXPECT_THAT(plan.admitted, ElementsAre(1, 2));  // 1 block each
  FakeStep(s, plan);
  // Decode until the pool (4 blocks) cannot hold both.
  int64_t preempted = -1;
  for (int step = 0; step < 10 && preempted < 0; ++step) {
    plan = s.Schedule();
    if (!plan.preempted.empty()) preempted = plan.preempted[0];
    FakeStep(s, plan);
  }
  ASSERT_EQ(preempted, 2);  // the younger one
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_FALSE(alloc.IsOpen(2));
  EXPECT_THAT(s.waiting(), ElementsAre(2));
  const Scheduler::SeqView v = s.View(2);
  EXPECT_EQ(v.num_computed, 0);
  EXPECT_GT(v.num_generated, 0);  // kept for the recompute
  // Once 1 finishes, 2 is re-admitted and re-prefills prompt + generated.
  s.Remove(1);
  plan = s.Schedule();
  EXPECT_THAT(plan.admitted, ElementsAre(2));
  const ScheduledChunk* c = FindChunk(plan, 2);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->start, 0);
  EXPECT_EQ(c->num_tokens, v.prompt_len + v.num_generated);
  EXPECT_TRUE(c->samples);
}

TEST(SchedulerTest, PreemptedGoesAheadOfLaterArrivals) {
  FakeKvAllocator alloc(Pool(4, 4));
  Scheduler s({8, 64, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 4, false).ok());
  ASSERT_TRUE(s.Add(2, 4, false).ok());
  FakeStep(s, s.Schedule());
  ASSERT_TRUE(s.Add(3, 4, false).ok());  // waits: admitted only if memory allows
  for (int step = 0; step < 10 && s.num_preemptions() == 0; ++step) FakeStep(s, s.Schedule());
  ASSERT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(s.waiting().front(), 2);
}

TEST(SchedulerTest, SequenceThatNeverFitsFails) {
  FakeKvAllocator alloc(Pool(2, 4));  // 8 positions
  Scheduler s({8, 64, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 20, false).ok());
  StepPlan plan = s.Schedule();
  EXPECT_THAT(plan.failed, ElementsAre(1));
  EXPECT_FALSE(s.Contains(1));
  EXPECT_EQ(alloc.num_open(), 0);

  // Growing past the pool while alone also fails rather than spinning.
  ASSERT_TRUE(s.Add(2, 7, false).ok());
  plan = s.Schedule();
  FakeStep(s, plan);  // 7 positions, 1 token sampled -> 8
  FakeStep(s, s.Schedule());
  plan = s.Schedule();  // needs a 3rd block
  EXPECT_THAT(plan.failed, ElementsAre(2));
  EXPECT_EQ(alloc.free_blocks(), 2);
}

TEST(SchedulerTest, KPagesLimitAdmissionEvenWithFreeBlocks) {
  FakeKvAllocator::Options o = Pool(16, 4);
  o.num_k_pages = 16;  // sized for CHAI (1 page per block); plain needs 3
  FakeKvAllocator alloc(o);
  Scheduler s({8, 256, 256}, &alloc);
  ASSERT_TRUE(s.Add(1, 16, true, 5).ok());  // 4 blocks, 4 pages
  ASSERT_TRUE(s.Add(2, 16, false).ok());    // 4 blocks, 12 pages
  ASSERT_TRUE(s.Add(3, 16, false).ok());    // 4 blocks, 12 pages: no pages left
  StepPlan plan = s.Schedule();
  EXPECT_THAT(plan.admitted, ElementsAre(1, 2));
  EXPECT_EQ(alloc.free_blocks(), 8);
  EXPECT_GT(alloc.page_limited_failures(), 0);
}

TEST(SchedulerTest, RemoveWaitingAndRunningFreesEverything) {
  FakeKvAllocator alloc(Pool(64));
  Scheduler s({1, 64, 64}, &alloc);
  ASSERT_TRUE(s.Add(1, 10, false).ok());
  ASSERT_TRUE(s.Add(2, 10, false).ok());
  FakeStep(s, s.Schedule());
  ASSERT_TRUE(s.IsRunning(1));
  s.Remove(2);  // waiting
  s.Remove(1);  // running
  s.Remove(3);  // unknown: no-op
  EXPECT_EQ(s.num_running(), 0);
  EXPECT_EQ(s.num_waiting(), 0);
  EXPECT_EQ(alloc.free_blocks(), 64);
  EXPECT_EQ(alloc.bad_closes(), 0);
}

// A fake model whose "KV" for position p is a hash of the KV at p - 1 and the
// token at p, and whose sampled token is derived from the last KV: a
// sequence's tokens then depend on every earlier token and position, so a
// scheduler that skipped, repeated or misplaced a chunk, or lost generated
// tokens across a preemption, would produce a different sequence than the
// same request run alone.
struct FakeModelSeq {
  std::vector<int32_t> tokens;  // prompt + generated
  std::vector<uint64_t> kv;     // per computed position
  int32_t prompt_len = 0;
  int32_t max_tokens = 0;
  bool chai = false;
  int64_t arrival = 0;
};

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 32);
}

int32_t NextToken(const std::vector<uint64_t>& kv) { return static_cast<int32_t>(kv.back() % 997); }

// The tokens the fake model generates for a prompt when run alone.
std::vector<int32_t> RunAlone(std::vector<int32_t> tokens, int32_t max_tokens) {
  std::vector<uint64_t> kv;
  const size_t prompt_len = tokens.size();
  while (tokens.size() < prompt_len + max_tokens) {
    while (kv.size() < tokens.size()) {
      kv.push_back(Mix(kv.empty() ? 0 : kv.back(), tokens[kv.size()]));
    }
    tokens.push_back(NextToken(kv));
  }
  return {tokens.begin() + prompt_len, tokens.end()};
}

struct SimConfig {
  uint32_t seed = 1;
  int num_requests = 200;
  int64_t num_blocks = 64;
  int32_t block_size = 4;
  int64_t num_k_pages = 64 * 3;
  SchedulerOptions sched{16, 48, 16};
  double cancel_prob = 0.02;
  int max_prompt = 60;
  int max_gen = 40;
};

struct SimResult {
  int64_t steps = 0;
  int64_t preemptions = 0;
  int64_t finished = 0;
  int64_t cancelled = 0;
  int64_t page_limited = 0;
  std::vector<std::pair<int64_t, int64_t>> trace;  // (step, seq) of every chunk
};

SimResult Simulate(const SimConfig& cfg) {
  std::mt19937 rng(cfg.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  FakeKvAllocator::Options ao;
  ao.num_blocks = cfg.num_blocks;
  ao.block_size = cfg.block_size;
  ao.max_slots = cfg.sched.max_num_seqs;
  ao.num_k_pages = cfg.num_k_pages;
  FakeKvAllocator alloc(ao);
  Scheduler s(cfg.sched, &alloc);
  std::map<int64_t, FakeModelSeq> live;
  SimResult result;
  int submitted = 0;
  int64_t next_id = 1000;
  // Every request fits alone, even a plain one in a CHAI-sized page pool.
  const int64_t max_total = std::min(cfg.num_blocks, cfg.num_k_pages / 3) * cfg.block_size;

  while (submitted < cfg.num_requests || !live.empty()) {
    ++result.steps;
    if (result.steps > 200000) {
      ADD_FAILURE() << "no progress";
      break;
    }
    // Random arrivals.
    for (int k = uniform(0, 3); k > 0 && submitted < cfg.num_requests; --k, ++submitted) {
      FakeModelSeq q;
      q.prompt_len = uniform(1, cfg.max_prompt);
      q.max_tokens = uniform(1, cfg.max_gen);
      if (q.prompt_len + q.max_tokens > max_total) q.max_tokens = 1, q.prompt_len = 8;
      q.chai = uniform(0, 1) == 1;
      for (int i = 0; i < q.prompt_len; ++i) q.tokens.push_back(uniform(0, 996));
      q.arrival = next_id;
      const int64_t id = next_id++;
      EXPECT_TRUE(s.Add(id, q.prompt_len, q.chai, q.chai ? 5 : 1).ok());
      live.emplace(id, std::move(q));
    }
    // Random cancellations.
    if (!live.empty() && std::uniform_real_distribution<double>(0, 1)(rng) < cfg.cancel_prob) {
      auto it = live.begin();
      std::advance(it, uniform(0, static_cast<int>(live.size()) - 1));
      s.Remove(it->first);
      EXPECT_FALSE(alloc.IsOpen(it->first));
      live.erase(it);
      ++result.cancelled;
    }

    const std::vector<int64_t> waiting_before(s.waiting().begin(), s.waiting().end());
    StepPlan plan = s.Schedule();
    EXPECT_TRUE(plan.failed.empty()) << "every request fits alone";

    // Budgets.
    int32_t sum = 0;
    for (const ScheduledChunk& c : plan.chunks) sum += c.num_tokens;
    EXPECT_EQ(sum, plan.num_tokens);
    EXPECT_LE(plan.num_tokens, cfg.sched.max_batch_tokens);
    EXPECT_LE(s.num_running(), cfg.sched.max_num_seqs);
    // Blocks conserved; exactly the running sequences hold memory.
    EXPECT_EQ(alloc.free_blocks() + alloc.SumBlocksHeld(), cfg.num_blocks);
    EXPECT_EQ(alloc.free_pages() + alloc.SumPagesHeld(), cfg.num_k_pages);
    EXPECT_EQ(alloc.num_open(), s.num_running());
    for (int64_t r : s.running()) EXPECT_TRUE(alloc.IsOpen(r));
    // FCFS: queues ordered by arrival; admissions are the head of the queue.
    EXPECT_TRUE(std::is_sorted(s.running().begin(), s.running().end()));
    EXPECT_TRUE(std::is_sorted(s.waiting().begin(), s.waiting().end()));
    for (size_t i = 0; i < plan.admitted.size(); ++i) {
      if (i >= waiting_before.size()) {
        ADD_FAILURE() << "admitted a sequence that was not waiting";
        break;
      }
      EXPECT_EQ(plan.admitted[i], waiting_before[i]);
    }
    if (!plan.preempted.empty()) {
      EXPECT_TRUE(plan.admitted.empty());
    }
    // Chunks: one per sequence, decodes before prefills, contiguous, within
    // the chunk limit, CHAI's first chunk >= 5 tokens, memory reserved.
    std::vector<int64_t> seen;
    bool prefill_seen = false;
    for (const ScheduledChunk& c : plan.chunks) {
      EXPECT_EQ(std::count(seen.begin(), seen.end(), c.seq), 0);
      seen.push_back(c.seq);
      FakeModelSeq& q = live.at(c.seq);
      const int64_t total = static_cast<int64_t>(q.tokens.size());
      EXPECT_EQ(c.start, static_cast<int64_t>(q.kv.size()));
      EXPECT_LE(c.start + c.num_tokens, total);
      EXPECT_EQ(c.samples, c.start + c.num_tokens == total);
      const bool decode = c.start > 0 && total - c.start == 1;
      if (decode) {
        EXPECT_FALSE(prefill_seen) << "decode after a prefill";
      }
      prefill_seen |= !decode;
      EXPECT_LE(c.num_tokens, std::max(cfg.sched.prefill_chunk, 5));
      if (q.chai && c.start == 0) {
        EXPECT_GE(c.num_tokens, std::min<int64_t>(5, total));
      }
      EXPECT_GE(alloc.BlocksHeld(c.seq) * cfg.block_size, c.start + c.num_tokens);
      result.trace.emplace_back(result.steps, c.seq);
    }
    for (int64_t p : plan.preempted) {
      live.at(p).kv.clear();  // recompute from scratch
      EXPECT_FALSE(alloc.IsOpen(p));
    }

    // The fake model step.
    s.Commit(plan);
    for (const ScheduledChunk& c : plan.chunks) {
      FakeModelSeq& q = live.at(c.seq);
      for (int32_t i = 0; i < c.num_tokens; ++i) {
        q.kv.push_back(Mix(q.kv.empty() ? 0 : q.kv.back(), q.tokens[q.kv.size()]));
      }
      EXPECT_EQ(s.View(c.seq).num_computed, static_cast<int64_t>(q.kv.size()));
      if (!c.samples) continue;
      q.tokens.push_back(NextToken(q.kv));
      s.AppendToken(c.seq);
      const int32_t generated = static_cast<int32_t>(q.tokens.size()) - q.prompt_len;
      if (generated == q.max_tokens) {
        const std::vector<int32_t> alone =
            RunAlone({q.tokens.begin(), q.tokens.begin() + q.prompt_len}, q.max_tokens);
        EXPECT_EQ(std::vector<int32_t>(q.tokens.begin() + q.prompt_len, q.tokens.end()), alone)
            << "sequence " << c.seq;
        s.Remove(c.seq);
        live.erase(c.seq);
        ++result.finished;
      }
    }
  }
  EXPECT_EQ(alloc.free_blocks(), cfg.num_blocks) << "leaked blocks";
  EXPECT_EQ(alloc.free_pages(), cfg.num_k_pages) << "leaked pages";
  EXPECT_EQ(alloc.num_open(), 0);
  EXPECT_EQ(alloc.bad_closes(), 0);
  EXPECT_EQ(s.num_running() + s.num_waiting(), 0);
  EXPECT_EQ(result.finished + result.cancelled, cfg.num_requests);
  result.preemptions = s.num_preemptions();
  result.page_limited = alloc.page_limited_failures();
  return result;
}

TEST(SchedulerSimulationTest, RoomyPoolNeverPreempts) {
  SimConfig cfg;
  cfg.num_blocks = 4096;
  cfg.num_k_pages = 4096 * 3;
  SimResult r = Simulate(cfg);
  EXPECT_EQ(r.preemptions, 0);
  EXPECT_GT(r.finished, 150);
}

TEST(SchedulerSimulationTest, TinyPoolPreemptsAndStillFinishesEverything) {
  for (uint32_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(seed);
    SimConfig cfg;
    cfg.seed = seed;
    SimResult r = Simulate(cfg);
    EXPECT_GT(r.preemptions, 10);
    EXPECT_GT(r.finished, 150);
    EXPECT_GT(r.cancelled, 0);
  }
}

TEST(SchedulerSimulationTest, ChaiSizedPagePoolLimitsPlainSequences) {
  SimConfig cfg;
  cfg.num_blocks = 192;
  cfg.num_k_pages = 192;  // sized for CHAI sequences: a plain one takes 3x
  cfg.seed = 9;
  SimResult r = Simulate(cfg);
  EXPECT_GT(r.page_limited, 0);
  EXPECT_GT(r.preemptions, 0);
}

TEST(SchedulerSimulationTest, DeterministicForASeed) {
  SimConfig cfg;
  cfg.seed = 5;
  SimResult a = Simulate(cfg);
  SimResult b = Simulate(cfg);
  EXPECT_EQ(a.trace, b.trace);
  EXPECT_EQ(a.preemptions, b.preemptions);
  cfg.seed = 6;
  SimResult c = Simulate(cfg);
  EXPECT_NE(a.trace, c.trace);
}

}  // namespace
}  // namespace chai::engine
