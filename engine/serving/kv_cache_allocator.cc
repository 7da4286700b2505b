#include "engine/serving/kv_cache_allocator.h"

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::Status KvCacheAllocator::Open(int64_t seq, bool chai) {
  if (slots_.contains(seq)) {
    return absl::FailedPreconditionError(absl::StrCat("sequence ", seq, " is already open"));
  }
  absl::StatusOr<int32_t> slot = cache_->AddSequence(chai);
  if (!slot.ok()) return slot.status();
  slots_[seq] = *slot;
  return absl::OkStatus();
}

absl::Status KvCacheAllocator::Reserve(int64_t seq, int64_t n_positions) {
  auto it = slots_.find(seq);
  if (it == slots_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("sequence ", seq, " is not open"));
  }
  return cache_->Reserve(it->second, n_positions);
}

void KvCacheAllocator::Close(int64_t seq) {
  auto it = slots_.find(seq);
  if (it == slots_.end()) return;
  cache_->RemoveSequence(it->second);
  slots_.erase(it);
}

int32_t KvCacheAllocator::slot(int64_t seq) const {
  auto it = slots_.find(seq);
  return it == slots_.end() ? -1 : it->second;
}

}  // namespace chai::engine
