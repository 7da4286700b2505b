// AMX-INT8 kernels of ActivationMode::kInt16 over row-interleaved weights
// (interleave.h): 16 weight rows (two adjacent groups) against up to 16
// activation rows per tile multiply, for batches (matmul_kernels.h,
// AmxInt16Group16Panel).
//
// Why it is exact: AMX multiplies bytes, the activations are int16. Each
// activation a is split as a = 256 * hi + lo with lo = a & 0xff (unsigned)
// and hi = a >> 8 (signed), so one TDPBUSD (u8 x s8) over the low bytes and
// one TDPBSSD (s8 x s8) over the high bytes give, per 32-column block, the
// exact integer sums 256 * C_hi + C_lo = sum(w * a) that the vector kernels
// build with vpmaddwd/vpdpwssd (|sum| < 2^31, matmul_kernels.h). The weights
// fit signed bytes: Q4_1 nibbles 0..15, Q4_0 nibbles - 8, Q8_0 as stored.
// After the sums, each output lane runs the 8-row kernel's float code
// (matmul_int16x8_group.inc): a = fma(float(isum), dw * d, a), then for Q4_1
// a = fma(m, s, a), blocks in order. So the results are the same bits as
// every other group kernel, for every tile height and batch.
//
// Why it is faster, and by how much: one tile multiply does 16 x 16 x 32
// byte products, where the 16-row VNNI kernel needs 256 vpdpwssd for the
// same 16 x 16 block. But the per-block scales force K = 32 (a multiply
// costs the same at 64), the block sums must leave the tile unit through
// two 1 KB tile stores, and converting them (6 vector operations per 16
// outputs) does not overlap with the tile work on the machine measured:
// ~50 ns per 16 x 16 block against ~80 for the VNNI kernel, so batches only
// (docs/PERFORMANCE.md, session 10).
//
// Tiles (palette 1): tmm0/tmm1 and tmm5/tmm6 the low/high sums of even and
// odd blocks (16 x 16 int32), tmm2/tmm3 the activations' low/high bytes
// (16 rows x 32), tmm4 the weights (8 rows x 64: row g holds the 16 weight
// rows' columns 4g..4g+3, "VNNI" order, in the tile column order below).
//
// REQUIRES: CpuHasAmxInt8().
#include <asm/prctl.h>
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

#define CHAI_AMX \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))
#define CHAI_AMX_INLINE                                                                          \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8"), \
                 always_inline)) inline

// GCC 12's _mm512_undefined_ps() false positive (matmul_vnni_int16x16.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace chai::kernels::cpu::internal {
namespace {

constexpr int kTileBytes = kAmxRows * kQK;  // one activation byte plane of a block: 512
// One block of an activation tile in the planes (matmul_kernels.h): the low
// and high byte planes, then the 16 rows' d and s.
constexpr int kPlaneBlock = 2 * kTileBytes + 2 * kAmxRows * static_cast<int>(sizeof(float));
static_assert(kPlaneBlock % 64 == 0, "tile loads stay 64-byte aligned");
// One block of a weight pair, unpacked: the B tile, then the 16 rows' scales
// and (Q4_1) mins as floats.
constexpr int kUnpackedBlock = 512 + 2 * 64;

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

CHAI_AMX void LoadTileConfig() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int t : {0, 1, 5, 6}) {  // int32 sums
    cfg.rows[t] = kAmxRows;
    cfg.colsb[t] = 64;
  }
  for (int t : {2, 3}) {  // activation bytes
    cfg.rows[t] = kAmxRows;
    cfg.colsb[t] = kQK;
  }
  cfg.rows[4] = kQK / 4;  // weights
  cfg.colsb[4] = 64;
  // GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes, so the
  // stores above could be dropped as dead (they were, in a test program):
  // make the whole struct visible first.
  asm volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// The tile's weight columns n (16 per block) are the pair's rows in "tile
// order": n = 0-3 group 0 rows 0-3, 4-7 group 1 rows 0-3, 8-11 group 0 rows
// 4-7, 12-15 group 1 rows 4-7. That order falls out of the unpacks below
// without a cross-lane shuffle; the scales follow it, and the outputs are put
// back into row order once per tile (ToRowOrder).
//
// a and b hold group 0's 16 bytes (low lane) and group 1's (high lane) in
// the x8 order "row r's column pair at 2r", for columns k, k+1 (a) and k+2,
// k+3 (b). Writes B tile row k / 4: for tile column n, bytes 4n..4n+3 are
// that row's columns k..k+3.
CHAI_AMX_INLINE void StoreTileRow(__m256i a, __m256i b, uint8_t* dst) {
  _mm256_store_si256(reinterpret_cast<__m256i*>(dst), _mm256_unpacklo_epi16(a, b));
  _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32), _mm256_unpackhi_epi16(a, b));
}

// 8 fp16 values of group 0 (a) and of group 1 (b) as 16 floats in tile order.
CHAI_AMX_INLINE __m512 HalvesToTileOrder(const uint16_t* a, const uint16_t* b) {
  // 64-bit quarters [a0-3, a4-7, b0-3, b4-7] -> [a0-3, b0-3, a4-7, b4-7].
  return _mm512_cvtph_ps(_mm256_permute4x64_epi64(Load2x128(a, b), 0xd8));
}

// Tile order back to row order (the same swap of the middle 128-bit lanes).
CHAI_AMX_INLINE __m512 ToRowOrder(__m512 v) {
  return _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(3, 1, 2, 0));
}

// A growable 64-byte-aligned scratch buffer (one per thread).
class AlignedBuffer {
 public:
  uint8_t* data() { return data_.get(); }
  void Reserve(int64_t bytes) {
    if (bytes <= size_) return;
    data_.reset(static_cast<uint8_t*>(::operator new(static_cast<size_t>(bytes), kAlign)));
    size_ = bytes;
  }

 private:
  static constexpr std::align_val_t kAlign{64};
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete(p, kAlign); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  int64_t size_ = 0;
};

// kKind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0.
template <typename WBlock8, int kKind>
struct AmxKernel {
  // Groups w0 and w1 (nb blocks each) into nb unpacked blocks at dst.
  CHAI_AMX static void Unpack(const WBlock8* w0, const WBlock8* w1, int64_t nb, uint8_t* dst) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < nb; ++b, dst += kUnpackedBlock) {
      // The weights stream from memory once per batch (kWeightPrefetchBytes).
      const char* ahead0 = reinterpret_cast<const char*>(w0 + b) + kWeightPrefetchBytes;
      const char* ahead1 = reinterpret_cast<const char*>(w1 + b) + kWeightPrefetchBytes;
#pragma GCC unroll 5
      for (int k = 0; k * 64 < static_cast<int>(sizeof(WBlock8)); ++k) {
        _mm_prefetch(ahead0 + 64 * k, _MM_HINT_T0);
        _mm_prefetch(ahead1 + 64 * k, _MM_HINT_T0);
      }
      for (int g = 0; g < kQK / 4; ++g) {
        if constexpr (kKind == 2) {
          // Row r's columns 4g, 4g+1 sit in x8 pair 2g, 4g+2, 4g+3 in 2g+1.
          StoreTileRow(Load2x128(w0[b].qs + 32 * g, w1[b].qs + 32 * g),
                       Load2x128(w0[b].qs + 32 * g + 16, w1[b].qs + 32 * g + 16), dst + 64 * g);
        } else {
          // Low nibbles are columns 4g, 4g+1; high nibbles 4g+2, 4g+3.
          const __m256i q = Load2x128(w0[b].qs + 16 * g, w1[b].qs + 16 * g);
          __m256i lo = _mm256_and_si256(q, mask);
          __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
          if constexpr (kKind == 0) {
            lo = _mm256_sub_epi8(lo, _mm256_set1_epi8(8));
            hi = _mm256_sub_epi8(hi, _mm256_set1_epi8(8));
          }
          StoreTileRow(lo, hi, dst + 64 * g);
        }
      }
      auto* f = reinterpret_cast<float*>(dst + 512);
      _mm512_store_ps(f, HalvesToTileOrder(w0[b].d, w1[b].d));
      if constexpr (kKind == 1) {
        _mm512_store_ps(f + 16, HalvesToTileOrder(w0[b].m, w1[b].m));
      }
    }
  }

  // Block b's exact integer sums of 16 activation rows (planes a: low
  // bytes, then high bytes) with the 16 unpacked weight rows at w, stored as
  // int32 [16][16] at c (low) and c + 256 (high). kPair0 picks the tile
  // pair (tmm0/1, else tmm5/6) so that two blocks can be in flight.
  template <bool kPair0>
  CHAI_AMX_INLINE static void Sums(const uint8_t* a, const uint8_t* w, int32_t* c) {
    _tile_loadd(2, a, kQK);
    _tile_loadd(3, a + kTileBytes, kQK);
    _tile_loadd(4, w, 64);
    if constexpr (kPair0) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_dpbusd(0, 2, 4);
      _tile_dpbssd(1, 3, 4);
      _tile_stored(0, c, 64);
      _tile_stored(1, c + 256, 64);
    } else {
      _tile_zero(5);
      _tile_zero(6);
      _tile_dpbusd(5, 2, 4);
      _tile_dpbssd(6, 3, 4);
      _tile_stored(5, c, 64);
      _tile_stored(6, c + 256, 64);
    }
  }
  CHAI_AMX_INLINE static void Sums(int64_t b, const uint8_t* planes, const uint8_t* unpacked,
                                   int32_t* c) {
    const uint8_t* a = planes + kPlaneBlock * b;
    const uint8_t* w = unpacked + kUnpackedBlock * b;
    if ((b & 1) == 0) {
      Sums<true>(a, w, c);
    } else {
      Sums<false>(a, w, c);
    }
  }

  // Block b's float work for tile rows r < NR from its sums at c, with the
  // unpacked weight block wb and the block's activation scales sc (the 16
  // rows' d, then their s).
  template <int NR>
  CHAI_AMX_INLINE static void Accumulate(const int32_t* c, const uint8_t* wb, const float* sc,
                                         __m512* acc) {
    const auto* f = reinterpret_cast<const float*>(wb + 512);
    const __m512 dw = _mm512_load_ps(f);
    [[maybe_unused]] __m512 mw;
    if constexpr (kKind == 1) mw = _mm512_load_ps(f + 16);
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const __m512i lo = _mm512_load_si512(c + 16 * r);
      const __m512i hi = _mm512_load_si512(c + 256 + 16 * r);
      const __m512i isum = _mm512_add_epi32(_mm512_slli_epi32(hi, 8), lo);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(sc[r]));
      acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[r]);
      if constexpr (kKind == 1) acc[r] = _mm512_fmadd_ps(mw, _mm512_set1_ps(sc[16 + r]), acc[r]);
    }
  }

  // One activation tile of the planes (rows beyond the batch are zero there
  // and not stored) against the unpacked pair.
  template <int NR>
  CHAI_AMX static void Tile(const uint8_t* unpacked, const uint8_t* planes, int nr, int64_t nb,
                            float* out, int64_t out_stride) {
    __m512 acc[NR];
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
    // Block b + 1's sums are issued before block b's are converted, in the
    // other tile pair and buffer. Running further ahead (2, 4, 8 blocks)
    // measured the same: the tile work and the conversion do not overlap
    // here whatever the distance (PERFORMANCE.md, session 10).
    alignas(64) int32_t c[2][2 * kAmxRows * 16];
    Sums(0, planes, unpacked, c[0]);
    for (int64_t b = 0; b < nb; ++b) {
      if (b + 1 < nb) Sums(b + 1, planes, unpacked, c[(b + 1) & 1]);
      Accumulate<NR>(c[b & 1], unpacked + kUnpackedBlock * b,
                     reinterpret_cast<const float*>(planes + kPlaneBlock * b + 2 * kTileBytes),
                     acc);
    }
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      if (r < nr) _mm512_storeu_ps(out + r * out_stride, ToRowOrder(acc[r]));
    }
  }

  CHAI_AMX static void Panel(const void* w, int64_t pairs, const void* planes, int64_t m,
                             int64_t cols, float* y, int64_t y_stride) {
    const int64_t nb = cols / kQK;
    const int64_t tiles = (m + kAmxRows - 1) / kAmxRows;
    // The pair's unpacked weights stay in L1/L2 while every activation tile
    // passes over them (cols * 20 bytes: 30 KB at 1536 columns).
    thread_local AlignedBuffer buf;
    buf.Reserve(nb * kUnpackedBlock);
    LoadTileConfig();
    const auto* wg = static_cast<const WBlock8*>(w);
    const auto* pl = static_cast<const uint8_t*>(planes);
    for (int64_t p = 0; p < pairs; ++p) {
      Unpack(wg + 2 * nb * p, wg + (2 * p + 1) * nb, nb, buf.data());
      // Tile loads are asm without a memory operand: keep the unpacked
      // bytes' stores before them.
      asm volatile("" ::: "memory");
      for (int64_t t = 0; t < tiles; ++t) {
        const int nr = static_cast<int>(std::min<int64_t>(kAmxRows, m - t * kAmxRows));
        const uint8_t* tp = pl + t * nb * kPlaneBlock;
        float* out = y + t * kAmxRows * y_stride + 16 * p;
        // Tile heights in steps of 4 rows: fewer instantiations, and the
        // padding rows' float work is at most 3 rows.
        if (nr > 12) {
          Tile<16>(buf.data(), tp, nr, nb, out, y_stride);
        } else if (nr > 8) {
          Tile<12>(buf.data(), tp, nr, nb, out, y_stride);
        } else if (nr > 4) {
          Tile<8>(buf.data(), tp, nr, nb, out, y_stride);
        } else {
          Tile<4>(buf.data(), tp, nr, nb, out, y_stride);
        }
      }
    }
    // Hands the tile state back, so the OS need not save it for this thread.
    _tile_release();
  }
};

}  // namespace

bool CpuHasAmxInt8() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    // CPUID leaf 7: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
    if (!CpuHasAvx512Vnni() || __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if ((edx & (1u << 24)) == 0 || (edx & (1u << 25)) == 0) return false;
    // Linux hands out the 8 KB tile state only on request (XFEATURE 18,
    // XTILEDATA); the permission covers the whole process. Kernels before
    // 5.16 refuse it, and then AMX is unusable.
    constexpr int kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, kXfeatureXtiledata) == 0;
  }();
  return has;
}

int64_t AmxPlaneBytes(int64_t m, int64_t cols) {
  return (m + kAmxRows - 1) / kAmxRows * (cols / kQK) * kPlaneBlock;
}

namespace {

// Row i's place in block 0 of its tile: the low-byte plane's row.
uint8_t* PlaneRow(void* planes, int64_t nb, int64_t i) {
  return static_cast<uint8_t*>(planes) + (i / kAmxRows) * nb * kPlaneBlock + (i % kAmxRows) * kQK;
}

// Row i's d in block 0 of its tile (s is kAmxRows floats later).
float* PlaneScale(void* planes, int64_t nb, int64_t i) {
  return reinterpret_cast<float*>(static_cast<uint8_t*>(planes) +
                                  (i / kAmxRows) * nb * kPlaneBlock + 2 * kTileBytes) +
         i % kAmxRows;
}

}  // namespace

CHAI_AMX void AmxSplitActRow(const void* q16_row, int64_t cols, int64_t i, void* planes) {
  const int64_t nb = cols / kQK;
  const Q16RowConst x = Q16RowAt(q16_row, nb);
  uint8_t* tile = PlaneRow(planes, nb, i);
  float* sc = PlaneScale(planes, nb, i);
  constexpr int kBlockFloats = kPlaneBlock / static_cast<int>(sizeof(float));
  for (int64_t b = 0; b < nb; ++b, tile += kPlaneBlock, sc += kBlockFloats) {
    const __m512i v = _mm512_loadu_si512(x.qs + kQK * b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile), _mm512_cvtepi16_epi8(v));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + kTileBytes),
                        _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 8)));
    sc[0] = x.d[b];
    sc[kAmxRows] = x.s[b];
  }
}

void AmxZeroPadRows(int64_t m, int64_t cols, void* planes) {
  const int64_t nb = cols / kQK;
  const int64_t padded = (m + kAmxRows - 1) / kAmxRows * kAmxRows;
  constexpr int kBlockFloats = kPlaneBlock / static_cast<int>(sizeof(float));
  for (int64_t i = m; i < padded; ++i) {
    uint8_t* tile = PlaneRow(planes, nb, i);
    float* sc = PlaneScale(planes, nb, i);
    for (int64_t b = 0; b < nb; ++b, tile += kPlaneBlock, sc += kBlockFloats) {
      std::memset(tile, 0, kQK);
      std::memset(tile + kTileBytes, 0, kQK);
      sc[0] = sc[kAmxRows] = 0.0f;  // padding rows' sums are 0: keep 0 * scale finite
    }
  }
}

AmxPanelFn AmxInt16Group16Panel(DType t) {
  switch (t) {
    case DType::kQ4_0:
      return AmxKernel<BlockQ4_0x8, 0>::Panel;
    case DType::kQ4_1:
      return AmxKernel<BlockQ4_1x8, 1>::Panel;
    case DType::kQ8_0:
      return AmxKernel<BlockQ8_0x8, 2>::Panel;
    default:
      return nullptr;
  }
}

}  // namespace chai::kernels::cpu::internal
