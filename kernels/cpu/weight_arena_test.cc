#include "kernels/cpu/weight_arena.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace chai::kernels::cpu {
namespace {

uintptr_t Addr(const std::unique_ptr<Buffer>& b) { return reinterpret_cast<uintptr_t>(b->data()); }

TEST(WeightArenaTest, BuffersAreAlignedDisjointAndPackedInOrder) {
  WeightArena arena(WeightArena::kHugePage);
  std::vector<std::unique_ptr<Buffer>> bufs;
  for (size_t bytes : {100, 64, 1, 4000, 70000}) {
    auto b = arena.Allocate(bytes);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->size(), bytes);
    EXPECT_EQ(Addr(*b) % WeightArena::kAlignment, 0u);
    bufs.push_back(*std::move(b));
  }
  // Back to back in allocation order, each rounded up to a cache line, the
  // first at the start of a 2 MiB-aligned slab.
  EXPECT_EQ(Addr(bufs[0]) % WeightArena::kHugePage, 0u);
  EXPECT_EQ(Addr(bufs[1]), Addr(bufs[0]) + 128);
  EXPECT_EQ(Addr(bufs[2]), Addr(bufs[1]) + 64);
  EXPECT_EQ(Addr(bufs[3]), Addr(bufs[2]) + 64);
  EXPECT_EQ(Addr(bufs[4]), Addr(bufs[3]) + 4032);
  EXPECT_EQ(arena.slabs_allocated(), 1);
  // Every byte is usable and no buffer overlaps another.
  for (size_t i = 0; i < bufs.size(); ++i) {
    std::memset(bufs[i]->data(), static_cast<int>(i + 1), bufs[i]->size());
  }
  for (size_t i = 0; i < bufs.size(); ++i) {
    const auto* p = static_cast<const uint8_t*>(bufs[i]->data());
    for (size_t k = 0; k < bufs[i]->size(); ++k) ASSERT_EQ(p[k], i + 1) << i << " " << k;
  }
}

TEST(WeightArenaTest, FullSlabStartsANewOne) {
  WeightArena arena(WeightArena::kHugePage);
  auto a = arena.Allocate(WeightArena::kHugePage / 2);
  auto b = arena.Allocate(WeightArena::kHugePage / 2 - 64);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(arena.slabs_allocated(), 1);
  auto c = arena.Allocate(128);  // 64 bytes are left
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(arena.slabs_allocated(), 2);
  EXPECT_EQ(Addr(*c) % WeightArena::kHugePage, 0u);
}

TEST(WeightArenaTest, LargeBufferGetsItsOwnSlabAndTheCurrentOneContinues) {
  WeightArena arena(2 * WeightArena::kHugePage);
  auto a = arena.Allocate(1000);
  auto big = arena.Allocate(3 * WeightArena::kHugePage + 5);
  auto b = arena.Allocate(1000);
  ASSERT_TRUE(a.ok() && big.ok() && b.ok());
  EXPECT_EQ(arena.slabs_allocated(), 2);
  EXPECT_EQ(Addr(*big) % WeightArena::kHugePage, 0u);
  EXPECT_EQ(Addr(*b), Addr(*a) + 1024);  // the small ones share the first slab
  std::memset((*big)->data(), 7, (*big)->size());
  EXPECT_EQ(static_cast<const uint8_t*>((*big)->data())[(*big)->size() - 1], 7);
}

TEST(WeightArenaTest, BuffersOutliveTheArena) {
  std::unique_ptr<Buffer> kept;
  {
    WeightArena arena;
    auto b = arena.Allocate(256);
    ASSERT_TRUE(b.ok());
    kept = *std::move(b);
  }
  // Under ASan a freed slab would make this a use-after-free.
  std::memset(kept->data(), 3, kept->size());
  EXPECT_EQ(static_cast<const uint8_t*>(kept->data())[255], 3);
}

TEST(WeightArenaTest, HugePageBufferIsAlignedUsableAndFreedWithItsOwner) {
  for (size_t bytes : {size_t{1}, WeightArena::kHugePage, 3 * WeightArena::kHugePage + 100}) {
    auto b = AllocateHugePageBuffer(bytes);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ((*b)->size(), bytes);
    EXPECT_EQ(Addr(*b) % WeightArena::kHugePage, 0u);
    std::memset((*b)->data(), 5, bytes);
    EXPECT_EQ(static_cast<const uint8_t*>((*b)->data())[bytes - 1], 5);
  }
  EXPECT_EQ(AllocateHugePageBuffer(~size_t{0} - 10).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(WeightArenaTest, ImpossibleSizeIsAnErrorNotACrash) {
  WeightArena arena;
  auto b = arena.Allocate(~size_t{0} - 10);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kResourceExhausted);
  auto c = arena.Allocate(size_t{1} << 62);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace chai::kernels::cpu
