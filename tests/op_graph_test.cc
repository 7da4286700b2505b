// ModelRunner's recorded plain steps (Backend::BeginCapture/EndCapture, the
// CUDA backend's graphs), checked on the CPU through a backend that records
// ops as closures: which calls record and replay, that replays give the same
// bits as issuing the ops, and that stale or failed recordings fall back.
// The CUDA graphs themselves are checked in tests/gpu/cuda_forward_test.cc.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/kv_cache.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"
#include "tests/testing/golden.h"

namespace chai::engine {
namespace {

using kernels::Backend;
using kernels::KvLayer;
using kernels::RopeParams;
using kernels::TokenPlacement;
using kernels::WeightView;

class ClosureGraph final : public kernels::OpGraph {
 public:
  ClosureGraph(std::vector<std::function<void()>> ops, const int* moves)
      : ops_(std::move(ops)), moves_(moves), at_(*moves) {}
  absl::Status Replay() override {
    if (*moves_ != at_) return absl::FailedPreconditionError("stale");
    for (auto& op : ops_) op();
    ++replays;
    return absl::OkStatus();
  }
  int replays = 0;

 private:
  std::vector<std::function<void()>> ops_;
  const int* moves_;
  int at_;
};

// Forwards to the CPU backend; while capturing, ops are stored (arguments by
// value, as a CUDA graph stores kernel parameters) instead of run.
class RecordingBackend final : public Backend {
 public:
  RecordingBackend() : cpu_(kernels::CreateCpuBackend({.threads = 1})) {}
  std::string_view name() const override { return "recording-cpu"; }

  bool CanCapture() const override { return true; }
  absl::Status BeginCapture() override {
    if (fail_begin) return absl::InternalError("begin refused");
    capturing_ = true;
    ops_.clear();
    misuse_ = absl::OkStatus();
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<kernels::OpGraph>> EndCapture() override {
    capturing_ = false;
    ++captures;
    if (fail_end) return absl::InternalError("end refused");
    if (!misuse_.ok()) return misuse_;
    return std::unique_ptr<kernels::OpGraph>(
        std::make_unique<ClosureGraph>(std::move(ops_), &moves));
  }

  absl::StatusOr<std::unique_ptr<kernels::Buffer>> Allocate(size_t bytes) override {
    if (capturing_) Misuse("Allocate");
    return cpu_->Allocate(bytes);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (capturing_) return Misuse("CopyToDevice");
    cpu_->CopyToDevice(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (capturing_) return Misuse("CopyToHost");
    cpu_->CopyToHost(dst, src, bytes);
  }
  void Synchronize() override {
    if (capturing_) return Misuse("Synchronize");
    cpu_->Synchronize();
  }
  absl::StatusOr<kernels::PreparedWeight> PrepareWeight(const WeightView& host,
                                                        kernels::WeightUse use) override {
    return cpu_->PrepareWeight(host, use);
  }
  void Embed(const WeightView& t, const int32_t* ids, int32_t n, float* out) override {
    Op([=, this] { cpu_->Embed(t, ids, n, out); });
  }
  void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
               float* out) override {
    Op([=, this] { cpu_->RmsNorm(x, w, n, dim, eps, out); });
  }
  void MatMul(const WeightView& w, const float* x, int32_t m, float* y) override {
    Op([=, this] { cpu_->MatMul(w, x, m, y); });
  }
  void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
            const RopeParams& rope) override {
    Op([=, this] { cpu_->Rope(x, pos, n, heads, rope); });
  }
  void SwiGlu(const float* g, const float* u, int64_t n, float* out) override {
    Op([=, this] { cpu_->SwiGlu(g, u, n, out); });
  }
  void Add(float* x, const float* y, int64_t n) override {
    Op([=, this] { cpu_->Add(x, y, n); });
  }
  void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                  float* dst) override {
    Op([=, this] { cpu_->GatherRows(src, rows, n, dim, dst); });
  }
  void StoreKv(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) override {
    KvLayer* layer = &kv;  // the cache's own, as a graph bakes in its pointers
    Op([=, this] { cpu_->StoreKv(k, v, place, *layer); });
  }
  void Attention(const float* q, int32_t heads, const TokenPlacement& place, const KvLayer& kv,
                 float* out) override {
    const KvLayer* layer = &kv;
    Op([=, this] { cpu_->Attention(q, heads, place, *layer, out); });
  }

  bool fail_begin = false;
  bool fail_end = false;
  int captures = 0;
  int moves = 0;  // bump to make every recording stale

 private:
  void Op(std::function<void()> f) {
    if (capturing_) {
      ops_.push_back(std::move(f));
    } else {
      f();
    }
  }
  void Misuse(const char* what) {
    if (misuse_.ok()) misuse_ = absl::FailedPreconditionError(absl::StrCat(what, " in capture"));
  }

  std::unique_ptr<Backend> cpu_;
  bool capturing_ = false;
  std::vector<std::function<void()>> ops_;
  absl::Status misuse_;
};

class OpGraphTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<LoadedModel> m =
        LoadModel(chai::testing::SourceDir() + "/tests/golden/tiny_llama/tiny_llama.gguf");
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::make_unique<LoadedModel>(*std::move(m));
    graphed_ = NewRunner(&recording_);
    plain_backend_ = kernels::CreateCpuBackend({.threads = 1});
    plain_ = NewRunner(plain_backend_.get());
  }
  std::unique_ptr<ModelRunner> NewRunner(Backend* be) {
    absl::StatusOr<std::unique_ptr<ModelRunner>> r =
        ModelRunner::Create(model_->weights.get(), be, 64);
    EXPECT_TRUE(r.ok()) << r.status();
    return *std::move(r);
  }
  const LlamaConfig& config() const { return model_->weights->config; }
  std::unique_ptr<KvCache> NewCache(Backend* be, int32_t seqs) {
    KvCacheOptions o;
    o.max_seqs = seqs;
    o.max_seq_len = 64;
    o.num_blocks = seqs * 4;
    absl::StatusOr<std::unique_ptr<KvCache>> c = KvCache::Create(be, config(), o);
    EXPECT_TRUE(c.ok()) << c.status();
    for (int32_t s = 0; s < seqs; ++s) {
      EXPECT_TRUE((*c)->AddSequence(false).ok());
      EXPECT_TRUE((*c)->Reserve(s, 64).ok());
    }
    return *std::move(c);
  }

  // One step of `seqs` sequences at positions pos0.. (prefill when len > 1),
  // logits of each sequence's last token. Tokens depend on the step only.
  std::vector<float> Step(ModelRunner& r, KvCache& cache, int32_t seqs, int32_t pos0, int32_t len) {
    std::vector<int32_t> tokens, slots, positions, rows;
    const int32_t vocab = static_cast<int32_t>(config().vocab_size);
    for (int32_t s = 0; s < seqs; ++s) {
      for (int32_t i = 0; i < len; ++i) {
        tokens.push_back((7 * (pos0 + i) + 3 * s + 1) % vocab);
        slots.push_back(s);
        positions.push_back(pos0 + i);
      }
      rows.push_back((s + 1) * len - 1);
    }
    std::vector<float> logits(static_cast<size_t>(seqs) * vocab);
    const absl::Status st = r.Forward({tokens, slots, positions, rows}, cache, logits);
    EXPECT_TRUE(st.ok()) << st;
    return logits;
  }

  static bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  }

  std::unique_ptr<LoadedModel> model_;
  RecordingBackend recording_;
  std::unique_ptr<Backend> plain_backend_;
  std::unique_ptr<ModelRunner> graphed_, plain_;
};

TEST_F(OpGraphTest, SecondPlainStepRecordsAndLaterStepsReplayTheSameBits) {
  // The plain CPU runner writes its logits straight into the caller's
  // memory; the recording backend's runner copies them out of its own
  // buffer (the graph path): both must give the same bits.
  ASSERT_TRUE(plain_backend_->HostMemory());
  ASSERT_FALSE(recording_.HostMemory());
  auto gc = NewCache(&recording_, 2);
  auto pc = NewCache(plain_backend_.get(), 2);
  ASSERT_TRUE(SameBits(Step(*graphed_, *gc, 2, 0, 5), Step(*plain_, *pc, 2, 0, 5)));
  std::vector<bool> replayed;
  for (int32_t pos = 5; pos < 11; ++pos) {
    const std::vector<float> g = Step(*graphed_, *gc, 2, pos, 1);
    replayed.push_back(graphed_->last_forward_stats().replayed);
    ASSERT_TRUE(SameBits(g, Step(*plain_, *pc, 2, pos, 1))) << "decode position " << pos;
  }
  // The prefill shape (10 tokens, 2 logit rows) was seen once, so it has not
  // been recorded; the decode shape records at its second step.
  EXPECT_EQ(replayed, (std::vector<bool>{false, true, true, true, true, true}));
  EXPECT_EQ(recording_.captures, 1);
  EXPECT_EQ(graphed_->recorded_graphs(), 1);
}

TEST_F(OpGraphTest, EachCacheGetsItsOwnRecording) {
  // A recording bakes in its cache's buffers: replaying cache A's steps for
  // cache B would write A and read A.
  auto a = NewCache(&recording_, 1), b = NewCache(&recording_, 1);
  auto pa = NewCache(plain_backend_.get(), 1), pb = NewCache(plain_backend_.get(), 1);
  Step(*graphed_, *a, 1, 0, 3);
  Step(*graphed_, *b, 1, 0, 4);
  Step(*plain_, *pa, 1, 0, 3);
  Step(*plain_, *pb, 1, 0, 4);
  for (int32_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(SameBits(Step(*graphed_, *a, 1, 3 + i, 1), Step(*plain_, *pa, 1, 3 + i, 1)));
    ASSERT_TRUE(SameBits(Step(*graphed_, *b, 1, 4 + i, 1), Step(*plain_, *pb, 1, 4 + i, 1)));
  }
  EXPECT_EQ(graphed_->recorded_graphs(), 2);
}

TEST_F(OpGraphTest, StaleRecordingIsDroppedAndRecordedAgain) {
  auto gc = NewCache(&recording_, 1);
  auto pc = NewCache(plain_backend_.get(), 1);
  Step(*graphed_, *gc, 1, 0, 4);
  Step(*plain_, *pc, 1, 0, 4);
  std::vector<bool> replayed;
  for (int32_t pos = 4; pos < 10; ++pos) {
    if (pos == 6) ++recording_.moves;  // the backend's scratch moved
    const std::vector<float> g = Step(*graphed_, *gc, 1, pos, 1);
    replayed.push_back(graphed_->last_forward_stats().replayed);
    ASSERT_TRUE(SameBits(g, Step(*plain_, *pc, 1, pos, 1))) << "position " << pos;
  }
  // 4: first sight; 5: record + replay; 6: stale, issued, forgotten;
  // 7: first sight again; 8: record + replay; 9: replay.
  EXPECT_EQ(replayed, (std::vector<bool>{false, true, false, false, true, true}));
  EXPECT_EQ(recording_.captures, 2);
}

TEST_F(OpGraphTest, FailedRecordingFallsBackToIssuingOps) {
  recording_.fail_end = true;
  auto gc = NewCache(&recording_, 1);
  auto pc = NewCache(plain_backend_.get(), 1);
  Step(*graphed_, *gc, 1, 0, 4);
  Step(*plain_, *pc, 1, 0, 4);
  for (int32_t pos = 4; pos < 8; ++pos) {
    ASSERT_TRUE(SameBits(Step(*graphed_, *gc, 1, pos, 1), Step(*plain_, *pc, 1, pos, 1)));
    EXPECT_FALSE(graphed_->last_forward_stats().replayed);
  }
  EXPECT_EQ(recording_.captures, 1);  // not retried for the same shape
  EXPECT_EQ(graphed_->recorded_graphs(), 0);
}

TEST_F(OpGraphTest, GraphsOffOrHooksMeanNoRecording) {
  auto gc = NewCache(&recording_, 1);
  Step(*graphed_, *gc, 1, 0, 4);
  graphed_->SetUseGraphs(false);
  for (int32_t pos = 4; pos < 7; ++pos) Step(*graphed_, *gc, 1, pos, 1);
  graphed_->SetUseGraphs(true);
  graphed_->SetTimeAttention(true);
  for (int32_t pos = 7; pos < 10; ++pos) Step(*graphed_, *gc, 1, pos, 1);
  EXPECT_EQ(recording_.captures, 0);
  graphed_->SetTimeAttention(false);
  for (int32_t pos = 10; pos < 13; ++pos) Step(*graphed_, *gc, 1, pos, 1);
  EXPECT_EQ(recording_.captures, 1);
}

}  // namespace
}  // namespace chai::engine
