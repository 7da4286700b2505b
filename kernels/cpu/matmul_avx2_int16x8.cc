// AVX2 build of the 16-bit-activation kernels over row-interleaved weights
// (matmul_int16x8_group.inc has the kernel and its numerics): one
// _mm256_madd_epi16 and one add per activation pair and tile row. Cost per
// 32 weights of one row at batch 1: 2 madd, 2 add, 3/8 of the widening, ~1
// of float work (about 7 vector operations), against ~11 for the row-major
// kernel (matmul_avx2_int16.cc).
#include <cstring>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

#define CHAI_GROUP_FN CHAI_AVX2
#define CHAI_GROUP_INLINE CHAI_AVX2_INLINE

CHAI_AVX2_INLINE __m256i Dot1(__m256i isum, __m256i w, __m256i x) {
  return _mm256_add_epi32(isum, _mm256_madd_epi16(w, x));
}

CHAI_AVX2_INLINE __m256i Dot2(__m256i isum, __m256i lo, __m256i xl, __m256i hi, __m256i xh) {
  return _mm256_add_epi32(isum,
                          _mm256_add_epi32(_mm256_madd_epi16(lo, xl), _mm256_madd_epi16(hi, xh)));
}

// madd and add: the one add per pair is cheap, so one sum per row.
constexpr int SumChains(int) { return 1; }

#include "kernels/cpu/matmul_int16x8_group.inc"

#undef CHAI_GROUP_FN
#undef CHAI_GROUP_INLINE

}  // namespace

RowDotFn Avx2Int16GroupDot(DType t) { return GroupDotFor(t); }

}  // namespace chai::kernels::cpu::internal
