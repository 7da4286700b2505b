// Paged key/value cache: fixed-size blocks of positions, a block table per
// sequence slot, one K and one V pool per layer in backend memory.
//
// Memory: every layer has a K pool [num_blocks, block_size, k_heads[l],
// head_dim] and a V pool [num_blocks, block_size, n_kv_heads, head_dim]
// (float32). k_heads[l] may be smaller than n_kv_heads when CHAI drops the keys
// of non-representative heads: those bytes are never allocated.
//
// Blocks are shared across layers: block b of a sequence is block b in every
// layer's pool, so one block table serves all layers.
//
// Thread-safety: not thread-safe; owned and used by the one engine thread.
#ifndef CHAI_ENGINE_KV_CACHE_H_
#define CHAI_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/llama_config.h"
#include "kernels/backend.h"

namespace chai::engine {

struct KvCacheOptions {
  int32_t block_size = 16;
  int64_t num_blocks = 0;   // pool size, blocks of block_size positions
  int32_t max_seqs = 1;     // sequence slots
  int64_t max_seq_len = 0;  // longest sequence (positions) a slot may hold
  // Key heads stored per layer; empty = n_kv_heads everywhere (plain attention).
  std::vector<int32_t> k_heads;

  absl::Status Validate(const LlamaConfig& config) const;
};

class KvCache {
 public:
  // Allocates the pools on `backend` (not owned; must outlive the cache).
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(kernels::Backend* backend,
                                                         const LlamaConfig& config,
                                                         const KvCacheOptions& options);

  // Bytes of K (or V) cache one position of one sequence takes, summed over layers.
  static int64_t KBytesPerToken(const LlamaConfig& config, const std::vector<int32_t>& k_heads);
  static int64_t VBytesPerToken(const LlamaConfig& config);

  // Claims a free sequence slot; RESOURCE_EXHAUSTED when all are taken.
  absl::StatusOr<int32_t> AddSequence();
  // Frees the slot and all its blocks. REQUIRES: slot is in use.
  void RemoveSequence(int32_t slot);
  // Makes room for positions [0, n_positions) of `slot`, taking blocks from
  // the pool. RESOURCE_EXHAUSTED (nothing taken) when the pool is short;
  // OUT_OF_RANGE past max_seq_len.
  absl::Status Reserve(int32_t slot, int64_t n_positions);
  // Blocks needed to grow `slot` to n_positions (0 if it already has room).
  int64_t BlocksNeeded(int32_t slot, int64_t n_positions) const;

  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_blocks() const { return options_.num_blocks - free_blocks(); }
  const KvCacheOptions& options() const { return options_; }
  int32_t max_blocks_per_seq() const { return max_blocks_per_seq_; }
  int64_t capacity(int32_t slot) const;

  // Host copy of the block tables, [max_seqs, max_blocks_per_seq]; unused
  // entries are 0 (never read: attention only visits positions <= pos).
  const std::vector<int32_t>& block_tables() const { return tables_; }
  kernels::KvLayer& layer(int64_t l) { return layers_[l]; }

  // Bytes allocated for all K (V) pools.
  int64_t k_pool_bytes() const { return k_pool_bytes_; }
  int64_t v_pool_bytes() const { return v_pool_bytes_; }
  // Bytes of K (V) a position takes across layers.
  int64_t k_bytes_per_token() const { return k_bytes_per_token_; }
  int64_t v_bytes_per_token() const { return v_bytes_per_token_; }

 private:
  KvCache() = default;

  KvCacheOptions options_;
  int32_t max_blocks_per_seq_ = 0;
  std::vector<std::unique_ptr<kernels::Buffer>> buffers_;
  std::vector<kernels::KvLayer> layers_;
  std::vector<int32_t> free_;      // free block ids (stack)
  std::vector<int32_t> tables_;    // [max_seqs, max_blocks_per_seq]
  std::vector<int32_t> n_blocks_;  // per slot
  std::vector<bool> in_use_;       // per slot
  int64_t k_pool_bytes_ = 0, v_pool_bytes_ = 0;
  int64_t k_bytes_per_token_ = 0, v_bytes_per_token_ = 0;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_KV_CACHE_H_
