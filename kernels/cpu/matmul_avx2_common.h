// Internal to the CPU matmul: helpers shared by the AVX2 kernel files
// (matmul_avx2.cc, matmul_avx2_float.cc). Everything here is compiled for
// AVX2+FMA+F16C through target attributes; callers must check
// CpuHasAvx2Fma() before running any of it.
#ifndef CHAI_KERNELS_CPU_MATMUL_AVX2_COMMON_H_
#define CHAI_KERNELS_CPU_MATMUL_AVX2_COMMON_H_

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#define CHAI_AVX2 __attribute__((target("avx2,fma,f16c")))
// NR-long loops over per-row accumulators are unrolled (#pragma GCC unroll)
// so the accumulators live in registers; -O2 alone keeps them on the stack.
#define CHAI_AVX2_INLINE __attribute__((target("avx2,fma,f16c"), always_inline)) inline

namespace chai::kernels::cpu::internal {

// How far ahead of the block in use the kernels prefetch weight bytes. At
// batch 1 every weight is read once per token while the core is busy with
// the arithmetic, and the hardware prefetchers alone keep too few reads in
// flight. BM_DecodeWeights/1/3 (the model's weights, batch 1) on the Intel
// Xeon VM of session 9, one allocation per matrix, 4 KiB pages: 1 KB
// 234-243 tokens/s, 4 KB 299-305, 8 KB 318-324, 16 KB 279-297. Since the
// weights sit back to back in huge-page slabs (weight_arena.h), the engine's
// batch 1 on the same kind of VM (session 12, three rounds): 8 KB 415-432,
// 12 KB 451-464, 16 KB 432-468, 24 KB 403-462 tokens/s; with the slabs held
// to 4 KiB pages 12 KB still beat 8 KB (395-411 against 372-387). Batch 32
// unchanged. On the Zen 3 VM 1, 2 and 4 KB measured the same
// (docs/PERFORMANCE.md).
inline constexpr int kWeightPrefetchBytes = 12288;

// Horizontal sum with the same reduction tree as the scalar Reduce8:
// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
CHAI_AVX2_INLINE float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// IEEE half -> float (exact).
CHAI_AVX2_INLINE float Half(uint16_t h) { return _cvtsh_ss(h); }

// The 16 bytes at a and the 16 at b as one 256-bit value (a low): the
// 16-row kernels' two interleaved groups side by side.
CHAI_AVX2_INLINE __m256i Load2x128(const void* a, const void* b) {
  return _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(static_cast<const __m128i*>(a))),
      _mm_loadu_si128(static_cast<const __m128i*>(b)), 1);
}

template <typename T>
CHAI_AVX2_INLINE const T* RowPtr(const void* act, int64_t stride, int r) {
  return reinterpret_cast<const T*>(static_cast<const char*>(act) + r * stride);
}

// Calls Kernel::Run<nr> for a tile of nr activation rows (1..kMax; larger
// nr clamp to kMax). The kernels are templates on the tile height so each
// height gets its own fully unrolled register allocation.
template <typename Kernel, int kMax, int... N>
void DispatchTileImpl(std::integer_sequence<int, N...>, const void* w_row, const void* act,
                      int64_t stride, int nr, int64_t cols, float* out, int64_t out_stride) {
  using Fn = void (*)(const void*, const void*, int64_t, int64_t, float*, int64_t);
  static constexpr Fn kTable[] = {&Kernel::template Run<N + 1>...};
  kTable[std::clamp(nr, 1, kMax) - 1](w_row, act, stride, cols, out, out_stride);
}

template <typename Kernel, int kMax>
void DispatchTile(const void* w_row, const void* act, int64_t stride, int nr, int64_t cols,
                  float* out, int64_t out_stride) {
  DispatchTileImpl<Kernel, kMax>(std::make_integer_sequence<int, kMax>(), w_row, act, stride, nr,
                                 cols, out, out_stride);
}

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_MATMUL_AVX2_COMMON_H_
