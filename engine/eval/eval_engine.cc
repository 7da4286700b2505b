#include "engine/eval/eval_engine.h"

#include "absl/strings/str_cat.h"

namespace chai::engine::eval {

absl::Status EvalEngineOptions::Validate(const LlamaConfig& config) const {
  if (max_batch_tokens <= 0) return absl::InvalidArgumentError("max_batch_tokens must be > 0");
  // A CHAI sequence's first step must hold its 5 clustering positions.
  if (chai.enabled() && max_batch_tokens < 5) {
    return absl::InvalidArgumentError("max_batch_tokens must be >= 5 with CHAI");
  }
  if (max_seqs <= 0) return absl::InvalidArgumentError("max_seqs must be > 0");
  if (kv_positions <= 0) return absl::InvalidArgumentError("kv_positions must be > 0");
  if (max_seq_len <= 0 || max_seq_len > config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_seq_len must be in 1..", config.context_length, " (the context)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EvalEngine>> EvalEngine::Create(const ModelWeights* weights,
                                                               kernels::Backend* backend,
                                                               const EvalEngineOptions& options) {
  if (absl::Status s = options.Validate(weights->config); !s.ok()) return s;
  auto e = std::unique_ptr<EvalEngine>(new EvalEngine());
  e->options_ = options;
  e->vocab_ = weights->config.vocab_size;
  absl::StatusOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::Create(weights, backend, options.max_batch_tokens);
  if (!runner.ok()) return runner.status();
  e->runner_ = *std::move(runner);

  KvCacheOptions kv;
  kv.block_size = 16;
  kv.max_seqs = options.max_seqs;
  kv.max_seq_len = options.max_seq_len;
  kv.num_blocks = (options.kv_positions + kv.block_size - 1) / kv.block_size;
  absl::StatusOr<std::unique_ptr<KvCache>> plain = KvCache::Create(backend, weights->config, kv);
  if (!plain.ok()) return plain.status();
  e->plain_cache_ = *std::move(plain);
  if (options.chai.enabled()) {
    kv.chai = options.chai;
    absl::StatusOr<std::unique_ptr<KvCache>> chai = KvCache::Create(backend, weights->config, kv);
    if (!chai.ok()) return chai.status();
    e->chai_cache_ = *std::move(chai);
    if (options.share_plain_layers) {
      const LlamaConfig& c = weights->config;
      int32_t first = 0;
      while (first < c.n_layers && options.chai.clusters[first] == c.n_heads &&
             options.chai.k_heads[first] == c.n_kv_heads) {
        ++first;
      }
      // A plan that changes no layer keeps first == n_layers: run both fully.
      e->first_chai_layer_ = first < c.n_layers ? first : 0;
    }
  }
  const size_t logit_floats = static_cast<size_t>(options.max_batch_tokens) * e->vocab_;
  e->plain_logits_.resize(logit_floats);
  if (e->chai_cache_ != nullptr) e->chai_logits_.resize(logit_floats);
  return e;
}

absl::StatusOr<SeqSlots> EvalEngine::AddSequence(int64_t n_positions, bool chai) {
  SeqSlots seq;
  absl::StatusOr<int32_t> p = plain_cache_->AddSequence(false);
  if (!p.ok()) return p.status();
  seq.plain = *p;
  if (absl::Status s = plain_cache_->Reserve(seq.plain, n_positions); !s.ok()) {
    plain_cache_->RemoveSequence(seq.plain);
    return s;
  }
  if (chai_cache_ == nullptr) return seq;
  absl::StatusOr<int32_t> c = chai_cache_->AddSequence(chai);
  if (!c.ok()) {
    plain_cache_->RemoveSequence(seq.plain);
    return c.status();
  }
  seq.chai = *c;
  // K is paged per head in a CHAI cache: only Reserve knows whether it fits.
  if (absl::Status s = chai_cache_->Reserve(seq.chai, n_positions); !s.ok()) {
    RemoveSequence(seq);
    return s;
  }
  return seq;
}

void EvalEngine::RemoveSequence(const SeqSlots& seq) {
  if (seq.plain >= 0) plain_cache_->RemoveSequence(seq.plain);
  if (seq.chai >= 0 && chai_cache_ != nullptr) chai_cache_->RemoveSequence(seq.chai);
}

absl::Status EvalEngine::Step(const StepBatch& batch) {
  const size_t n = batch.tokens.size();
  if (batch.positions.size() != n || batch.seqs.size() != n) {
    return absl::InvalidArgumentError("step batch spans differ in length");
  }
  if (batch.logit_rows.size() > static_cast<size_t>(options_.max_batch_tokens)) {
    return absl::InvalidArgumentError("more logit rows than max_batch_tokens");
  }
  slots_.resize(n);
  for (size_t i = 0; i < n; ++i) slots_[i] = batch.seqs[i].plain;
  const bool share = chai_cache_ != nullptr && first_chai_layer_ > 0;
  ResidualShare save{first_chai_layer_, &residual_, {}};
  if (absl::Status s = runner_->Forward({batch.tokens, slots_, batch.positions, batch.logit_rows},
                                        *plain_cache_, plain_logits_, share ? &save : nullptr);
      !s.ok()) {
    return s;
  }
  if (chai_cache_ == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < n; ++i) slots_[i] = batch.seqs[i].chai;
  ResidualShare resume{first_chai_layer_, nullptr, residual_};
  if (absl::Status s = runner_->Forward({batch.tokens, slots_, batch.positions, batch.logit_rows},
                                        *chai_cache_, chai_logits_, share ? &resume : nullptr);
      !s.ok()) {
    return s;
  }
  clustering_s_ += runner_->last_forward_stats().clustering_s;
  sequences_clustered_ += runner_->last_forward_stats().sequences_clustered;
  return absl::OkStatus();
}

std::span<const float> EvalEngine::plain_logits(int32_t i) const {
  return std::span<const float>(plain_logits_).subspan(static_cast<size_t>(i) * vocab_, vocab_);
}

std::span<const float> EvalEngine::chai_logits(int32_t i) const {
  return std::span<const float>(chai_logits_).subspan(static_cast<size_t>(i) * vocab_, vocab_);
}

}  // namespace chai::engine::eval
