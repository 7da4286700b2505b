#include "engine/model_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "engine/chai/clustering.h"
#include "engine/chai/head_map.h"

namespace chai::engine {
namespace {

float* F(const std::unique_ptr<kernels::Buffer>& b) { return static_cast<float*>(b->data()); }
int32_t* I(const std::unique_ptr<kernels::Buffer>& b) { return static_cast<int32_t*>(b->data()); }

}  // namespace

absl::StatusOr<std::unique_ptr<ModelRunner>> ModelRunner::Create(const ModelWeights* weights,
                                                                 kernels::Backend* backend,
                                                                 int32_t max_batch_tokens) {
  if (max_batch_tokens <= 0) return absl::InvalidArgumentError("max_batch_tokens must be > 0");
  auto r = std::unique_ptr<ModelRunner>(new ModelRunner());
  r->weights_ = weights;
  r->backend_ = backend;
  r->max_batch_tokens_ = max_batch_tokens;
  const LlamaConfig& c = weights->config;
  r->inv_freq_ = c.RopeInvFreq();
  r->rope_ = {static_cast<int32_t>(c.head_dim), !c.rope_interleaved, r->inv_freq_.data()};

  auto prepare = [backend](const kernels::WeightView& w, kernels::PreparedWeight* out,
                           kernels::WeightUse use = kernels::WeightUse::kMatMul) -> absl::Status {
    absl::StatusOr<kernels::PreparedWeight> p = backend->PrepareWeight(w, use);
    if (!p.ok()) return p.status();
    *out = *std::move(p);
    return absl::OkStatus();
  };
  auto upload = [backend](const float* host, int64_t n,
                          std::unique_ptr<kernels::Buffer>* out) -> absl::Status {
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> b = backend->Allocate(n * sizeof(float));
    if (!b.ok()) return b.status();
    backend->CopyToDevice((*b)->data(), host, n * sizeof(float));
    *out = *std::move(b);
    return absl::OkStatus();
  };
  auto alloc = [backend](int64_t bytes, std::unique_ptr<kernels::Buffer>* out) -> absl::Status {
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> b = backend->Allocate(bytes);
    if (!b.ok()) return b.status();
    *out = *std::move(b);
    return absl::OkStatus();
  };

  absl::Status s;
  s.Update(prepare(weights->token_embd, &r->token_embd_, kernels::WeightUse::kEmbed));
  s.Update(prepare(weights->output, &r->output_));
  s.Update(upload(weights->output_norm, c.dim, &r->output_norm_));
  r->layers_.resize(c.n_layers);
  for (int64_t l = 0; l < c.n_layers && s.ok(); ++l) {
    const LayerWeights& w = weights->layers[l];
    Layer& d = r->layers_[l];
    s.Update(prepare(w.wq, &d.wq));
    s.Update(prepare(w.wk, &d.wk));
    s.Update(prepare(w.wv, &d.wv));
    s.Update(prepare(w.wo, &d.wo));
    s.Update(prepare(w.w_gate, &d.w_gate));
    s.Update(prepare(w.w_up, &d.w_up));
    s.Update(prepare(w.w_down, &d.w_down));
    s.Update(upload(w.attn_norm, c.dim, &d.attn_norm));
    s.Update(upload(w.ffn_norm, c.dim, &d.ffn_norm));
  }
  const int64_t t = max_batch_tokens;
  const int64_t f = sizeof(float);
  s.Update(alloc(t * c.dim * f, &r->x_));
  s.Update(alloc(t * c.dim * f, &r->h_));
  s.Update(alloc(t * c.n_heads * c.head_dim * f, &r->q_));
  s.Update(alloc(t * c.n_kv_heads * c.head_dim * f, &r->k_));
  s.Update(alloc(t * c.n_kv_heads * c.head_dim * f, &r->v_));
  s.Update(alloc(t * c.n_heads * c.head_dim * f, &r->attn_));
  s.Update(alloc(t * c.ffn_dim * f, &r->gate_));
  s.Update(alloc(t * c.ffn_dim * f, &r->up_));
  s.Update(alloc(t * sizeof(int32_t), &r->tokens_));
  s.Update(alloc(t * sizeof(int32_t), &r->slots_));
  s.Update(alloc(t * sizeof(int32_t), &r->positions_));
  s.Update(alloc(t * sizeof(int32_t), &r->rows_));
  if (!s.ok()) return s;
  return r;
}

absl::Status ModelRunner::ValidateBatch(const BatchInput& b, const KvCache& cache,
                                        std::span<float> logits) const {
  const size_t n = b.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("empty batch");
  if (n > static_cast<size_t>(max_batch_tokens_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch of ", n, " tokens exceeds max_batch_tokens ", max_batch_tokens_));
  }
  if (b.slots.size() != n || b.positions.size() != n) {
    return absl::InvalidArgumentError("batch tokens, slots and positions differ in length");
  }
  const int64_t vocab = weights_->config.vocab_size;
  for (size_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", b.tokens[i], " outside vocab"));
    }
    if (b.slots[i] < 0 || b.slots[i] >= cache.options().max_seqs) {
      return absl::InvalidArgumentError("batch slot out of range");
    }
    if (b.positions[i] < 0 || b.positions[i] >= cache.capacity(b.slots[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("position ", b.positions[i], " not reserved in the KV cache"));
    }
  }
  for (int32_t r : b.logit_rows) {
    if (r < 0 || static_cast<size_t>(r) >= n) {
      return absl::InvalidArgumentError("logit row out of range");
    }
  }
  if (logits.size() < b.logit_rows.size() * static_cast<size_t>(vocab)) {
    return absl::InvalidArgumentError("logits buffer too small");
  }
  return absl::OkStatus();
}

absl::Status ModelRunner::ValidateShare(const BatchInput& batch, const KvCache& cache,
                                        const ResidualShare* share) const {
  if (share == nullptr) return absl::OkStatus();
  const LlamaConfig& c = weights_->config;
  if (share->layer < 0 || share->layer >= c.n_layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("residual share layer ", share->layer, " outside [0, ", c.n_layers, ")"));
  }
  if (share->resume.empty()) return absl::OkStatus();
  if (share->resume.size() != batch.tokens.size() * static_cast<size_t>(c.dim)) {
    return absl::InvalidArgumentError("resumed residual stream is not [n_tokens, dim]");
  }
  const ChaiPlan& plan = cache.options().chai;
  for (int32_t l = 0; plan.enabled() && l < share->layer; ++l) {
    if (plan.clusters[l] != c.n_heads || plan.k_heads[l] != c.n_kv_heads) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot resume at layer ", share->layer, ": layer ", l, " runs CHAI"));
    }
  }
  return absl::OkStatus();
}

void ModelRunner::AttentionNormOps(const Layer& w, int32_t n) {
  const LlamaConfig& c = weights_->config;
  backend_->RmsNorm(F(x_), F(w.attn_norm), n, static_cast<int32_t>(c.dim),
                    static_cast<float>(c.rms_eps), F(h_));
}

void ModelRunner::QkvOps(const Layer& w, int32_t n) {
  const LlamaConfig& c = weights_->config;
  kernels::Backend& be = *backend_;
  const kernels::WeightView qkv[3] = {w.wq.view, w.wk.view, w.wv.view};
  float* const qkv_out[3] = {F(q_), F(k_), F(v_)};
  be.MatMulShared(qkv, F(h_), n, qkv_out);
  be.Rope(F(q_), I(positions_), n, static_cast<int32_t>(c.n_heads), rope_);
  be.Rope(F(k_), I(positions_), n, static_cast<int32_t>(c.n_kv_heads), rope_);
}

void ModelRunner::MlpOps(const Layer& w, int32_t n, const Layer* next) {
  const LlamaConfig& c = weights_->config;
  kernels::Backend& be = *backend_;
  const int32_t dim = static_cast<int32_t>(c.dim);
  float* x = F(x_);
  float* h = F(h_);
  be.MatMul(w.wo.view, F(attn_), n, h);
  be.AddRmsNorm(x, h, F(w.ffn_norm), n, dim, static_cast<float>(c.rms_eps), h);
  const kernels::WeightView gate_up[2] = {w.w_gate.view, w.w_up.view};
  float* const gate_up_out[2] = {F(gate_), F(up_)};
  be.MatMulShared(gate_up, h, n, gate_up_out);
  be.SwiGlu(F(gate_), F(up_), static_cast<int64_t>(n) * c.ffn_dim, F(gate_));
  be.MatMul(w.w_down.view, F(gate_), n, h);
  if (next != nullptr) {
    be.AddRmsNorm(x, h, F(next->attn_norm), n, dim, static_cast<float>(c.rms_eps), h);
  } else {
    be.Add(x, h, static_cast<int64_t>(n) * dim);
  }
}

void ModelRunner::LogitOps(int32_t n_out, float* logits) {
  const LlamaConfig& c = weights_->config;
  kernels::Backend& be = *backend_;
  const int32_t dim = static_cast<int32_t>(c.dim);
  be.GatherRows(F(x_), I(rows_), n_out, dim, F(last_));
  be.RmsNorm(F(last_), F(output_norm_), n_out, dim, static_cast<float>(c.rms_eps), F(h_));
  be.MatMul(output_.view, F(h_), n_out, logits);
}

void ModelRunner::StepOps(int32_t n, int32_t n_out, const kernels::TokenPlacement& place,
                          KvCache& cache) {
  const LlamaConfig& c = weights_->config;
  backend_->Embed(token_embd_.view, I(tokens_), n, F(x_));
  AttentionNormOps(layers_[0], n);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    QkvOps(layers_[l], n);
    backend_->StoreKv(F(k_), F(v_), place, cache.layer(l));
    backend_->Attention(F(q_), static_cast<int32_t>(c.n_heads), place, cache.layer(l), F(attn_));
    MlpOps(layers_[l], n, NextLayer(l));
  }
  LogitOps(n_out, F(logits_));
}

absl::Status ModelRunner::EnsureLogitRows(int32_t n_out) {
  if (logit_capacity_ >= n_out) return absl::OkStatus();
  const LlamaConfig& c = weights_->config;
  absl::StatusOr<std::unique_ptr<kernels::Buffer>> a =
      backend_->Allocate(static_cast<size_t>(n_out) * c.dim * sizeof(float));
  if (!a.ok()) return a.status();
  // A backend on host memory that does not record writes the logits straight
  // to the caller's (Forward), so it needs no logits buffer of its own.
  if (!backend_->HostMemory() || backend_->CanCapture()) {
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> b =
        backend_->Allocate(static_cast<size_t>(n_out) * c.vocab_size * sizeof(float));
    if (!b.ok()) return b.status();
    logits_ = *std::move(b);
  }
  // Recorded steps point at the old buffers.
  graphs_.clear();
  seen_.clear();
  last_ = *std::move(a);
  logit_capacity_ = n_out;
  return absl::OkStatus();
}

absl::StatusOr<bool> ModelRunner::TryReplay(int32_t n, int32_t n_out,
                                            const kernels::TokenPlacement& place, KvCache& cache) {
  const GraphKey key{cache.id(), n, n_out};
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    // The first sight of a shape runs uncaptured, which also grows the
    // backend's scratch to what the shape needs (a capture cannot).
    if (seen_.insert(key).second || uncapturable_.contains(key)) return false;
    if (graphs_.size() >= kMaxGraphs) graphs_.clear();
    if (absl::Status s = backend_->BeginCapture(); !s.ok()) {
      uncapturable_.insert(key);
      return false;
    }
    StepOps(n, n_out, place, cache);
    absl::StatusOr<std::unique_ptr<kernels::OpGraph>> g = backend_->EndCapture();
    if (!g.ok()) {
      // A backend left broken by the attempt reports it through its ops.
      uncapturable_.insert(key);
      return false;
    }
    it = graphs_.emplace(key, *std::move(g)).first;
  }
  const absl::Status s = it->second->Replay();
  if (absl::IsFailedPrecondition(s)) {
    // The backend moved memory the recordings use: record again later.
    graphs_.clear();
    seen_.clear();
    return false;
  }
  if (!s.ok()) return s;
  return true;
}

absl::Status ModelRunner::Forward(const BatchInput& batch, KvCache& cache, std::span<float> logits,
                                  const ResidualShare* share) {
  if (absl::Status s = ValidateBatch(batch, cache, logits); !s.ok()) return s;
  if (absl::Status s = ValidateShare(batch, cache, share); !s.ok()) return s;
  const LlamaConfig& c = weights_->config;
  kernels::Backend& be = *backend_;
  const int32_t n = static_cast<int32_t>(batch.tokens.size());
  const int32_t n_heads = static_cast<int32_t>(c.n_heads);

  absl::StatusOr<std::vector<PendingCluster>> pending = FindPendingClusters(batch, cache);
  if (!pending.ok()) return pending.status();
  stats_ = ForwardStats{};
  const int32_t n_out = static_cast<int32_t>(batch.logit_rows.size());
  if (absl::Status s = EnsureLogitRows(n_out); !s.ok()) return s;

  // Inputs to backend memory; the cache keeps its block tables and head maps
  // there itself.
  be.CopyToDevice(tokens_->data(), batch.tokens.data(), n * sizeof(int32_t));
  be.CopyToDevice(slots_->data(), batch.slots.data(), n * sizeof(int32_t));
  be.CopyToDevice(positions_->data(), batch.positions.data(), n * sizeof(int32_t));
  if (n_out > 0) {
    be.CopyToDevice(rows_->data(), batch.logit_rows.data(), n_out * sizeof(int32_t));
  }
  kernels::TokenPlacement place{n, I(slots_), I(positions_), cache.device_block_tables(),
                                cache.max_blocks_per_seq()};
  auto copy_logits = [&]() {
    be.CopyToHost(logits.data(), logits_->data(),
                  static_cast<size_t>(n_out) * c.vocab_size * sizeof(float));
  };

  // Steps without clustering, hooks or residual sharing are the same ops every
  // time their shape recurs (decode): replay them where the backend records.
  if (use_graphs_ && be.CanCapture() && pending->empty() && share == nullptr && !tap_ &&
      !time_attention_ && n_out > 0 && n <= kMaxGraphTokens) {
    absl::StatusOr<bool> replayed = TryReplay(n, n_out, place, cache);
    if (!replayed.ok()) return replayed.status();
    if (*replayed) {
      stats_.replayed = true;
      copy_logits();
      return absl::OkStatus();
    }
  }

  std::vector<float> tap_q, tap_k;
  const bool resume = share != nullptr && !share->resume.empty();
  const int64_t first_layer = resume ? share->layer : 0;
  if (resume) {
    be.CopyToDevice(F(x_), share->resume.data(), share->resume.size() * sizeof(float));
  } else {
    be.Embed(token_embd_.view, I(tokens_), n, F(x_));
  }
  if (first_layer < c.n_layers) AttentionNormOps(layers_[first_layer], n);
  for (int64_t l = first_layer; l < c.n_layers; ++l) {
    if (share != nullptr && share->save != nullptr && l == share->layer) {
      share->save->resize(static_cast<size_t>(n) * c.dim);
      be.CopyToHost(share->save->data(), F(x_), share->save->size() * sizeof(float));
    }
    QkvOps(layers_[l], n);
    if (tap_) {
      tap_q.resize(static_cast<size_t>(n) * n_heads * c.head_dim);
      tap_k.resize(static_cast<size_t>(n) * c.n_kv_heads * c.head_dim);
      be.CopyToHost(tap_q.data(), q_->data(), tap_q.size() * sizeof(float));
      be.CopyToHost(tap_k.data(), k_->data(), tap_k.size() * sizeof(float));
      tap_(l, tap_q, tap_k);
    }
    if (!pending->empty()) {
      if (absl::Status s = ClusterSequences(l, *pending, cache); !s.ok()) return s;
    }
    be.StoreKv(F(k_), F(v_), place, cache.layer(l));
    std::chrono::steady_clock::time_point attention_start;
    if (time_attention_) {
      be.Synchronize();
      attention_start = std::chrono::steady_clock::now();
    }
    be.Attention(F(q_), n_heads, place, cache.layer(l), F(attn_));
    if (time_attention_) {
      be.Synchronize();
      stats_.attention_s +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - attention_start).count();
    }
    MlpOps(layers_[l], n, NextLayer(l));
  }
  for (const PendingCluster& p : *pending) cache.set_clustered(p.slot);
  stats_.sequences_clustered = static_cast<int32_t>(pending->size());
  if (n_out == 0) {
    be.Synchronize();
    return absl::OkStatus();
  }
  if (be.HostMemory()) {
    LogitOps(n_out, logits.data());  // no copy out
  } else {
    LogitOps(n_out, F(logits_));
    copy_logits();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ModelRunner::PendingCluster>> ModelRunner::FindPendingClusters(
    const BatchInput& batch, const KvCache& cache) const {
  std::vector<PendingCluster> pending;
  for (size_t i = 0; i < batch.tokens.size(); ++i) {
    const int32_t slot = batch.slots[i];
    if (!cache.needs_clustering(slot)) continue;
    auto it = std::find_if(pending.begin(), pending.end(),
                           [slot](const PendingCluster& p) { return p.slot == slot; });
    if (it == pending.end()) {
      pending.push_back({slot, std::vector<int32_t>(kChaiFeatureTokens, -1)});
      it = pending.end() - 1;
    }
    if (batch.positions[i] < kChaiFeatureTokens) {
      it->rows[batch.positions[i]] = static_cast<int32_t>(i);
    }
  }
  for (const PendingCluster& p : pending) {
    for (int32_t r : p.rows) {
      if (r < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "CHAI sequence in slot ", p.slot, " must have its first ", kChaiFeatureTokens,
            " positions in the batch that clusters it (prompts shorter than ", kChaiFeatureTokens,
            " tokens run plain attention)"));
      }
    }
  }
  return pending;
}

absl::Status ModelRunner::ClusterSequences(int64_t layer,
                                           const std::vector<PendingCluster>& pending,
                                           KvCache& cache) {
  const LlamaConfig& c = weights_->config;
  const ChaiPlan& plan = cache.options().chai;
  if (plan.clusters[layer] == c.n_heads && plan.k_heads[layer] == c.n_kv_heads) {
    return absl::OkStatus();  // AddSequence already installed the identity map.
  }
  const auto start = std::chrono::steady_clock::now();
  const int64_t q_row = c.n_heads * c.head_dim;
  const int64_t k_row = c.n_kv_heads * c.head_dim;
  std::vector<float> q(kChaiFeatureTokens * q_row), k(kChaiFeatureTokens * k_row);
  LayerClusterOptions o;
  o.n_heads = static_cast<int32_t>(c.n_heads);
  o.n_kv_heads = static_cast<int32_t>(c.n_kv_heads);
  o.head_dim = static_cast<int32_t>(c.head_dim);
  o.n_tokens = kChaiFeatureTokens;
  o.clusters = plan.clusters[layer];
  o.k_heads = plan.k_heads[layer];
  for (const PendingCluster& p : pending) {
    for (int32_t t = 0; t < kChaiFeatureTokens; ++t) {
      backend_->CopyToHost(q.data() + t * q_row, F(q_) + p.rows[t] * q_row, q_row * sizeof(float));
      backend_->CopyToHost(k.data() + t * k_row, F(k_) + p.rows[t] * k_row, k_row * sizeof(float));
    }
    absl::StatusOr<HeadMap> map = engine::ClusterLayer(q, k, o);
    if (!map.ok()) return map.status();
    if (absl::Status s = cache.SetHeadMap(p.slot, layer, *map); !s.ok()) return s;
  }
  stats_.clustering_s +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return absl::OkStatus();
}

}  // namespace chai::engine
