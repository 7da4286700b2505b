#include "engine/kv_cache.h"

#include <algorithm>
#include <atomic>
#include <string>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

int32_t* I(const std::unique_ptr<kernels::Buffer>& b) { return static_cast<int32_t*>(b->data()); }

}  // namespace

absl::Status KvCacheOptions::Validate(const LlamaConfig& config) const {
  if (block_size <= 0 || block_size > 1024) {
    return absl::InvalidArgumentError("KV cache block_size must be in 1..1024");
  }
  if (num_blocks <= 0 || num_blocks > (int64_t{1} << 31) / 64) {
    return absl::InvalidArgumentError("KV cache num_blocks out of range");
  }
  if (max_seqs <= 0 || max_seqs > 65536) {
    return absl::InvalidArgumentError("KV cache max_seqs must be in 1..65536");
  }
  if (max_seq_len <= 0 || max_seq_len > (int64_t{1} << 24)) {
    return absl::InvalidArgumentError("KV cache max_seq_len out of range");
  }
  if (chai.clusters.size() != chai.k_heads.size()) {
    return absl::InvalidArgumentError("CHAI plan: clusters and k_heads differ in length");
  }
  if (chai.enabled()) {
    if (static_cast<int64_t>(chai.clusters.size()) != config.n_layers) {
      return absl::InvalidArgumentError(absl::StrCat("CHAI plan has ", chai.clusters.size(),
                                                     " layers, the model ", config.n_layers));
    }
    for (size_t l = 0; l < chai.clusters.size(); ++l) {
      if (chai.clusters[l] < 1 || chai.clusters[l] > config.n_heads) {
        return absl::InvalidArgumentError(
            absl::StrCat("CHAI plan layer ", l, ": clusters must be in 1..", config.n_heads));
      }
      if (chai.k_heads[l] < 1 || chai.k_heads[l] > config.n_kv_heads) {
        return absl::InvalidArgumentError(
            absl::StrCat("CHAI plan layer ", l, ": k_heads must be in 1..", config.n_kv_heads));
      }
    }
  }
  return absl::OkStatus();
}

int64_t KvCache::KBytesPerToken(const LlamaConfig& c, const std::vector<int32_t>& k_heads,
                                kernels::DType kv_dtype) {
  int64_t heads = 0;
  for (int64_t l = 0; l < c.n_layers; ++l) heads += k_heads.empty() ? c.n_kv_heads : k_heads[l];
  return kernels::RowBytes(kv_dtype, heads * c.head_dim);
}

int64_t KvCache::VBytesPerToken(const LlamaConfig& c, kernels::DType kv_dtype) {
  return kernels::RowBytes(kv_dtype, c.n_layers * c.n_kv_heads * c.head_dim);
}

int64_t KvCache::BlocksForBytes(const LlamaConfig& c, const ChaiPlan& plan, int32_t block_size,
                                kernels::DType kv_dtype, int64_t bytes) {
  const int64_t per_block =
      (KBytesPerToken(c, plan.k_heads, kv_dtype) + VBytesPerToken(c, kv_dtype)) * block_size;
  return per_block > 0 ? bytes / per_block : 0;
}

absl::StatusOr<std::unique_ptr<KvCache>> KvCache::Create(kernels::Backend* backend,
                                                         const LlamaConfig& config,
                                                         const KvCacheOptions& options) {
  if (absl::Status s = options.Validate(config); !s.ok()) return s;
  auto cache = std::unique_ptr<KvCache>(new KvCache());
  KvCache& c = *cache;
  static std::atomic<uint64_t> next_id{1};
  c.id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  c.config_ = &config;
  c.backend_ = backend;
  c.options_ = options;
  c.n_heads_ = static_cast<int32_t>(config.n_heads);
  c.n_kv_ = static_cast<int32_t>(config.n_kv_heads);
  c.head_dim_ = static_cast<int32_t>(config.head_dim);
  c.max_blocks_per_seq_ =
      static_cast<int32_t>((options.max_seq_len + options.block_size - 1) / options.block_size);
  const kernels::DType kv_dtype = backend->KvDtype();
  if (kv_dtype != kernels::DType::kF32 && kv_dtype != kernels::DType::kF16) {
    return absl::InternalError(absl::StrCat("backend ", std::string(backend->name()),
                                            " reports KV element type ", kernels::Name(kv_dtype),
                                            " (F32 or F16 expected)"));
  }
  c.kv_dtype_ = kv_dtype;
  c.page_bytes_ = kernels::RowBytes(kv_dtype, int64_t{options.block_size} * c.head_dim_);
  const int64_t seqs = options.max_seqs;
  auto alloc = [&](int64_t bytes) -> absl::StatusOr<std::unique_ptr<kernels::Buffer>> {
    return backend->Allocate(static_cast<size_t>(std::max<int64_t>(bytes, sizeof(int32_t))));
  };
  // Every layer's K and V pools in one buffer: on the CPU backend a buffer
  // this large sits in huge pages (cpu_backend.cc), and a decode step's
  // scattered page reads across all layers then stay within the TLB's
  // reach. Pools start on 256-byte boundaries (any device's alignment).
  auto width_of = [&](int64_t l) {
    return options.chai.enabled() ? int64_t{options.chai.k_heads[l]} : int64_t{c.n_kv_};
  };
  auto aligned = [](int64_t bytes) { return (bytes + 255) / 256 * 256; };
  int64_t pool_bytes = 0;
  for (int64_t l = 0; l < config.n_layers; ++l) {
    pool_bytes += aligned(options.num_blocks * width_of(l) * c.page_bytes_) +
                  aligned(options.num_blocks * c.n_kv_ * c.page_bytes_);
  }
  absl::StatusOr<std::unique_ptr<kernels::Buffer>> pools = alloc(pool_bytes);
  if (!pools.ok()) return pools.status();
  char* next_pool = static_cast<char*>((*pools)->data());
  c.buffers_.push_back(*std::move(pools));
  for (int64_t l = 0; l < config.n_layers; ++l) {
    const int64_t width = width_of(l);
    kernels::KvLayer kv;
    kv.n_q_heads = c.n_heads_;
    kv.n_kv_heads = c.n_kv_;
    kv.head_dim = c.head_dim_;
    kv.block_size = options.block_size;
    kv.num_blocks = static_cast<int32_t>(options.num_blocks);
    kv.num_k_pages = static_cast<int32_t>(options.num_blocks * width);
    const int64_t k_bytes = kv.num_k_pages * c.page_bytes_;
    const int64_t v_bytes = options.num_blocks * c.n_kv_ * c.page_bytes_;
    kv.k = next_pool;
    next_pool += aligned(k_bytes);
    kv.v = next_pool;
    next_pool += aligned(v_bytes);
    c.k_pool_bytes_ += k_bytes;
    c.v_pool_bytes_ += v_bytes;

    LayerTables t;
    t.k_pages.assign(seqs * c.max_blocks_per_seq_ * c.n_kv_, 0);
    t.k_src.assign(seqs * c.n_kv_, -1);
    t.score_head.assign(seqs * c.n_heads_, 0);
    t.k_slot.assign(seqs * c.n_heads_, 0);
    for (auto [dev, n] :
         {std::pair{&t.k_pages_dev, t.k_pages.size()}, std::pair{&t.k_src_dev, t.k_src.size()},
          std::pair{&t.score_head_dev, t.score_head.size()},
          std::pair{&t.k_slot_dev, t.k_slot.size()}}) {
      absl::StatusOr<std::unique_ptr<kernels::Buffer>> b = alloc(n * sizeof(int32_t));
      if (!b.ok()) return b.status();
      *dev = *std::move(b);
    }
    kv.k_pages = I(t.k_pages_dev);
    kv.k_src = I(t.k_src_dev);
    kv.score_head = I(t.score_head_dev);
    kv.k_slot = I(t.k_slot_dev);
    c.layers_.push_back(kv);
    // Hand out low page ids first (a stack popped from the back).
    std::vector<int32_t> pages(kv.num_k_pages);
    for (int32_t i = 0; i < kv.num_k_pages; ++i) pages[i] = kv.num_k_pages - 1 - i;
    c.free_pages_.push_back(std::move(pages));
    c.lt_.push_back(std::move(t));
  }
  c.free_.resize(options.num_blocks);
  for (int64_t i = 0; i < options.num_blocks; ++i) {
    c.free_[i] = static_cast<int32_t>(options.num_blocks - 1 - i);
  }
  c.tables_.assign(static_cast<size_t>(seqs) * c.max_blocks_per_seq_, 0);
  absl::StatusOr<std::unique_ptr<kernels::Buffer>> td = alloc(c.tables_.size() * sizeof(int32_t));
  if (!td.ok()) return td.status();
  c.tables_dev_ = *std::move(td);
  c.n_blocks_.assign(seqs, 0);
  c.in_use_.assign(seqs, false);
  c.chai_.assign(seqs, false);
  c.clustered_.assign(seqs, false);
  for (int32_t s = 0; s < seqs; ++s) {
    c.UploadTables(s);
    for (int64_t l = 0; l < config.n_layers; ++l) {
      c.UploadPages(s, l);
      c.UploadMaps(s, l);
    }
  }
  return cache;
}

const int32_t* KvCache::device_block_tables() const { return I(tables_dev_); }

int32_t KvCache::width(int32_t slot, int64_t layer) const {
  return chai_[slot] ? options_.chai.k_heads[layer] : n_kv_;
}

void KvCache::UploadTables(int32_t slot) {
  const size_t row = static_cast<size_t>(slot) * max_blocks_per_seq_;
  backend_->CopyToDevice(I(tables_dev_) + row, tables_.data() + row,
                         max_blocks_per_seq_ * sizeof(int32_t));
}

void KvCache::UploadRows(const std::unique_ptr<kernels::Buffer>& dev,
                         const std::vector<int32_t>& host, int32_t slot, size_t row_len) {
  const size_t off = static_cast<size_t>(slot) * row_len;
  backend_->CopyToDevice(I(dev) + off, host.data() + off, row_len * sizeof(int32_t));
}

void KvCache::UploadPages(int32_t slot, int64_t layer) {
  UploadRows(lt_[layer].k_pages_dev, lt_[layer].k_pages, slot,
             static_cast<size_t>(max_blocks_per_seq_) * n_kv_);
}

void KvCache::UploadMaps(int32_t slot, int64_t layer) {
  LayerTables& t = lt_[layer];
  UploadRows(t.k_src_dev, t.k_src, slot, n_kv_);
  UploadRows(t.score_head_dev, t.score_head, slot, n_heads_);
  UploadRows(t.k_slot_dev, t.k_slot, slot, n_heads_);
}

absl::StatusOr<int32_t> KvCache::AddSequence(bool chai) {
  if (chai && !options_.chai.enabled()) {
    return absl::FailedPreconditionError("CHAI sequence in a KV cache without a CHAI plan");
  }
  for (int32_t s = 0; s < options_.max_seqs; ++s) {
    if (in_use_[s]) continue;
    in_use_[s] = true;
    n_blocks_[s] = 0;
    chai_[s] = chai;
    clustered_[s] = false;
    const int32_t group = n_heads_ / n_kv_;
    for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
      // Plain: identity. CHAI before clustering: a valid placeholder whose
      // representatives are the heads of the first width(l) KV groups; the
      // runner replaces it before anything is stored.
      const int32_t w = width(s, l);
      HeadMap m;
      m.k_src.assign(n_kv_, -1);  // placeholder below
      for (int32_t j = 0; j < w; ++j) m.k_src[j] = j;
      m.score_head.resize(n_heads_);
      m.k_slot.resize(n_heads_);
      for (int32_t h = 0; h < n_heads_; ++h) {
        const bool kept = h / group < w;
        m.score_head[h] = kept ? h : 0;
        m.k_slot[h] = kept ? h / group : 0;
      }
      LayerTables& t = lt_[l];
      std::copy(m.k_src.begin(), m.k_src.end(), t.k_src.begin() + int64_t{s} * n_kv_);
      std::copy(m.score_head.begin(), m.score_head.end(),
                t.score_head.begin() + int64_t{s} * n_heads_);
      std::copy(m.k_slot.begin(), m.k_slot.end(), t.k_slot.begin() + int64_t{s} * n_heads_);
      UploadMaps(s, l);
    }
    return s;
  }
  return absl::ResourceExhaustedError("no free sequence slot in the KV cache");
}

void KvCache::RemoveSequence(int32_t slot) {
  int32_t* table = &tables_[static_cast<size_t>(slot) * max_blocks_per_seq_];
  // Return blocks and pages in reverse so the next sequence reuses them in
  // order.
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    const int32_t w = width(slot, l);
    const int32_t* pages = &lt_[l].k_pages[static_cast<size_t>(slot) * max_blocks_per_seq_ * n_kv_];
    for (int32_t b = n_blocks_[slot] - 1; b >= 0; --b) {
      for (int32_t j = w - 1; j >= 0; --j) free_pages_[l].push_back(pages[b * n_kv_ + j]);
    }
  }
  for (int32_t b = n_blocks_[slot] - 1; b >= 0; --b) free_.push_back(table[b]);
  std::fill(table, table + max_blocks_per_seq_, 0);
  n_blocks_[slot] = 0;
  in_use_[slot] = false;
  chai_[slot] = false;
  clustered_[slot] = false;
}

int64_t KvCache::capacity(int32_t slot) const {
  return static_cast<int64_t>(n_blocks_[slot]) * options_.block_size;
}

int64_t KvCache::BlocksNeeded(int32_t slot, int64_t n_positions) const {
  const int64_t want = (n_positions + options_.block_size - 1) / options_.block_size;
  return std::max<int64_t>(0, want - n_blocks_[slot]);
}

bool KvCache::CanReserve(int32_t slot, int64_t n_positions) const {
  if (n_positions > options_.max_seq_len) return false;
  const int64_t need = BlocksNeeded(slot, n_positions);
  if (need > free_blocks()) return false;
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    if (need * width(slot, l) > free_k_pages(l)) return false;
  }
  return true;
}

absl::Status KvCache::Reserve(int32_t slot, int64_t n_positions) {
  if (n_positions > options_.max_seq_len) {
    return absl::OutOfRangeError(absl::StrCat(
        "sequence of ", n_positions, " positions exceeds the maximum of ", options_.max_seq_len));
  }
  const int64_t need = BlocksNeeded(slot, n_positions);
  if (need == 0) return absl::OkStatus();
  if (!CanReserve(slot, n_positions)) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache needs ", need, " more blocks, ",
                                                     free_blocks(), " free (or K pages short)"));
  }
  int32_t* table = &tables_[static_cast<size_t>(slot) * max_blocks_per_seq_];
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    const int32_t w = width(slot, l);
    int32_t* pages = &lt_[l].k_pages[static_cast<size_t>(slot) * max_blocks_per_seq_ * n_kv_];
    for (int64_t i = 0; i < need; ++i) {
      for (int32_t j = 0; j < w; ++j) {
        pages[(n_blocks_[slot] + i) * n_kv_ + j] = free_pages_[l].back();
        free_pages_[l].pop_back();
      }
    }
  }
  for (int64_t i = 0; i < need; ++i) {
    table[n_blocks_[slot]++] = free_.back();
    free_.pop_back();
  }
  UploadTables(slot);
  // Only the page rows changed; the head maps stay as they are.
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) UploadPages(slot, l);
  return absl::OkStatus();
}

absl::Status KvCache::SetHeadMap(int32_t slot, int64_t layer, const HeadMap& m) {
  if (slot < 0 || slot >= options_.max_seqs || !in_use_[slot] || layer < 0 ||
      layer >= static_cast<int64_t>(layers_.size())) {
    return absl::InvalidArgumentError("SetHeadMap: no such slot or layer");
  }
  if (static_cast<int32_t>(m.score_head.size()) != n_heads_ ||
      static_cast<int32_t>(m.k_slot.size()) != n_heads_ ||
      static_cast<int32_t>(m.k_src.size()) != n_kv_) {
    return absl::InvalidArgumentError("SetHeadMap: wrong map sizes");
  }
  const int32_t w = width(slot, layer);
  const int32_t group = n_heads_ / n_kv_;
  bool ended = false;
  for (int32_t j = 0; j < n_kv_; ++j) {
    ended = ended || m.k_src[j] == -1;
    const bool ok = ended ? m.k_src[j] == -1 : (j < w && m.k_src[j] >= 0 && m.k_src[j] < n_kv_);
    if (!ok) return absl::InvalidArgumentError("SetHeadMap: k_src does not fit the slot's width");
  }
  for (int32_t h = 0; h < n_heads_; ++h) {
    const int32_t r = m.score_head[h];
    if (r < 0 || r >= n_heads_ || m.score_head[r] != r) {
      return absl::InvalidArgumentError("SetHeadMap: score_head is not a representative map");
    }
    if (r == h && (m.k_slot[h] < 0 || m.k_slot[h] >= w || m.k_src[m.k_slot[h]] != h / group)) {
      return absl::InvalidArgumentError(
          "SetHeadMap: a representative's K slot does not hold its KV head");
    }
  }
  LayerTables& t = lt_[layer];
  std::copy(m.k_src.begin(), m.k_src.end(), t.k_src.begin() + int64_t{slot} * n_kv_);
  std::copy(m.score_head.begin(), m.score_head.end(),
            t.score_head.begin() + int64_t{slot} * n_heads_);
  std::copy(m.k_slot.begin(), m.k_slot.end(), t.k_slot.begin() + int64_t{slot} * n_heads_);
  UploadMaps(slot, layer);
  return absl::OkStatus();
}

HeadMap KvCache::GetHeadMap(int32_t slot, int64_t layer) const {
  const LayerTables& t = lt_[layer];
  HeadMap m;
  m.k_src.assign(t.k_src.begin() + int64_t{slot} * n_kv_,
                 t.k_src.begin() + int64_t{slot + 1} * n_kv_);
  m.score_head.assign(t.score_head.begin() + int64_t{slot} * n_heads_,
                      t.score_head.begin() + int64_t{slot + 1} * n_heads_);
  m.k_slot.assign(t.k_slot.begin() + int64_t{slot} * n_heads_,
                  t.k_slot.begin() + int64_t{slot + 1} * n_heads_);
  return m;
}

int64_t KvCache::k_bytes_per_token(int32_t slot) const {
  int64_t heads = 0;
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) heads += width(slot, l);
  return kernels::RowBytes(kv_dtype_, heads * head_dim_);
}

int64_t KvCache::k_bytes_in_use() const {
  int64_t pages = 0;
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    pages += layers_[l].num_k_pages - free_k_pages(l);
  }
  return pages * page_bytes_;
}

int64_t KvCache::k_bytes_full_in_use() const {
  return used_blocks() * n_kv_ * static_cast<int64_t>(layers_.size()) * page_bytes_;
}

int64_t KvCache::v_bytes_in_use() const { return k_bytes_full_in_use(); }

}  // namespace chai::engine
