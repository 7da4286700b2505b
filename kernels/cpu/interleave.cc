#include "kernels/cpu/interleave.h"

#include <cstring>
#include <type_traits>

namespace chai::kernels::cpu {
namespace {

// Element i (0..31) of a Q4_0/Q4_1 block: GGML keeps 0-15 in the low
// nibbles and 16-31 in the high ones.
inline uint8_t Nibble(const uint8_t* qs, int i) {
  return i < kQK / 2 ? qs[i] & 0x0f : qs[i - kQK / 2] >> 4;
}

// The 8 rows' blocks of one group, x8 block by x8 block (interleave.h).
template <typename Src, typename Dst>
void InterleaveGroup(const Src* rows[kInterleave], int64_t nb, Dst* out) {
  for (int64_t b = 0; b < nb; ++b) {
    Dst& o = out[b];
    for (int r = 0; r < kInterleave; ++r) {
      const Src& s = rows[r][b];
      o.d[r] = s.d;
      if constexpr (requires { s.m; }) o.m[r] = s.m;
      // 16 bytes per g: row r's bytes 2r and 2r + 1.
      for (int g = 0; g < static_cast<int>(sizeof(o.qs)) / 16; ++g) {
        for (int e = 0; e < 2; ++e) {
          if constexpr (std::is_same_v<Src, BlockQ8_0>) {
            o.qs[16 * g + 2 * r + e] = s.qs[2 * g + e];
          } else {
            o.qs[16 * g + 2 * r + e] =
                static_cast<uint8_t>(Nibble(s.qs, 4 * g + e) | Nibble(s.qs, 4 * g + 2 + e) << 4);
          }
        }
      }
    }
  }
}

template <typename Src, typename Dst>
void Interleave(int64_t rows, int64_t cols, const void* src, void* dst) {
  const int64_t nb = cols / kQK;
  const auto* s = static_cast<const Src*>(src);
  auto* d = static_cast<Src*>(dst);
  const int64_t full = rows / kInterleave * kInterleave;
  for (int64_t r0 = 0; r0 < full; r0 += kInterleave) {
    const Src* group[kInterleave];
    for (int r = 0; r < kInterleave; ++r) group[r] = s + (r0 + r) * nb;
    InterleaveGroup(group, nb, reinterpret_cast<Dst*>(d + r0 * nb));
  }
  if (rows > full) std::memcpy(d + full * nb, s + full * nb, (rows - full) * nb * sizeof(Src));
}

}  // namespace

bool Interleavable(DType t) { return t == DType::kQ4_0 || t == DType::kQ4_1 || t == DType::kQ8_0; }

void InterleaveRows(DType t, int64_t rows, int64_t cols, const void* src, void* dst) {
  switch (t) {
    case DType::kQ4_0:
      return Interleave<BlockQ4_0, BlockQ4_0x8>(rows, cols, src, dst);
    case DType::kQ4_1:
      return Interleave<BlockQ4_1, BlockQ4_1x8>(rows, cols, src, dst);
    case DType::kQ8_0:
      return Interleave<BlockQ8_0, BlockQ8_0x8>(rows, cols, src, dst);
    default:
      return;
  }
}

}  // namespace chai::kernels::cpu
