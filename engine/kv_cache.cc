#include "engine/kv_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::Status KvCacheOptions::Validate(const LlamaConfig& config) const {
  if (block_size <= 0 || block_size > 1024) {
    return absl::InvalidArgumentError("KV cache block_size must be in 1..1024");
  }
  if (num_blocks <= 0 || num_blocks > (int64_t{1} << 31) - 1) {
    return absl::InvalidArgumentError("KV cache needs at least one block");
  }
  if (max_seqs <= 0) return absl::InvalidArgumentError("KV cache max_seqs must be positive");
  if (max_seq_len <= 0) return absl::InvalidArgumentError("KV cache max_seq_len must be positive");
  if (!k_heads.empty()) {
    if (static_cast<int64_t>(k_heads.size()) != config.n_layers) {
      return absl::InvalidArgumentError("KV cache k_heads must have one entry per layer");
    }
    for (int32_t k : k_heads) {
      if (k <= 0 || k > config.n_kv_heads) {
        return absl::InvalidArgumentError(
            absl::StrCat("KV cache k_heads entries must be in 1..", config.n_kv_heads));
      }
    }
  }
  return absl::OkStatus();
}

int64_t KvCache::KBytesPerToken(const LlamaConfig& c, const std::vector<int32_t>& k_heads) {
  int64_t heads = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) heads += k_heads.empty() ? c.n_kv_heads : k_heads[l];
  return heads * c.head_dim * static_cast<int64_t>(sizeof(float));
}

int64_t KvCache::VBytesPerToken(const LlamaConfig& c) {
  return c.n_layers * c.n_kv_heads * c.head_dim * static_cast<int64_t>(sizeof(float));
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(kernels::Backend* backend,
                                                         const LlamaConfig& config,
                                                         const KvCacheOptions& options) {
  if (absl::Status s = options.Validate(config); !s.ok()) return s;
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  cache->options_ = options;
  cache->max_blocks_per_seq_ =
      static_cast<int32_t>((options.max_seq_len + options.block_size - 1) / options.block_size);
  const int64_t pos_total = options.num_blocks * options.block_size;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    kernels::KvLayer kv;
    kv.n_k_heads =
        options.k_heads.empty() ? static_cast<int32_t>(config.n_kv_heads) : options.k_heads[l];
    kv.n_v_heads = static_cast<int32_t>(config.n_kv_heads);
    kv.head_dim = static_cast<int32_t>(config.head_dim);
    kv.block_size = options.block_size;
    kv.num_blocks = static_cast<int32_t>(options.num_blocks);
    const int64_t k_bytes = pos_total * kv.n_k_heads * kv.head_dim * sizeof(float);
    const int64_t v_bytes = pos_total * kv.n_v_heads * kv.head_dim * sizeof(float);
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> k = backend->Allocate(k_bytes);
    if (!k.ok()) return k.status();
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> v = backend->Allocate(v_bytes);
    if (!v.ok()) return v.status();
    kv.k = static_cast<float*>((*k)->data());
    kv.v = static_cast<float*>((*v)->data());
    cache->buffers_.push_back(*std::move(k));
    cache->buffers_.push_back(*std::move(v));
    cache->layers_.push_back(kv);
    cache->k_pool_bytes_ += k_bytes;
    cache->v_pool_bytes_ += v_bytes;
  }
  cache->k_bytes_per_token_ = KBytesPerToken(config, options.k_heads);
  cache->v_bytes_per_token_ = VBytesPerToken(config);
  // Hand out low block ids first (a stack popped from the back).
  cache->free_.resize(options.num_blocks);
  for (int64_t i = 0; i < options.num_blocks; ++i) {
    cache->free_[i] = static_cast<int32_t>(options.num_blocks - 1 - i);
  }
  cache->tables_.assign(static_cast<size_t>(options.max_seqs) * cache->max_blocks_per_seq_, 0);
  cache->n_blocks_.assign(options.max_seqs, 0);
  cache->in_use_.assign(options.max_seqs, false);
  return cache;
}

absl::StatusOr<int32_t> KvCache::AddSequence() {
  for (int32_t s = 0; s < options_.max_seqs; ++s) {
    if (!in_use_[s]) {
      in_use_[s] = true;
      n_blocks_[s] = 0;
      return s;
    }
  }
  return absl::ResourceExhaustedError("no free sequence slot in the KV cache");
}

void KvCache::RemoveSequence(int32_t slot) {
  int32_t* table = &tables_[static_cast<size_t>(slot) * max_blocks_per_seq_];
  // Return blocks in reverse so the next sequence reuses them in order.
  for (int32_t b = n_blocks_[slot] - 1; b >= 0; --b) free_.push_back(table[b]);
  std::fill(table, table + max_blocks_per_seq_, 0);
  n_blocks_[slot] = 0;
  in_use_[slot] = false;
}

int64_t KvCache::capacity(int32_t slot) const {
  return static_cast<int64_t>(n_blocks_[slot]) * options_.block_size;
}

int64_t KvCache::BlocksNeeded(int32_t slot, int64_t n_positions) const {
  const int64_t want = (n_positions + options_.block_size - 1) / options_.block_size;
  return std::max<int64_t>(0, want - n_blocks_[slot]);
}

absl::Status KvCache::Reserve(int32_t slot, int64_t n_positions) {
  if (n_positions > options_.max_seq_len) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", n_positions, " positions exceeds the maximum of ", options_.max_seq_len));
  }
  const int64_t need = BlocksNeeded(slot, n_positions);
  if (need > free_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache needs ", need, " more blocks, ", free_blocks(), " free"));
  }
  int32_t* table = &tables_[static_cast<size_t>(slot) * max_blocks_per_seq_];
  for (int64_t i = 0; i < need; ++i) {
    table[n_blocks_[slot]++] = free_.back();
    free_.pop_back();
  }
  return absl::OkStatus();
}

}  // namespace chai::engine
