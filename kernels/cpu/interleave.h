// Row-interleaved weight layout for the int16-activation matmul kernels
// (ActivationMode::kInt16, docs/ENGINE.md "Interleaved weights").
//
// Why: the row-major kernels reduce each weight row's products to one value
// with horizontal sums, which cost more instructions than the products
// themselves (docs/PERFORMANCE.md, session 7). Interleaving 8 rows so that
// one 32-bit lane of an AVX2 register holds a pair of weights of one row lets
// `_mm256_madd_epi16` against a broadcast activation pair produce 8 rows'
// partial sums at once, with no horizontal work at all.
//
// Layout (Q4_0, Q4_1, Q8_0; rows a multiple of 8 are interleaved, the last
// rows % 8 stay row-major after them): rows 8G..8G+7 form group G, stored at
// the byte offset where row 8G starts in the row-major matrix (so the total
// size is unchanged), as nb = cols / 32 consecutive "x8 blocks", one per
// 32-column block b. An x8 block holds the 8 rows' block-b scales (and Q4_1
// mins) as fp16 arrays, then their quants:
//   Q4_0/Q4_1: qs[16 * g + 2 * r + e] = nibble(row r, 4g + e) |
//              nibble(row r, 4g + 2 + e) << 4      (g = 0..7, e = 0..1)
//   Q8_0:      qs[16 * g + 2 * r + e] = q(row r, 2g + e)   (g = 0..15)
// so 16 bytes widened to int16 (and, for the 4-bit types, split into low and
// high nibbles) give registers whose lane r holds row r's weights (k, k+1).
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_INTERLEAVE_H_
#define CHAI_KERNELS_CPU_INTERLEAVE_H_

#include <cstdint>

#include "kernels/cpu/dequantize.h"
#include "kernels/dtype.h"

namespace chai::kernels::cpu {

inline constexpr int kInterleave = 8;  // rows per interleaved group

struct BlockQ4_0x8 {
  uint16_t d[kInterleave];  // fp16
  uint8_t qs[kInterleave * kQK / 2];
};
struct BlockQ4_1x8 {
  uint16_t d[kInterleave];  // fp16
  uint16_t m[kInterleave];  // fp16
  uint8_t qs[kInterleave * kQK / 2];
};
struct BlockQ8_0x8 {
  uint16_t d[kInterleave];  // fp16
  int8_t qs[kInterleave * kQK];
};
static_assert(sizeof(BlockQ4_0x8) == kInterleave * sizeof(BlockQ4_0));
static_assert(sizeof(BlockQ4_1x8) == kInterleave * sizeof(BlockQ4_1));
static_assert(sizeof(BlockQ8_0x8) == kInterleave * sizeof(BlockQ8_0));

// True for the types that have an interleaved layout (Q4_0, Q4_1, Q8_0).
bool Interleavable(DType t);

// Writes the [rows, cols] row-major matrix `src` in the interleaved layout to
// `dst` (RowBytes(t, cols) * rows bytes; must not overlap src).
// REQUIRES: Interleavable(t), cols a multiple of 32, rows >= 0.
void InterleaveRows(DType t, int64_t rows, int64_t cols, const void* src, void* dst);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_INTERLEAVE_H_
