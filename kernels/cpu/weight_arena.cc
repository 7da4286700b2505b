#include "kernels/cpu/weight_arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"

namespace chai::kernels::cpu {
namespace {

size_t RoundUp(size_t n, size_t to) { return (n + to - 1) / to * to; }

// `bytes` (a multiple of 4 KiB) of fresh anonymous memory at a kHugePage
// boundary, madvised MADV_HUGEPAGE, or nullptr. mmap rather than
// aligned_alloc: an impossible size is then ENOMEM, not a sanitizer's
// allocation-size abort.
void* MapAligned(size_t bytes) {
  const size_t span = bytes + WeightArena::kHugePage;
  if (span < bytes) return nullptr;
  void* m = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  const uintptr_t base = reinterpret_cast<uintptr_t>(m);
  const uintptr_t aligned = RoundUp(base, WeightArena::kHugePage);
  // Give back the unaligned head and the tail beyond `bytes`.
  if (aligned > base) munmap(m, aligned - base);
  const size_t tail = base + span - (aligned + bytes);
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  // A hint: where THP is off (or the call is unsupported) the memory simply
  // keeps 4 KiB pages. Asked before any page is touched, so the first touch
  // of each whole 2 MiB of the mapping faults in a huge page; a last partial
  // 2 MiB keeps 4 KiB pages, so nothing is mapped beyond `bytes`.
  (void)madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

absl::Status CannotAllocate(size_t bytes) {
  return absl::ResourceExhaustedError(absl::StrCat("cpu: cannot allocate ", bytes, " bytes"));
}

}  // namespace

struct WeightArena::Slab {
  Slab(void* p, size_t n) : data(static_cast<char*>(p)), bytes(n) {}
  ~Slab() { munmap(data, bytes); }
  char* data;
  size_t bytes;
};

namespace {

class SlabBuffer final : public Buffer {
 public:
  SlabBuffer(std::shared_ptr<void> slab, void* data, size_t size)
      : slab_(std::move(slab)), data_(data), size_(size) {}
  void* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  std::shared_ptr<void> slab_;  // keeps the memory alive
  void* data_;
  size_t size_;
};

}  // namespace

WeightArena::WeightArena(size_t slab_bytes)
    : slab_bytes_(RoundUp(slab_bytes == 0 ? kHugePage : slab_bytes, kHugePage)) {}

WeightArena::~WeightArena() = default;

absl::StatusOr<std::unique_ptr<Buffer>> WeightArena::Allocate(size_t bytes) {
  const size_t need = RoundUp(bytes == 0 ? 1 : bytes, kAlignment);
  if (need < bytes) return CannotAllocate(bytes);  // wrapped
  if (need > slab_bytes_ / 2) {
    absl::StatusOr<std::unique_ptr<Buffer>> own = AllocateHugePageBuffer(bytes);
    if (own.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      ++slabs_;
    }
    return own;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (current_ == nullptr || current_->bytes - used_ < need) {
    void* p = MapAligned(slab_bytes_);
    if (p == nullptr) return CannotAllocate(bytes);
    ++slabs_;
    current_ = std::make_shared<Slab>(p, slab_bytes_);
    used_ = 0;
  }
  void* p = current_->data + used_;
  used_ += need;
  return std::make_unique<SlabBuffer>(current_, p, bytes);
}

absl::StatusOr<std::unique_ptr<Buffer>> AllocateHugePageBuffer(size_t bytes) {
  const size_t map = RoundUp(bytes == 0 ? 1 : bytes, 4096);
  void* p = map < bytes ? nullptr : MapAligned(map);
  if (p == nullptr) return CannotAllocate(bytes);
  return std::make_unique<SlabBuffer>(std::make_shared<WeightArena::Slab>(p, map), p, bytes);
}

int WeightArena::slabs_allocated() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slabs_;
}

}  // namespace chai::kernels::cpu
