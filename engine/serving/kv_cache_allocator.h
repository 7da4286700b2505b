// The scheduler's view of a real KvCache: one cache slot per open sequence,
// with KvCache::Reserve's status deciding whether memory is available (a CHAI
// cache pages K per head, so free blocks alone do not say).
//
// Ownership: borrows the cache, which must outlive the allocator.
// Thread-safety: not thread-safe; used by the engine thread only.
#ifndef CHAI_ENGINE_SERVING_KV_CACHE_ALLOCATOR_H_
#define CHAI_ENGINE_SERVING_KV_CACHE_ALLOCATOR_H_

#include <cstdint>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "engine/kv_cache.h"
#include "engine/serving/scheduler.h"

namespace chai::engine {

class KvCacheAllocator : public KvAllocator {
 public:
  explicit KvCacheAllocator(KvCache* cache) : cache_(cache) {}

  // KvCache::AddSequence(chai); RESOURCE_EXHAUSTED when no slot is free.
  absl::Status Open(int64_t seq, bool chai) override;
  absl::Status Reserve(int64_t seq, int64_t n_positions) override;
  void Close(int64_t seq) override;

  // The cache slot of an open sequence, -1 if it is not open.
  int32_t slot(int64_t seq) const;

 private:
  KvCache* cache_;
  absl::flat_hash_map<int64_t, int32_t> slots_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_KV_CACHE_ALLOCATOR_H_
