// The model side of `chai eval`: one ModelRunner over a plain-attention KV
// cache and, when a CHAI plan is given, a second KV cache whose sequences run
// CHAI. Every step feeds the same tokens at the same positions to both, so
// their next-token distributions can be compared position by position.
//
// Sequences are handled in pairs (one slot in each cache); callers add one
// per scored sequence, feed it with Step, and remove it.
//
// Ownership: borrows the weights and backend (must outlive the engine); owns
// the runner, caches and logit buffers. Thread-safety: not thread-safe; one
// thread drives it.
#ifndef CHAI_ENGINE_EVAL_EVAL_ENGINE_H_
#define CHAI_ENGINE_EVAL_EVAL_ENGINE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/kv_cache.h"
#include "engine/model/model_weights.h"
#include "engine/model_runner.h"
#include "kernels/backend.h"

namespace chai::engine::eval {

struct EvalEngineOptions {
  int32_t max_batch_tokens = 512;  // tokens per Forward (and logit rows)
  int32_t max_seqs = 64;           // sequence slots per cache
  int64_t kv_positions = 8192;     // positions each cache holds at once
  int64_t max_seq_len = 8192;      // longest sequence; <= the model's context
  ChaiPlan chai;                   // enabled(): also run the CHAI cache
  // The CHAI pass starts from the plain pass's residual stream at the plan's
  // first CHAI layer (ResidualShare): same logits, less work. Off only to
  // test that claim.
  bool share_plain_layers = true;

  absl::Status Validate(const LlamaConfig& config) const;
};

// A sequence's slots: plain cache, and CHAI cache (-1 without CHAI).
struct SeqSlots {
  int32_t plain = -1;
  int32_t chai = -1;
};

// One step's flat batch; spans index the same rows.
struct StepBatch {
  std::span<const int32_t> tokens;
  std::span<const int32_t> positions;
  std::span<const SeqSlots> seqs;
  std::span<const int32_t> logit_rows;
};

class EvalEngine {
 public:
  static absl::StatusOr<std::unique_ptr<EvalEngine>> Create(const ModelWeights* weights,
                                                            kernels::Backend* backend,
                                                            const EvalEngineOptions& options);

  // Claims a slot in each cache and reserves n_positions there. chai: run
  // the sequence with CHAI in the CHAI cache (REQUIRES: its first Step holds
  // positions 0..4; otherwise it runs plain attention there too).
  // RESOURCE_EXHAUSTED (nothing held) when a cache is out of slots or
  // blocks; OUT_OF_RANGE past max_seq_len.
  absl::StatusOr<SeqSlots> AddSequence(int64_t n_positions, bool chai);
  void RemoveSequence(const SeqSlots& seq);

  // Runs the batch through both caches. Afterwards plain_logits(i) (and
  // chai_logits(i)) is logit row i of the batch, [vocab].
  absl::Status Step(const StepBatch& batch);
  std::span<const float> plain_logits(int32_t i) const;
  std::span<const float> chai_logits(int32_t i) const;

  bool has_chai() const { return chai_cache_ != nullptr; }
  // Seconds of CHAI clustering so far, and sequences clustered.
  double clustering_s() const { return clustering_s_; }
  int64_t sequences_clustered() const { return sequences_clustered_; }
  const EvalEngineOptions& options() const { return options_; }
  const LlamaConfig& config() const { return runner_->config(); }

 private:
  EvalEngine() = default;

  EvalEngineOptions options_;
  int64_t vocab_ = 0;
  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<KvCache> plain_cache_, chai_cache_;
  std::vector<float> plain_logits_, chai_logits_;
  std::vector<int32_t> slots_;    // scratch
  int32_t first_chai_layer_ = 0;  // layers below it run plain in both caches
  std::vector<float> residual_;   // [n_tokens, dim] at first_chai_layer_
  double clustering_s_ = 0;
  int64_t sequences_clustered_ = 0;
};

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_EVAL_ENGINE_H_
