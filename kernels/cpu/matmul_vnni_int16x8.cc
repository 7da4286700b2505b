// AVX-512 VNNI build of the 16-bit-activation kernels over row-interleaved
// weights (matmul_int16x8_group.inc has the kernel and its numerics): one
// vpdpwssd (multiply, pair-add and accumulate in one instruction) per
// activation pair and tile row where the AVX2 build needs a madd and an add.
// Still 256-bit vectors on the same 8-row layout, so the two builds share
// the weights and give the same bits (tested in matmul_test.cc).
//
// Chosen at run time (MatMul, Avx2Int16GroupDot's callers) when the CPU has
// AVX512-VNNI, -VL and -BW (CpuHasAvx512Vnni); the AVX-VNNI (VEX) form that
// some CPUs without AVX-512 have is not built.
#include <cpuid.h>

#include <cstring>

#include "kernels/cpu/interleave.h"
#include "kernels/cpu/matmul_avx2_common.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu::internal {
namespace {

#define CHAI_GROUP_FN __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))
#define CHAI_GROUP_INLINE \
  __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni"), always_inline)) inline

CHAI_GROUP_INLINE __m256i Dot1(__m256i isum, __m256i w, __m256i x) {
  return _mm256_dpwssd_epi32(isum, w, x);
}

CHAI_GROUP_INLINE __m256i Dot2(__m256i isum, __m256i lo, __m256i xl, __m256i hi, __m256i xh) {
  return _mm256_dpwssd_epi32(_mm256_dpwssd_epi32(isum, lo, xl), hi, xh);
}

// vpdpwssd accumulates in place, so one sum per row would be a chain of 16
// dependent instructions per block; short tiles split it.
constexpr int SumChains(int nr) { return nr == 1 ? 4 : 2; }

#include "kernels/cpu/matmul_int16x8_group.inc"

#undef CHAI_GROUP_FN
#undef CHAI_GROUP_INLINE

}  // namespace

bool CpuHasAvx512Vnni() {
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    // CPUID leaf 7: EBX bit 31 AVX512VL, ECX bit 11 AVX512_VNNI; the OS must
    // also save the ZMM state (XCR0 bits 5-7), which __builtin_cpu_supports
    // checks for avx512f.
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    // EBX bit 30: AVX512BW (the 16-row kernels widen bytes in 512 bits).
    return CpuHasAvx2Fma() && __builtin_cpu_supports("avx512f") && (ebx & (1u << 30)) != 0 &&
           (ebx & (1u << 31)) != 0 && (ecx & (1u << 11)) != 0;
  }();
  return has;
}

RowDotFn VnniInt16GroupDot(DType t) { return GroupDotFor(t); }

}  // namespace chai::kernels::cpu::internal
