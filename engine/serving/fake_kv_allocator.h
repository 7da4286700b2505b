// A KvAllocator over a simulated pool, for scheduler tests: blocks of
// block_size positions plus, like a CHAI KvCache, a separate pool of K pages
// of which a plain sequence takes plain_pages per block and a CHAI sequence
// chai_pages, so Reserve can fail while free blocks would suffice.
//
// Thread-safety: not thread-safe. Test-only.
#ifndef CHAI_ENGINE_SERVING_FAKE_KV_ALLOCATOR_H_
#define CHAI_ENGINE_SERVING_FAKE_KV_ALLOCATOR_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/serving/scheduler.h"

namespace chai::engine {

class FakeKvAllocator : public KvAllocator {
 public:
  struct Options {
    int64_t num_blocks = 64;
    int32_t block_size = 16;
    int32_t max_slots = 64;
    int64_t num_k_pages = 64 * 3;
    int32_t plain_pages = 3;  // K pages per block, plain sequence
    int32_t chai_pages = 1;   // K pages per block, CHAI sequence
  };

  explicit FakeKvAllocator(const Options& options)
      : options_(options), free_blocks_(options.num_blocks), free_pages_(options.num_k_pages) {}

  absl::Status Open(int64_t seq, bool chai) override {
    if (held_.contains(seq)) return absl::InternalError(absl::StrCat("open twice: ", seq));
    if (static_cast<int32_t>(held_.size()) >= options_.max_slots) {
      return absl::ResourceExhaustedError("no free slot");
    }
    held_[seq] = Held{chai, 0};
    return absl::OkStatus();
  }

  absl::Status Reserve(int64_t seq, int64_t n_positions) override {
    auto it = held_.find(seq);
    if (it == held_.end()) return absl::InternalError(absl::StrCat("reserve unopened ", seq));
    const int64_t want = (n_positions + options_.block_size - 1) / options_.block_size;
    const int64_t more = want - it->second.blocks;
    if (more <= 0) return absl::OkStatus();
    const int64_t pages = more * PagesPerBlock(it->second.chai);
    if (more > free_blocks_ || pages > free_pages_) {
      if (more <= free_blocks_) ++page_limited_failures_;
      return absl::ResourceExhaustedError("pool short");
    }
    free_blocks_ -= more;
    free_pages_ -= pages;
    it->second.blocks = want;
    return absl::OkStatus();
  }

  void Close(int64_t seq) override {
    auto it = held_.find(seq);
    if (it == held_.end()) {
      ++bad_closes_;
      return;
    }
    free_blocks_ += it->second.blocks;
    free_pages_ += it->second.blocks * PagesPerBlock(it->second.chai);
    held_.erase(it);
  }

  bool IsOpen(int64_t seq) const { return held_.contains(seq); }
  int64_t BlocksHeld(int64_t seq) const {
    auto it = held_.find(seq);
    return it == held_.end() ? 0 : it->second.blocks;
  }
  int64_t num_open() const { return static_cast<int64_t>(held_.size()); }
  int64_t free_blocks() const { return free_blocks_; }
  int64_t free_pages() const { return free_pages_; }
  // Blocks and pages held by open sequences (for conservation checks).
  int64_t SumBlocksHeld() const {
    int64_t n = 0;
    for (const auto& [seq, h] : held_) n += h.blocks;
    return n;
  }
  int64_t SumPagesHeld() const {
    int64_t n = 0;
    for (const auto& [seq, h] : held_) n += h.blocks * PagesPerBlock(h.chai);
    return n;
  }
  // Reserve failures where blocks sufficed but K pages did not.
  int64_t page_limited_failures() const { return page_limited_failures_; }
  int64_t bad_closes() const { return bad_closes_; }
  const Options& options() const { return options_; }

 private:
  struct Held {
    bool chai = false;
    int64_t blocks = 0;
  };
  int64_t PagesPerBlock(bool chai) const {
    return chai ? options_.chai_pages : options_.plain_pages;
  }

  Options options_;
  int64_t free_blocks_;
  int64_t free_pages_;
  absl::flat_hash_map<int64_t, Held> held_;
  int64_t page_limited_failures_ = 0;
  int64_t bad_closes_ = 0;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_FAKE_KV_ALLOCATOR_H_
