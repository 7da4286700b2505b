// The LLaMA forward pass over a flat batch of tokens, driven as backend ops.
//
// A batch mixes prefill chunks and decode tokens of many sequences: each token
// carries its KV-cache sequence slot and its position. Every op computes each
// token row independently in a fixed order (kernels/backend.h), so a
// sequence's logits are bit-identical whatever else shares its batch.
//
// Ownership: borrows the weights, backend and cache (all must outlive the
// runner); owns its scratch activations in backend memory.
// Thread-safety: not thread-safe; one engine thread drives it.
#ifndef CHAI_ENGINE_MODEL_RUNNER_H_
#define CHAI_ENGINE_MODEL_RUNNER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/kv_cache.h"
#include "engine/model/model_weights.h"
#include "kernels/backend.h"

namespace chai::engine {

struct BatchInput {
  std::span<const int32_t> tokens;     // [n] token ids
  std::span<const int32_t> slots;      // [n] KV-cache sequence slot per token
  std::span<const int32_t> positions;  // [n] position of each token in its sequence
  // Rows of the batch whose next-token logits are wanted (typically each
  // sequence's last token in the batch), in the order the logits come back.
  std::span<const int32_t> logit_rows;
};

// What one Forward call spent on CHAI's online clustering, and (only with
// SetTimeAttention(true)) on attention.
struct ForwardStats {
  double clustering_s = 0;          // wall time of all clustering in the call
  int32_t sequences_clustered = 0;  // CHAI sequences clustered in the call
  // Wall time of the Attention calls of every layer, the backend synchronized
  // before and after each; 0 unless SetTimeAttention(true).
  double attention_s = 0;
  // The call replayed a recorded op graph instead of issuing its ops.
  bool replayed = false;
};

// Lets a second Forward over the same batch skip the layers it would compute
// identically. `chai eval` runs plain and CHAI attention over the same
// tokens; every layer before the plan's first CHAI layer gives both the same
// bits (each op's result depends only on its token's inputs), so the CHAI
// pass can start from the plain pass's residual stream at that layer.
struct ResidualShare {
  int32_t layer = 0;  // the residual stream at this layer's input
  // Set: Forward copies the stream here, [n_tokens, dim] floats.
  std::vector<float>* save = nullptr;
  // Non-empty: Forward starts from it at `layer`, skipping the embedding and
  // layers < layer, whose K/V it therefore never writes into the cache.
  // REQUIRES: [n_tokens, dim] saved from the same batch; no layer < layer
  // clusters heads in the cache's plan; the cache is only ever run this way.
  std::span<const float> resume;
};

// Receives, per layer, host copies of a batch's rotated queries
// [n_tokens, n_heads, head_dim] and keys [n_tokens, n_kv_heads, head_dim].
using QkTap =
    std::function<void(int64_t layer, std::span<const float> q, std::span<const float> k)>;

class ModelRunner {
 public:
  // max_batch_tokens bounds one Forward call's token count.
  static absl::StatusOr<std::unique_ptr<ModelRunner>> Create(const ModelWeights* weights,
                                                             kernels::Backend* backend,
                                                             int32_t max_batch_tokens);

  // Runs the model on `batch`, writing the K/V of every token into `cache` and
  // logits [logit_rows.size(), vocab] to `logits` (host memory).
  // REQUIRES: cache.Reserve() covered every (slot, position); positions of a
  // slot in this batch extend what is cached (0..pos-1 already stored or
  // earlier in this batch).
  //
  // CHAI (docs/CHAI.md): a CHAI slot of the cache is clustered in the first
  // call that holds its position 0, from its positions 0..4, which must all
  // be in that batch (INVALID_ARGUMENT otherwise; prompts shorter than 5
  // tokens should run as plain sequences). Each CHAI layer's head map is set
  // in the cache before that layer stores keys, so the non-representatives'
  // keys are never stored.
  absl::Status Forward(const BatchInput& batch, KvCache& cache, std::span<float> logits,
                       const ResidualShare* share = nullptr);

  // Calibration hook; pass nullptr to remove. Costs a host copy per layer.
  void SetQkTap(QkTap tap) { tap_ = std::move(tap); }
  const ForwardStats& last_forward_stats() const { return stats_; }
  // Benchmarks: time the attention calls (ForwardStats::attention_s). The
  // extra synchronizations stall an asynchronous backend, so serving leaves
  // it off.
  void SetTimeAttention(bool on) { time_attention_ = on; }
  // Op graphs (on by default; used only where Backend::CanCapture()). A call
  // without CHAI clustering, a QkTap, a ResidualShare or attention timing,
  // with logits and at most kMaxGraphTokens tokens, is a "plain step"; the
  // second plain step of a (cache, tokens, logit rows) shape records its ops
  // and every later one replays them, so a decode step costs one launch
  // instead of ~16 per layer. Replays issue the same ops on the same
  // buffers, so the logits are bit-identical to issuing them.
  void SetUseGraphs(bool on) { use_graphs_ = on; }
  int64_t recorded_graphs() const { return static_cast<int64_t>(graphs_.size()); }
  static constexpr int32_t kMaxGraphTokens = 128;
  static constexpr size_t kMaxGraphs = 64;

  const LlamaConfig& config() const { return weights_->config; }
  int32_t max_batch_tokens() const { return max_batch_tokens_; }

 private:
  ModelRunner() = default;
  absl::Status ValidateBatch(const BatchInput& batch, const KvCache& cache,
                             std::span<float> logits) const;
  absl::Status ValidateShare(const BatchInput& batch, const KvCache& cache,
                             const ResidualShare* share) const;
  // CHAI slots of the batch that need clustering, each with the batch rows
  // of its positions 0..kChaiFeatureTokens-1.
  struct PendingCluster {
    int32_t slot = 0;
    std::vector<int32_t> rows;
  };
  absl::StatusOr<std::vector<PendingCluster>> FindPendingClusters(const BatchInput& batch,
                                                                  const KvCache& cache) const;
  absl::Status ClusterSequences(int64_t layer, const std::vector<PendingCluster>& pending,
                                KvCache& cache);
  struct Layer;
  // The ops of a step, in the one order every path issues them; a layer's
  // are split where Forward's hooks go. The norm before a layer's
  // attention runs with the residual add that ends the layer before it
  // (Backend::AddRmsNorm), so only the first layer run needs
  // AttentionNormOps.
  void AttentionNormOps(const Layer& w, int32_t n);  // x_ -> h_
  void QkvOps(const Layer& w, int32_t n);            // Q/K/V products of h_, RoPE
  // Output product, residual, MLP, residual; then the attention norm of
  // `next` (null after the last layer).
  void MlpOps(const Layer& w, int32_t n, const Layer* next);
  const Layer* NextLayer(int64_t l) const {
    return l + 1 < static_cast<int64_t>(layers_.size()) ? &layers_[l + 1] : nullptr;
  }
  // Gathers the rows, runs the final norm, writes the logits
  // [n_out, vocab] to `logits` (backend memory, or host memory where the
  // backend's HostMemory()).
  void LogitOps(int32_t n_out, float* logits);
  void StepOps(int32_t n, int32_t n_out, const kernels::TokenPlacement& place, KvCache& cache);
  absl::Status EnsureLogitRows(int32_t n_out);
  // Replays (recording first if due) a plain step; false: issue it instead.
  absl::StatusOr<bool> TryReplay(int32_t n, int32_t n_out, const kernels::TokenPlacement& place,
                                 KvCache& cache);

  const ModelWeights* weights_ = nullptr;
  kernels::Backend* backend_ = nullptr;
  int32_t max_batch_tokens_ = 0;
  std::vector<float> inv_freq_;
  kernels::RopeParams rope_;

  // Backend-resident weights (CPU: views of the mapped file).
  struct Layer {
    kernels::PreparedWeight wq, wk, wv, wo, w_gate, w_up, w_down;
    std::unique_ptr<kernels::Buffer> attn_norm, ffn_norm;
  };
  std::vector<Layer> layers_;
  kernels::PreparedWeight token_embd_, output_;
  std::unique_ptr<kernels::Buffer> output_norm_;

  // Scratch, sized for max_batch_tokens.
  std::unique_ptr<kernels::Buffer> x_, h_, q_, k_, v_, attn_, gate_, up_, last_, logits_;
  int32_t logit_capacity_ = 0;  // rows last_/logits_ hold
  std::unique_ptr<kernels::Buffer> tokens_, slots_, positions_, rows_;
  QkTap tap_;
  ForwardStats stats_;
  bool time_attention_ = false;

  // Recorded plain steps by (KvCache::id(), tokens, logit rows).
  using GraphKey = std::tuple<uint64_t, int32_t, int32_t>;
  bool use_graphs_ = true;
  std::map<GraphKey, std::unique_ptr<kernels::OpGraph>> graphs_;
  std::set<GraphKey> seen_;          // ran once uncaptured since the last reset
  std::set<GraphKey> uncapturable_;  // recording failed: always issue
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_RUNNER_H_
