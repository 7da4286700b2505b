// Internal to the CPU matmul: activation block formats and the per-row dot
// kernels that matmul.cc drives. Not for use outside kernels/cpu/.
//
// Three kernel families serve the quantized weight types (see matmul.h for
// the trade-offs): ActivationMode::kFloat kernels dequantize each 32-element
// chunk of a weight row into floats (exactly DequantizeRow's values) and FMA
// them with float activations; ActivationMode::kInt8 kernels take activation
// rows quantized to 8-bit blocks and use integer block dot products;
// ActivationMode::kInt16 kernels (Q4_0, Q4_1, Q8_0 only) take 16-bit
// activation blocks and multiply them with the weights widened to int16.
// F32/F16/BF16 weights always use float activations.
//
// A RowDotFn computes the dot products of ONE weight row with `nr` (1..kMaxTile)
// activation rows. The kernels keep a separate accumulator per activation row
// and update it with the same instruction sequence whatever nr is, so the
// value for an activation row is bit-identical for every nr (and therefore
// for every batch size); nr > 1 only shares the weight loads and unpacking.
//
// Thread-safety: pure functions.
#ifndef CHAI_KERNELS_CPU_MATMUL_KERNELS_H_
#define CHAI_KERNELS_CPU_MATMUL_KERNELS_H_

#include <cstdint>

#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul.h"
#include "kernels/dtype.h"

namespace chai::kernels::cpu::internal {

// Activation rows per kernel call: int8-activation and float-weight kernels.
inline constexpr int kMaxTile = 4;
// Float-activation kernels of the quantized types: a dequantized chunk (4
// registers) is reused by up to 8 rows, each with one 8-lane accumulator.
inline constexpr int kMaxTileDequant = 8;
// Int16 kernels over interleaved weights (one accumulator and one integer
// sum register per activation row, plus the widened weights).
inline constexpr int kMaxTileGroup = 4;

// 8-bit activation block for the 32-element weight types (Q4_0, Q4_1, Q8_0).
// x[i] ~= d * qs[i]; s = d * sum(qs) (Q4_0's -8 offset and Q4_1's min).
struct BlockQ8x32 {
  float d;
  float s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8x32) == 40);

// 16-bit activation row for the 32-element weight types in
// ActivationMode::kInt16, planar so that a kernel loads the scales of 8
// consecutive blocks with one instruction:
//   int16_t qs[nb][32]; float d[nb]; float s[nb];   (nb = cols / 32)
// x[32b + i] ~= d[b] * qs[b][i], d[b] = amax / 32767 of block b, |qs| <=
// 32767; s[b] = d[b] * sum(qs[b]). Integer block sums cannot overflow:
// 32 * 15 * 32767 (Q4_*) and 32 * 128 * 32767 (Q8_0) are below 2^31.
inline constexpr int kQ16Lanes = 8;  // blocks per scale vector
template <typename I16, typename F>
struct Q16RowT {
  I16* qs;  // [nb][32]
  F* d;     // [nb]
  F* s;     // [nb]
};
using Q16Row = Q16RowT<int16_t, float>;
using Q16RowConst = Q16RowT<const int16_t, const float>;
inline Q16Row Q16RowAt(void* row, int64_t nb) {
  auto* qs = static_cast<int16_t*>(row);
  auto* d = reinterpret_cast<float*>(qs + nb * kQK);
  return {qs, d, d + nb};
}
inline Q16RowConst Q16RowAt(const void* row, int64_t nb) {
  const auto* qs = static_cast<const int16_t*>(row);
  const auto* d = reinterpret_cast<const float*>(qs + nb * kQK);
  return {qs, d, d + nb};
}

// 8-bit activation block for the K-quants. bsums[g] = sum(qs[16g..16g+15]),
// needed for the K-quants' mins and Q6_K's -32 offset.
struct BlockQ8xK {
  float d;
  int16_t bsums[kQKK / 16];
  int8_t qs[kQKK];
};
static_assert(sizeof(BlockQ8xK) == 292);

// The activation representation a weight type's kernels consume.
enum class ActFormat { kF32, kQ8x32, kQ8xK, kQ16x32 };
// kF32 for every type in ActivationMode::kFloat, for the float types, and
// for the K-quants in ActivationMode::kInt16 (they use the float kernels).
ActFormat ActFormatFor(DType t, ActivationMode mode);

// Bytes of one activation row of `cols` elements in `f`.
int64_t ActRowBytes(ActFormat f, int64_t cols);

// Quantizes one activation row. Round-to-nearest-even (the current rounding
// mode), |qs| <= 127 (8-bit) or 32767 (16-bit).
// REQUIRES: cols is a multiple of the block size.
void QuantizeActRow(ActFormat f, const float* x, int64_t cols, void* out);
using QuantizeRowFn = void (*)(ActFormat f, const float* x, int64_t cols, void* out);
// AVX2 QuantizeActRow for kQ16x32 (bit-identical to the portable one; other
// formats fall through to it). REQUIRES: CpuHasAvx2Fma().
void Avx2QuantizeActRow(ActFormat f, const float* x, int64_t cols, void* out);

// out[r * out_stride] = <w_row, act row r>, r < nr. Activation row r starts
// at act + r * act_stride bytes. `cols` is the row length in elements.
using RowDotFn = void (*)(const void* w_row, const void* act, int64_t act_stride, int nr,
                          int64_t cols, float* out, int64_t out_stride);

// Portable kernels; defined for every DType. For the quantized types they
// take ActFormatFor(t, kInt8) activations; nr <= kMaxTile.
RowDotFn ScalarRowDot(DType t);
// AVX2+FMA kernels, or nullptr when not compiled in for `t`.
// REQUIRES: the CPU supports AVX2 and FMA (see CpuHasAvx2Fma()).
RowDotFn Avx2RowDot(DType t);
bool CpuHasAvx2Fma();

// Float-activation kernels of the quantized types (nullptr for F32/F16/BF16,
// which ScalarRowDot/Avx2RowDot serve); nr <= kMaxTileDequant. The reduction
// order of each output, shared by both implementations: per 32-element chunk
// c (in element order) an 8-lane partial p[k] = sum over g = 0..3 of
// w[32c+8g+k] * x[32c+8g+k] (g in order), added to an 8-lane accumulator
// acc[k] += p[k]; the result is the Reduce8/Hsum tree of acc. The scalar
// kernel rounds each product and sum; the AVX2 one fuses them (FMA).
RowDotFn ScalarDequantRowDot(DType t);
RowDotFn Avx2DequantRowDot(DType t);

// 16-bit-activation kernels (ActFormat::kQ16x32) for Q4_0, Q4_1 and Q8_0;
// nullptr for every other type; nr <= kMaxTile. Per block b the integer dot
// product isum_b = sum(wq[i] * qs[b][i]) is exact (wq: Q4_0 nibble - 8, Q4_1
// nibble, Q8_0 q). The float part, shared bit for bit by both
// implementations: with F = 8 * floor(nb / 8), blocks b < F feed lane b % 8
// of 8 accumulators, the rest a scalar tail t, in block order, each by
// a = fma(float(isum_b), dw_b * d[b], a), then for Q4_1 a = fma(m_b, s[b],
// a); the result is Reduce8/Hsum(acc) + t. One vector FMA then serves 8
// blocks, so the per-block work is the integer products and their horizontal
// sums (matmul_avx2_int16.cc).
RowDotFn ScalarInt16RowDot(DType t);
RowDotFn Avx2Int16RowDot(DType t);

// The same 16-bit-activation products over row-interleaved weights
// (interleave.h): w_row points at an 8-row group and the call writes
// out[r * out_stride + j], j < 8, the dot products of the group's row j with
// activation row r < nr (nr <= kMaxTileGroup). Float order, shared bit for bit by
// both implementations: per output one accumulator a, blocks in order, a =
// fma(float(isum_b), dw_b * d[b], a), then for Q4_1 a = fma(m_b, s[b], a).
// No horizontal sums, so it has its own order, not the row kernels'.
RowDotFn ScalarInt16GroupDot(DType t);
RowDotFn Avx2Int16GroupDot(DType t);
// The AVX-512 VNNI build of the same kernels (same layout, same bits; fewer
// instructions per multiply-add). REQUIRES: CpuHasAvx512Vnni().
RowDotFn VnniInt16GroupDot(DType t);
// AVX512F + BW + VL + VNNI with OS support, and AVX2/FMA/F16C.
bool CpuHasAvx512Vnni();
// Two adjacent groups per call in 512-bit registers: w_row points at the
// first of them (16 rows; the second starts kInterleave rows later) and the
// call writes out[r * out_stride + j], j < 16. Same bits as two calls of the
// 8-row kernels. REQUIRES: CpuHasAvx512Vnni().
RowDotFn VnniInt16Group16Dot(DType t);
// The fastest group kernels `impl` may use on this CPU (the bits are the
// same whichever it is): the 8-row one, the VNNI build where the CPU has it;
// and the 16-row one, or nullptr where the CPU or impl has none.
RowDotFn BestInt16GroupDot(DType t, MatMulImpl impl);
RowDotFn BestInt16Group16Dot(DType t, MatMulImpl impl);

// AMX-INT8 batch kernels of the same products (matmul_amx_int16x16.cc):
// same layout, same bits as the group kernels above, for every batch.
// AMX multiplies bytes, so each kQ16x32 activation row is first split into
// "planes" of low and high bytes, laid out as the tile loads want them, with
// the rows' block scales beside them: per tile of kAmxRows activation rows
// and per 32-column block, a 1152-byte block of
//   lo[16][32] (uint8), hi[16][32] (int8), d[16], s[16] (float)
// at planes + ((i / 16) * nb + b) * 1152, row i % 16 of each (nb = cols / 32).
inline constexpr int kAmxRows = 16;
// AMX-TILE and AMX-INT8, the OS's permission to use them (requested here,
// once per process), and CpuHasAvx512Vnni().
bool CpuHasAmxInt8();
// Bytes of the planes of m rows of `cols` elements (m rounded up to 16).
int64_t AmxPlaneBytes(int64_t m, int64_t cols);
// Writes activation row i (a kQ16x32 row of `cols` elements) into the planes.
// REQUIRES: CpuHasAmxInt8().
void AmxSplitActRow(const void* q16_row, int64_t cols, int64_t i, void* planes);
// Zeroes the planes' rows m..AmxPlaneBytes' rounding, which every tile reads.
void AmxZeroPadRows(int64_t m, int64_t cols, void* planes);
// For `pairs` consecutive 16-row pairs of interleaved groups starting at w
// (pair p at w + p * 16 * RowBytes(t, cols)) and the planes of m activation
// rows: writes y[i * y_stride + 16 * p + j], the dot product of the pair's
// row j with activation row i. Uses this thread's tile state and a
// thread-local buffer of cols * 20 bytes. REQUIRES: CpuHasAmxInt8().
using AmxPanelFn = void (*)(const void* w, int64_t pairs, const void* planes, int64_t m,
                            int64_t cols, float* y, int64_t y_stride);
AmxPanelFn AmxInt16Group16Panel(DType t);  // nullptr for non-interleavable types

// AVX2 batch path of the float-activation kernels: DequantRowFn writes a
// weight row's cols values (the same registers the fused kernel computes, so
// exactly DequantizeRow's values) to out; the RowDotFn of
// Avx2PreDequantRowDot() then takes that float row as w_row and runs the
// fused kernel's accumulation (same instructions, same order), so its results
// are bit-identical to Avx2DequantRowDot's. Lets a batch dequantize each
// weight row once instead of once per activation tile.
using DequantRowFn = void (*)(const void* w_row, int64_t cols, float* out);
DequantRowFn Avx2DequantRow(DType t);  // nullptr for F32/F16/BF16
RowDotFn Avx2PreDequantRowDot();

// The kernel Run uses for a weight type, mode and (resolved) implementation.
struct KernelChoice {
  RowDotFn fn = nullptr;
  ActFormat format = ActFormat::kF32;
  int max_tile = kMaxTile;
  // How activation rows are put into `format` (unused for kF32).
  QuantizeRowFn quantize = QuantizeActRow;
  // Set for AVX2 float-activation quantized types: the batch path above.
  DequantRowFn dequant_row = nullptr;
  RowDotFn predequant_fn = nullptr;
};
KernelChoice ChooseKernel(DType t, ActivationMode mode, MatMulImpl impl);

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_MATMUL_KERNELS_H_
