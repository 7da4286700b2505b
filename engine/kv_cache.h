// Paged key/value cache: fixed-size blocks of positions, a block table per
// sequence slot, and each slot's CHAI head maps, in backend memory.
//
// Memory (elements of the backend's KvDtype(): fp16 on the CPU by default,
// float32 on CUDA; per layer l):
//   V pool [num_blocks, block_size, n_kv_heads, head_dim]; block b of a
//   sequence is block b in every layer, so one block table serves all layers.
//   K pool [num_k_pages(l), block_size, head_dim]: K is paged per head. A
//   plain sequence takes n_kv_heads K pages per block in every layer; a CHAI
//   sequence (AddSequence(true)) takes only plan.k_heads[l] in layer l, the
//   keys its cluster representatives read (docs/CHAI.md). The K pool of layer
//   l holds num_blocks * width(l) pages, width(l) = plan.k_heads[l] with a
//   CHAI plan and n_kv_heads without: the cache is sized for CHAI sequences,
//   and a plain sequence in a CHAI cache uses more K pages, so fewer fit. The
//   bytes CHAI saves are therefore never allocated.
//
// Head maps (kernels/backend.h, KvLayer): per slot and layer, which query
// head's probabilities each head uses and which K slot holds which KV head's
// keys. A plain slot has the identity map. A CHAI slot gets a provisional
// valid map at AddSequence and its real one from SetHeadMap when the model
// runner clusters it at prefill.
//
// Host mirrors of the tables are uploaded to the backend as they change (a
// slot's rows at a time), so a step uploads nothing when nothing changed.
//
// Thread-safety: not thread-safe; owned and used by the one engine thread.
#ifndef CHAI_ENGINE_KV_CACHE_H_
#define CHAI_ENGINE_KV_CACHE_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/chai/head_map.h"
#include "engine/model/llama_config.h"
#include "kernels/backend.h"

namespace chai::engine {

struct KvCacheOptions {
  int32_t block_size = 16;
  int64_t num_blocks = 0;   // V pool size, blocks of block_size positions
  int32_t max_seqs = 1;     // sequence slots
  int64_t max_seq_len = 0;  // longest sequence (positions) a slot may hold
  // CHAI per layer; empty = plain attention only (AddSequence(true) fails).
  ChaiPlan chai;

  absl::Status Validate(const LlamaConfig& config) const;
};

class KvCache {
 public:
  // Allocates the pools on `backend` (not owned; must outlive the cache).
  static absl::StatusOr<std::unique_ptr<KvCache>> Create(kernels::Backend* backend,
                                                         const LlamaConfig& config,
                                                         const KvCacheOptions& options);

  // Bytes of K (or V) cache one position of one sequence takes, summed over
  // layers, with elements of `kv_dtype` (Backend::KvDtype()); k_heads per
  // layer (empty = n_kv_heads everywhere).
  static int64_t KBytesPerToken(const LlamaConfig& config, const std::vector<int32_t>& k_heads,
                                kernels::DType kv_dtype);
  static int64_t VBytesPerToken(const LlamaConfig& config, kernels::DType kv_dtype);
  // Blocks a pool of `bytes` holds with this plan (K at CHAI widths + V).
  static int64_t BlocksForBytes(const LlamaConfig& config, const ChaiPlan& plan, int32_t block_size,
                                kernels::DType kv_dtype, int64_t bytes);

  // Claims a free sequence slot; RESOURCE_EXHAUSTED when all are taken,
  // FAILED_PRECONDITION for chai=true without a CHAI plan.
  absl::StatusOr<int32_t> AddSequence(bool chai = false);
  // Frees the slot and all its blocks and pages. REQUIRES: slot is in use.
  void RemoveSequence(int32_t slot);
  // Makes room for positions [0, n_positions) of `slot`, taking V blocks and
  // K pages from the pools. RESOURCE_EXHAUSTED (nothing taken) when a pool
  // is short; OUT_OF_RANGE past max_seq_len.
  absl::Status Reserve(int32_t slot, int64_t n_positions);
  // Whether Reserve(slot, n_positions) would succeed.
  bool CanReserve(int32_t slot, int64_t n_positions) const;
  // V blocks needed to grow `slot` to n_positions (0 if it already has room).
  int64_t BlocksNeeded(int32_t slot, int64_t n_positions) const;

  // Installs a slot's head map for one layer (CHAI clustering result).
  // INVALID_ARGUMENT unless the map is consistent (score_head[score_head[h]]
  // == score_head[h]; representatives' k_slot within the slot's width and
  // holding their KV head; k_src uses at most width(slot, layer) slots, any
  // unused ones (-1) at the end).
  absl::Status SetHeadMap(int32_t slot, int64_t layer, const HeadMap& map);
  // The slot's current map in `layer`.
  HeadMap GetHeadMap(int32_t slot, int64_t layer) const;
  bool is_chai(int32_t slot) const { return chai_[slot]; }
  // Whether the runner still has to cluster this CHAI slot.
  bool needs_clustering(int32_t slot) const { return chai_[slot] && !clustered_[slot]; }
  void set_clustered(int32_t slot) { clustered_[slot] = true; }
  // K heads a slot keeps per position in `layer`.
  int32_t width(int32_t slot, int64_t layer) const;

  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  int64_t used_blocks() const { return options_.num_blocks - free_blocks(); }
  int64_t free_k_pages(int64_t layer) const {
    return static_cast<int64_t>(free_pages_[layer].size());
  }
  const KvCacheOptions& options() const { return options_; }
  int32_t max_blocks_per_seq() const { return max_blocks_per_seq_; }
  int64_t capacity(int32_t slot) const;
  bool in_use(int32_t slot) const { return in_use_[slot]; }

  // Block tables in backend memory, [max_seqs, max_blocks_per_seq].
  const int32_t* device_block_tables() const;
  // Host copy of the block tables; unused entries are 0.
  const std::vector<int32_t>& block_tables() const { return tables_; }
  kernels::KvLayer& layer(int64_t l) { return layers_[l]; }
  // Unique per cache made in this process (never reused, unlike an address):
  // what a recorded op graph baked in. The backend buffers behind
  // device_block_tables() and layer() never move during the cache's life.
  uint64_t id() const { return id_; }

  // Bytes allocated for all K (V) pools.
  int64_t k_pool_bytes() const { return k_pool_bytes_; }
  int64_t v_pool_bytes() const { return v_pool_bytes_; }
  // K bytes the slots in use hold now (blocks reserved x their widths), what
  // plain attention would hold for the same blocks, and V bytes in use.
  int64_t k_bytes_in_use() const;
  int64_t k_bytes_full_in_use() const;
  int64_t v_bytes_in_use() const;
  // K bytes one position of `slot` takes across layers.
  int64_t k_bytes_per_token(int32_t slot) const;
  // Element type of the pools (the backend's KvDtype()).
  kernels::DType kv_dtype() const { return kv_dtype_; }

 private:
  KvCache() = default;
  // Copy a slot's rows of the host mirrors to the backend: its K page table
  // (changes on Reserve) or its head maps (change on AddSequence and
  // SetHeadMap).
  void UploadRows(const std::unique_ptr<kernels::Buffer>& dev, const std::vector<int32_t>& host,
                  int32_t slot, size_t row_len);
  void UploadPages(int32_t slot, int64_t layer);
  void UploadMaps(int32_t slot, int64_t layer);
  void UploadTables(int32_t slot);

  const LlamaConfig* config_ = nullptr;
  kernels::Backend* backend_ = nullptr;
  KvCacheOptions options_;
  int32_t n_heads_ = 0, n_kv_ = 0, head_dim_ = 0;
  int32_t max_blocks_per_seq_ = 0;
  uint64_t id_ = 0;
  std::vector<std::unique_ptr<kernels::Buffer>> buffers_;
  std::vector<kernels::KvLayer> layers_;
  std::vector<int32_t> free_;                     // free V block ids (stack)
  std::vector<std::vector<int32_t>> free_pages_;  // per layer: free K page ids
  std::vector<int32_t> tables_;                   // [max_seqs, max_blocks]
  std::unique_ptr<kernels::Buffer> tables_dev_;
  // Per layer host mirrors of KvLayer's tables, and their device buffers.
  struct LayerTables {
    std::vector<int32_t> k_pages, k_src, score_head, k_slot;
    std::unique_ptr<kernels::Buffer> k_pages_dev, k_src_dev, score_head_dev, k_slot_dev;
  };
  std::vector<LayerTables> lt_;
  std::vector<int32_t> n_blocks_;  // per slot
  std::vector<bool> in_use_, chai_, clustered_;
  int64_t k_pool_bytes_ = 0, v_pool_bytes_ = 0;
  kernels::DType kv_dtype_ = kernels::DType::kF32;  // the backend's KvDtype()
  int64_t page_bytes_ = 0;                          // one K page: block_size * head_dim elements
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_KV_CACHE_H_
