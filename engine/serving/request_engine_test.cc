// RequestEngine with the real default model (SmolLM2-135M, CPU backend):
// batching determinism, preemption, cancellation, deadlines, admission
// errors, stop strings and UTF-8 streaming.
#include "engine/serving/request_engine.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/kv_cache.h"
#include "engine/text_stream.h"
#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

// Collects one request's updates; thread-safe (the sink runs on the engine
// thread, the test waits on its own).
class Collector {
 public:
  UpdateSink Sink() {
    return [this](GenerationUpdate u) {
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_FALSE(done_) << "update after the final one";
      if (!u.finished) {
        EXPECT_FALSE(u.token_ids.empty()) << "a non-final update carries no token";
      }
      if (on_update_) on_update_(u);
      done_ = u.finished;
      updates_.push_back(std::move(u));
      cv_.notify_all();
    };
  }
  // Runs on the engine thread with each update, before it is stored.
  void OnUpdate(std::function<void(const GenerationUpdate&)> f) { on_update_ = std::move(f); }

  // Waits for the final update; fails the test after 120 s instead of hanging.
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const bool ok = cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_; });
    EXPECT_TRUE(ok) << "request did not finish";
    return ok;
  }
  // Waits until at least n tokens arrived (or the request finished).
  void WaitTokens(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_ || CountTokens() >= n; });
  }

  std::vector<int32_t> Tokens() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int32_t> out;
    for (const GenerationUpdate& u : updates_)
      out.insert(out.end(), u.token_ids.begin(), u.token_ids.end());
    return out;
  }
  std::string Text() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const GenerationUpdate& u : updates_) out += u.text;
    return out;
  }
  GenerationUpdate Final() const {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_.empty() ? GenerationUpdate{} : updates_.back();
  }
  std::vector<GenerationUpdate> Updates() const {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_;
  }
  size_t NumUpdates() const {
    std::lock_guard<std::mutex> lock(mu_);
    return updates_.size();
  }

 private:
  size_t CountTokens() const {
    size_t n = 0;
    for (const GenerationUpdate& u : updates_) n += u.token_ids.size();
    return n;
  }
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<GenerationUpdate> updates_;
  std::function<void(const GenerationUpdate&)> on_update_;
  bool done_ = false;
};

// Records observer calls (engine thread) for assertions.
class RecordingObserver : public EngineObserver {
 public:
  void OnStep(const StepStats& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++steps;
    max_running = std::max(max_running, s.running);
    preempted += s.preempted;
    max_tokens_in_step = std::max(max_tokens_in_step, s.num_tokens);
    if (s.k_bytes_saved > 0) saw_k_saving = true;
  }
  void OnInterTokenLatency(double seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++inter_token;
    EXPECT_GE(seconds, 0);
  }
  void OnRequestFinished(const RequestStats& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++finished[s.finish_reason];
    completion_tokens += s.completion_tokens;
  }
  void OnRequestRejected(absl::StatusCode code) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++rejected[code];
  }
  void OnClustering(double seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++clusterings;
  }
  void OnClusterConfig(const std::vector<int32_t>& c) override {
    std::lock_guard<std::mutex> lock(mu_);
    cluster_config = c;
  }

  std::mutex mu_;
  int64_t steps = 0, inter_token = 0, completion_tokens = 0, clusterings = 0;
  int32_t max_running = 0, preempted = 0, max_tokens_in_step = 0;
  bool saw_k_saving = false;
  std::map<FinishReason, int> finished;
  std::map<absl::StatusCode, int> rejected;
  std::vector<int32_t> cluster_config;
};

class RequestEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<LoadedModel> m = LoadModel(testing::DefaultModelPath());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = new LoadedModel(*std::move(m));
    backend_ = kernels::CreateCpuBackend({.threads = 2}).release();
    ASSERT_NE(backend_, nullptr);
  }
  static void TearDownTestSuite() {
    delete backend_;
    delete model_;
  }

  static RequestEngineOptions SmallOptions() {
    RequestEngineOptions o;
    o.max_num_seqs = 64;
    o.max_batch_tokens = 256;
    o.max_queue = 256;
    o.max_model_len = 512;
    o.kv_cache_bytes = int64_t{256} << 20;
    o.prefill_chunk = 64;
    return o;
  }

  static std::unique_ptr<RequestEngine> MakeEngine(const RequestEngineOptions& o,
                                                   EngineObserver* observer = nullptr) {
    absl::StatusOr<std::unique_ptr<RequestEngine>> e =
        RequestEngine::Create(model_, backend_, o, observer);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : nullptr;
  }

  static std::vector<int32_t> Encode(const std::string& text) {
    return model_->tokenizer->Encode(text, /*add_special=*/true, /*parse_special=*/false);
  }

  static GenerationRequest Greedy(const std::string& id, const std::string& prompt,
                                  int32_t max_tokens) {
    GenerationRequest r;
    r.id = id;
    r.prompt = Encode(prompt);
    r.sampling.temperature = 0;
    r.stop.max_tokens = max_tokens;
    return r;
  }

  // Submits and waits; returns the collector.
  static std::unique_ptr<Collector> Run(RequestEngine& e, GenerationRequest r) {
    auto c = std::make_unique<Collector>();
    absl::Status s = e.Submit(std::move(r), c->Sink());
    EXPECT_TRUE(s.ok()) << s;
    if (s.ok()) c->Wait();
    return c;
  }

  static const std::vector<std::string>& Prompts() {
    static const auto* p = new std::vector<std::string>{
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village,",
        "List three colors:",
        "1, 2, 3, 4,",
        "The quick brown fox",
        "Water boils at",
        "Dear Sir or Madam, I am writing to",
    };
    return *p;
  }

  static LoadedModel* model_;
  static kernels::Backend* backend_;
};

LoadedModel* RequestEngineTest::model_ = nullptr;
kernels::Backend* RequestEngineTest::backend_ = nullptr;

TEST_F(RequestEngineTest, SixtyFourConcurrentGreedyRequestsMatchEachAlone) {
  const int kMaxTokens = 12;
  std::unique_ptr<RequestEngine> engine = MakeEngine(SmallOptions());
  ASSERT_NE(engine, nullptr);
  // Each prompt alone, one request in the engine at a time.
  std::vector<std::vector<int32_t>> alone_tokens;
  std::vector<std::string> alone_text;
  for (size_t i = 0; i < Prompts().size(); ++i) {
    auto c = Run(*engine, Greedy(absl::StrCat("alone", i), Prompts()[i], kMaxTokens));
    alone_tokens.push_back(c->Tokens());
    alone_text.push_back(c->Text());
    ASSERT_FALSE(alone_tokens.back().empty());
  }

  RecordingObserver obs;
  engine = MakeEngine(SmallOptions(), &obs);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<Collector>> cs;
  for (int i = 0; i < 64; ++i) {
    cs.push_back(std::make_unique<Collector>());
    const size_t p = i % Prompts().size();
    ASSERT_TRUE(
        engine->Submit(Greedy(absl::StrCat("req", i), Prompts()[p], kMaxTokens), cs.back()->Sink())
            .ok());
  }
  for (int i = 0; i < 64; ++i) {
    ASSERT_TRUE(cs[i]->Wait());
    const size_t p = i % Prompts().size();
    EXPECT_EQ(cs[i]->Tokens(), alone_tokens[p]) << "request " << i;
    EXPECT_EQ(cs[i]->Text(), alone_text[p]) << "request " << i;
    const GenerationUpdate f = cs[i]->Final();
    EXPECT_TRUE(f.error.ok());
    EXPECT_EQ(f.completion_tokens, static_cast<int32_t>(alone_tokens[p].size()));
    EXPECT_EQ(f.prompt_tokens, static_cast<int32_t>(Encode(Prompts()[p]).size()));
    EXPECT_GE(f.total_s, f.ttft_s);
    EXPECT_GE(f.ttft_s, f.queue_s);
  }
  const EngineSnapshot snap = engine->Snapshot();
  EXPECT_EQ(snap.kv_blocks_used, 0) << "blocks leaked";
  EXPECT_EQ(snap.running + snap.waiting + snap.in_flight, 0);
  engine.reset();  // joins: the observer is quiescent
  EXPECT_GT(obs.max_running, 32) << "requests did not actually share steps";
  EXPECT_LE(obs.max_tokens_in_step, 256);
  int finished = 0;
  for (const auto& [reason, n] : obs.finished) finished += n;
  EXPECT_EQ(finished, 64);
  EXPECT_EQ(obs.inter_token, obs.completion_tokens - 64);
}

TEST_F(RequestEngineTest, PreemptionWithASmallCacheKeepsTokensIdentical) {
  const int kMaxTokens = 28;
  RequestEngineOptions roomy = SmallOptions();
  std::unique_ptr<RequestEngine> engine = MakeEngine(roomy);
  ASSERT_NE(engine, nullptr);
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < 4; ++i) {
    GenerationRequest r = Greedy(absl::StrCat("a", i), Prompts()[i], kMaxTokens);
    r.stop.ignore_eos = true;
    alone.push_back(Run(*engine, std::move(r))->Tokens());
    ASSERT_EQ(alone.back().size(), static_cast<size_t>(kMaxTokens));
  }

  // Room for 128 positions in all: eight requests of ~35 positions each
  // cannot all stay resident, so the youngest are preempted and recomputed.
  RequestEngineOptions tight = roomy;
  tight.max_model_len = 128;
  tight.block_size = 16;
  const LlamaConfig& config = model_->weights->config;
  tight.kv_cache_bytes = 128 * (KvCache::KBytesPerToken(config, {}, backend_->KvDtype()) +
                                KvCache::VBytesPerToken(config, backend_->KvDtype()));
  tight.prefill_chunk = 16;
  RecordingObserver obs;
  engine = MakeEngine(tight, &obs);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<Collector>> cs;
  for (int rep = 0; rep < 2; ++rep) {
    for (size_t i = 0; i < 4; ++i) {
      GenerationRequest r = Greedy(absl::StrCat("t", rep, "_", i), Prompts()[i], kMaxTokens);
      r.stop.ignore_eos = true;
      cs.push_back(std::make_unique<Collector>());
      ASSERT_TRUE(engine->Submit(std::move(r), cs.back()->Sink()).ok());
    }
  }
  for (size_t k = 0; k < cs.size(); ++k) {
    ASSERT_TRUE(cs[k]->Wait());
    EXPECT_EQ(cs[k]->Tokens(), alone[k % 4]) << "request " << k;
    EXPECT_EQ(cs[k]->Final().finish_reason, FinishReason::kLength);
  }
  const EngineSnapshot snap = engine->Snapshot();
  EXPECT_EQ(snap.kv_blocks_used, 0);
  EXPECT_GT(snap.num_preemptions, 0) << "the cache was not small enough to preempt";
  engine.reset();
  EXPECT_EQ(obs.preempted, snap.num_preemptions);
}

TEST_F(RequestEngineTest, CancelFreesBlocksWithinOneStep) {
  RequestEngineOptions o = SmallOptions();
  o.prefill_chunk = 16;  // a long prompt then takes many steps to prefill
  std::unique_ptr<RequestEngine> engine = MakeEngine(o);
  ASSERT_NE(engine, nullptr);

  // Mid-stream.
  {
    GenerationRequest r = Greedy("mid", "Tell me a long story about a dragon.", 400);
    r.stop.ignore_eos = true;
    Collector c;
    EngineSnapshot at_final;
    c.OnUpdate([&](const GenerationUpdate& u) {
      if (u.finished) at_final = engine->Snapshot();
    });
    ASSERT_TRUE(engine->Submit(std::move(r), c.Sink()).ok());
    c.WaitTokens(3);
    const int64_t steps_at_cancel = engine->Snapshot().steps;
    EXPECT_GT(engine->Snapshot().kv_blocks_used, 0);
    engine->Cancel("mid");
    ASSERT_TRUE(c.Wait());
    const GenerationUpdate f = c.Final();
    EXPECT_EQ(f.finish_reason, FinishReason::kCancelled);
    EXPECT_GE(f.completion_tokens, 3);
    EXPECT_LT(f.completion_tokens, 400);
    // The final update is delivered after the blocks were freed, at most one
    // step after the one in flight when Cancel was called.
    EXPECT_EQ(at_final.kv_blocks_used, 0);
    EXPECT_LE(at_final.steps, steps_at_cancel + 2);
  }

  // During prefill: a 400-token prompt in 16-token chunks.
  {
    GenerationRequest r;
    r.id = "prefill";
    for (int i = 0; i < 400; ++i) r.prompt.push_back(1000 + (i * 37) % 5000);
    r.stop.max_tokens = 8;
    r.sampling.temperature = 0;
    Collector c;
    EngineSnapshot at_final;
    c.OnUpdate([&](const GenerationUpdate& u) {
      if (u.finished) at_final = engine->Snapshot();
    });
    ASSERT_TRUE(engine->Submit(std::move(r), c.Sink()).ok());
    while (engine->Snapshot().kv_blocks_used == 0) absl::SleepFor(absl::Milliseconds(1));
    const int64_t steps_at_cancel = engine->Snapshot().steps;
    engine->Cancel("prefill");
    ASSERT_TRUE(c.Wait());
    EXPECT_EQ(c.Final().finish_reason, FinishReason::kCancelled);
    EXPECT_EQ(c.Final().completion_tokens, 0) << "cancelled after the prefill ended";
    EXPECT_EQ(c.NumUpdates(), 1u);
    EXPECT_EQ(at_final.kv_blocks_used, 0);
    EXPECT_LE(at_final.steps, steps_at_cancel + 2);
  }
  // Cancelling an unknown or finished id is harmless.
  engine->Cancel("mid");
  engine->Cancel("nonexistent");
  auto c = Run(*engine, Greedy("after", "Hello", 3));
  EXPECT_EQ(c->Final().completion_tokens, static_cast<int32_t>(c->Tokens().size()));
}

TEST_F(RequestEngineTest, DeadlineExpiryEndsWithDeadlineExceeded) {
  std::unique_ptr<RequestEngine> engine = MakeEngine(SmallOptions());
  ASSERT_NE(engine, nullptr);
  GenerationRequest r = Greedy("slow", "Count to one thousand:", 400);
  r.stop.ignore_eos = true;
  r.deadline = absl::Now() + absl::Milliseconds(300);
  auto c = Run(*engine, std::move(r));
  GenerationUpdate f = c->Final();
  EXPECT_EQ(f.finish_reason, FinishReason::kError);
  EXPECT_EQ(f.error.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(f.completion_tokens, 400);
  EXPECT_EQ(engine->Snapshot().kv_blocks_used, 0);

  GenerationRequest late = Greedy("late", "Hello", 5);
  late.deadline = absl::Now() - absl::Seconds(1);
  c = Run(*engine, std::move(late));
  f = c->Final();
  EXPECT_EQ(f.error.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(f.completion_tokens, 0);
}

TEST_F(RequestEngineTest, QueueFullIsResourceExhaustedAndOthersCarryOn) {
  RequestEngineOptions o = SmallOptions();
  o.max_num_seqs = 1;
  o.max_batch_tokens = 64;
  o.max_queue = 2;
  RecordingObserver obs;
  std::unique_ptr<RequestEngine> engine = MakeEngine(o, &obs);
  ASSERT_NE(engine, nullptr);
  GenerationRequest long_one = Greedy("long", "Write an essay:", 400);
  long_one.stop.ignore_eos = true;
  Collector a, b, c;
  ASSERT_TRUE(engine->Submit(std::move(long_one), a.Sink()).ok());
  a.WaitTokens(1);  // running: it left the queue
  ASSERT_TRUE(engine->Submit(Greedy("b", "Hello", 3), b.Sink()).ok());
  ASSERT_TRUE(engine->Submit(Greedy("c", "Hi", 3), c.Sink()).ok());
  Collector d;
  absl::Status s = engine->Submit(Greedy("d", "Hey", 3), d.Sink());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_EQ(engine->Snapshot().waiting + engine->Snapshot().inbound, 2);
  engine->Cancel("long");
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(b.Wait());
  ASSERT_TRUE(c.Wait());
  EXPECT_EQ(a.Final().finish_reason, FinishReason::kCancelled);
  EXPECT_TRUE(b.Final().error.ok());
  EXPECT_GE(b.Final().completion_tokens, 1);
  EXPECT_EQ(d.NumUpdates(), 0u);
  // The queue has room again.
  auto e = Run(*engine, Greedy("d", "Hey", 2));
  EXPECT_TRUE(e->Final().error.ok());
  engine.reset();
  EXPECT_EQ(obs.rejected[absl::StatusCode::kResourceExhausted], 1);
}

TEST_F(RequestEngineTest, BadRequestsGetTheirCodesWhileOthersCarryOn) {
  RecordingObserver obs;
  std::unique_ptr<RequestEngine> engine = MakeEngine(SmallOptions(), &obs);
  ASSERT_NE(engine, nullptr);
  const std::string prompt = "The capital of France is";
  std::vector<int32_t> expected = Run(*engine, Greedy("ref", prompt, 10))->Tokens();

  Collector good;
  ASSERT_TRUE(engine->Submit(Greedy("good", prompt, 10), good.Sink()).ok());
  const int32_t vocab = model_->weights->config.vocab_size;
  struct Case {
    std::string name;
    std::function<void(GenerationRequest&)> mutate;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"nan temperature", [](GenerationRequest& r) { r.sampling.temperature = std::nanf(""); },
       absl::StatusCode::kInvalidArgument},
      {"negative temperature", [](GenerationRequest& r) { r.sampling.temperature = -0.5f; },
       absl::StatusCode::kInvalidArgument},
      {"top_p 0", [](GenerationRequest& r) { r.sampling.top_p = 0.0f; },
       absl::StatusCode::kInvalidArgument},
      {"top_p > 1", [](GenerationRequest& r) { r.sampling.top_p = 1.5f; },
       absl::StatusCode::kInvalidArgument},
      {"token id = vocab", [&](GenerationRequest& r) { r.prompt.push_back(vocab); },
       absl::StatusCode::kInvalidArgument},
      {"negative token id", [](GenerationRequest& r) { r.prompt[0] = -1; },
       absl::StatusCode::kInvalidArgument},
      {"empty prompt", [](GenerationRequest& r) { r.prompt.clear(); },
       absl::StatusCode::kInvalidArgument},
      {"prompt + max_tokens over the context",
       [](GenerationRequest& r) {
         r.stop.max_tokens = 512 - static_cast<int32_t>(r.prompt.size()) + 1;
       },
       absl::StatusCode::kInvalidArgument},
      {"max_tokens 0", [](GenerationRequest& r) { r.stop.max_tokens = 0; },
       absl::StatusCode::kInvalidArgument},
      {"empty stop string", [](GenerationRequest& r) { r.stop.stop = {""}; },
       absl::StatusCode::kInvalidArgument},
      {"stop token outside vocab",
       [&](GenerationRequest& r) { r.stop.stop_token_ids = {vocab + 5}; },
       absl::StatusCode::kInvalidArgument},
      {"too many top logprobs", [](GenerationRequest& r) { r.top_logprobs = 21; },
       absl::StatusCode::kInvalidArgument},
      {"empty id", [](GenerationRequest& r) { r.id.clear(); }, absl::StatusCode::kInvalidArgument},
      {"duplicate id", [](GenerationRequest& r) { r.id = "good"; },
       absl::StatusCode::kAlreadyExists},
  };
  std::vector<std::unique_ptr<Collector>> sinks;
  for (const Case& c : cases) {
    GenerationRequest r = Greedy(absl::StrCat("bad ", c.name), prompt, 10);
    c.mutate(r);
    sinks.push_back(std::make_unique<Collector>());
    absl::Status s = engine->Submit(std::move(r), sinks.back()->Sink());
    EXPECT_EQ(s.code(), c.code) << c.name << ": " << s;
    EXPECT_FALSE(s.message().empty()) << c.name;
  }
  // A prompt of exactly max_model_len - max_tokens is fine.
  GenerationRequest edge =
      Greedy("edge", prompt, 512 - static_cast<int32_t>(Encode(prompt).size()));
  edge.stop.max_tokens = 512 - static_cast<int32_t>(edge.prompt.size());
  Collector edge_sink;
  EXPECT_TRUE(engine->Submit(std::move(edge), edge_sink.Sink()).ok());
  engine->Cancel("edge");

  ASSERT_TRUE(good.Wait());
  EXPECT_EQ(good.Tokens(), expected);
  EXPECT_TRUE(good.Final().error.ok());
  ASSERT_TRUE(edge_sink.Wait());

  engine->StopAccepting();
  Collector late;
  EXPECT_EQ(engine->Submit(Greedy("late", prompt, 3), late.Sink()).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE(engine->Snapshot().accepting);
  engine.reset();
  for (const auto& s : sinks) EXPECT_EQ(s->NumUpdates(), 0u) << "a rejected request's sink ran";
  EXPECT_EQ(late.NumUpdates(), 0u);
  EXPECT_EQ(obs.rejected[absl::StatusCode::kInvalidArgument], static_cast<int>(cases.size()) - 1);
  EXPECT_EQ(obs.rejected[absl::StatusCode::kAlreadyExists], 1);
  EXPECT_EQ(obs.rejected[absl::StatusCode::kUnavailable], 1);
}

TEST_F(RequestEngineTest, StopStringsCutExactlyAcrossTokens) {
  std::unique_ptr<RequestEngine> engine = MakeEngine(SmallOptions());
  ASSERT_NE(engine, nullptr);
  const std::string prompt = "Once upon a time, in a small village,";
  auto ref = Run(*engine, Greedy("ref", prompt, 40));
  const std::vector<GenerationUpdate> updates = ref->Updates();
  const std::string full = ref->Text();
  // A stop string spanning two tokens: the last two bytes of one token's text
  // and the first two of the next (printable ASCII, so whole characters).
  std::string stop;
  auto ascii = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char ch) { return ch >= 0x20 && ch < 0x7F; });
  };
  for (size_t i = 3; i + 1 < updates.size() && stop.empty(); ++i) {
    const std::string& a = updates[i].text;
    const std::string& b = updates[i + 1].text;
    if (a.size() >= 2 && b.size() >= 2 && ascii(a.substr(a.size() - 2)) && ascii(b.substr(0, 2))) {
      stop = a.substr(a.size() - 2) + b.substr(0, 2);
    }
  }
  ASSERT_FALSE(stop.empty()) << "no two adjacent ASCII tokens in: " << full;
  const size_t cut = full.find(stop);
  ASSERT_NE(cut, std::string::npos);

  GenerationRequest r = Greedy("stopped", prompt, 40);
  r.stop.stop = {"this string never appears \xE2\x9C\x93", stop};
  auto c = Run(*engine, std::move(r));
  EXPECT_EQ(c->Text(), full.substr(0, cut)) << "stop string " << stop;
  EXPECT_EQ(c->Final().finish_reason, FinishReason::kStop);
  // Generation ended at the token completing the stop string.
  EXPECT_LT(c->Tokens().size(), ref->Tokens().size());
  const std::vector<int32_t> ref_tokens = ref->Tokens();
  const std::vector<int32_t> got = c->Tokens();
  EXPECT_TRUE(std::equal(got.begin(), got.end(), ref_tokens.begin()));

  // A stop token id ends generation with kStop and contributes no text.
  GenerationRequest t = Greedy("stop_token", prompt, 40);
  t.stop.stop_token_ids = {ref_tokens[5]};
  auto ct = Run(*engine, std::move(t));
  const size_t first =
      std::find(ref_tokens.begin(), ref_tokens.end(), ref_tokens[5]) - ref_tokens.begin();
  EXPECT_EQ(ct->Tokens().size(), first + 1);
  EXPECT_EQ(ct->Final().finish_reason, FinishReason::kStop);
}

TEST_F(RequestEngineTest, MultibyteCharactersArriveWhole) {
  std::unique_ptr<RequestEngine> engine = MakeEngine(SmallOptions());
  ASSERT_NE(engine, nullptr);
  // Greedy continuations of these prompts contain characters that the
  // byte-level tokenizer splits over several tokens.
  const std::vector<std::string> prompts = {
      "Chinese: 你好，世界！我们今天",
      "Emoji story: 🐶🐱🐭🐹🐰🦊🐻",
      "日本語の文章：東京は",
  };
  int held_back = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r = Greedy(absl::StrCat("mb", i), prompts[i], 24);
    r.top_logprobs = 2;
    auto c = Run(*engine, std::move(r));
    std::string bytes;
    for (const GenerationUpdate& u : c->Updates()) {
      EXPECT_EQ(SanitizeUtf8(u.text), u.text) << "update text is not valid UTF-8";
      EXPECT_EQ(u.logprobs.size(), u.token_ids.size());
      for (const UpdateLogprob& lp : u.logprobs) {
        EXPECT_LE(lp.logprob, 0.0f);
        EXPECT_EQ(lp.top.size(), 2u);
      }
      for (int32_t id : u.token_ids) {
        if (model_->tokenizer->IsControl(id)) continue;
        const std::string_view tb = model_->tokenizer->TokenBytes(id);
        bytes.append(tb.data(), tb.size());
        // A token whose bytes leave a character incomplete yields no text yet.
        if (!u.finished && u.text.empty() && !tb.empty()) ++held_back;
      }
    }
    // Whole stream = the exact bytes of the tokens (sanitised only if the
    // model ended mid-character).
    EXPECT_EQ(c->Text(), SanitizeUtf8(bytes));
  }
  EXPECT_GT(held_back, 0) << "no character was split across tokens: the test proved nothing";
}

TEST_F(RequestEngineTest, ShutdownFinishesEverythingInFlight) {
  RequestEngineOptions o = SmallOptions();
  o.max_num_seqs = 2;
  std::unique_ptr<RequestEngine> engine = MakeEngine(o);
  ASSERT_NE(engine, nullptr);
  std::vector<std::unique_ptr<Collector>> cs;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest r = Greedy(absl::StrCat("s", i), "Tell me everything.", 300);
    r.stop.ignore_eos = true;
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(engine->Submit(std::move(r), cs.back()->Sink()).ok());
  }
  cs[0]->WaitTokens(1);
  engine->Shutdown();
  for (auto& c : cs) {
    ASSERT_TRUE(c->Wait());
    EXPECT_EQ(c->Final().finish_reason, FinishReason::kError);
    EXPECT_EQ(c->Final().error.code(), absl::StatusCode::kUnavailable);
  }
  Collector late;
  EXPECT_EQ(engine->Submit(Greedy("late", "x", 2), late.Sink()).code(),
            absl::StatusCode::kUnavailable);
  engine->Shutdown();  // idempotent
}

TEST_F(RequestEngineTest, ChaiRequestsMatchAloneAndSaveKeyMemory) {
  const LlamaConfig& config = model_->weights->config;
  RequestEngineOptions o = SmallOptions();
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const bool late = l >= config.n_layers / 2;
    o.chai.clusters.push_back(late ? 3 : static_cast<int32_t>(config.n_heads));
    o.chai.k_heads.push_back(late ? 1 : static_cast<int32_t>(config.n_kv_heads));
  }
  RecordingObserver obs;
  std::unique_ptr<RequestEngine> engine = MakeEngine(o, &obs);
  ASSERT_NE(engine, nullptr);
  // Prompts of at least 5 tokens (shorter ones run plain attention).
  std::vector<std::string> prompts;
  for (const std::string& p : Prompts()) {
    if (Encode(p).size() >= 5 && prompts.size() < 4) prompts.push_back(p);
  }
  ASSERT_EQ(prompts.size(), 4u);
  std::vector<std::vector<int32_t>> alone;
  for (size_t i = 0; i < 4; ++i) {
    auto c = Run(*engine, Greedy(absl::StrCat("alone", i), prompts[i], 10));
    EXPECT_TRUE(c->Final().chai);
    alone.push_back(c->Tokens());
  }
  // A 4-token prompt runs plain even when it asks for CHAI.
  auto short_one = Run(*engine, Greedy("short", "Hi", 3));
  EXPECT_FALSE(short_one->Final().chai);
  std::vector<std::unique_ptr<Collector>> cs;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r = Greedy(absl::StrCat("c", i), prompts[i % 4], 10);
    r.chai = i % 5 != 4;  // a few plain requests mixed in
    cs.push_back(std::make_unique<Collector>());
    ASSERT_TRUE(engine->Submit(std::move(r), cs.back()->Sink()).ok());
  }
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(cs[i]->Wait());
    EXPECT_EQ(cs[i]->Final().chai, i % 5 != 4);
    if (i % 5 != 4) {
      EXPECT_EQ(cs[i]->Tokens(), alone[i % 4]) << "request " << i;
    }
  }
  engine.reset();
  EXPECT_EQ(obs.cluster_config, o.chai.clusters);
  EXPECT_GE(obs.clusterings, 4 + 12);
  EXPECT_TRUE(obs.saw_k_saving);
}

}  // namespace
}  // namespace chai::engine
