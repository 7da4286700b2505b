// Prefill attention on tensor cores (mma.sync m16n8k16, fp16 inputs, fp32
// accumulation): the path attention.cu takes for batches of more than 64 rows
// when the head size is 64 or 128.
//
// Why: the fp32 CUDA-core kernel spent 185 of 240 ms of a 2048-token
// LLaMA-7B prefill on an H100 in attention; a first tensor-core version with
// WMMA (O kept in shared memory, one softmax row per warp step) still took
// 108 ms (docs/PERFORMANCE.md). This one follows FlashAttention-2: each warp
// keeps its 16 rows' queries, scores, probabilities and output in registers,
// in the PTX ISA's documented m16n8k16 fragment layouts, so the online
// softmax rescales registers and P feeds the second product without a trip
// through shared memory.
//
// A block owns one query head h, one context split and a tile of 64 batch
// rows (4 warps x 16). Rows of one sequence are processed together (the
// grouping of attention.cu); for each chunk of 64 cached positions the block
// stages K (the representative's K slot) and V (h's own KV head) as fp16 in
// shared memory; warps whose rows all precede the chunk skip its math.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .f16 inputs), with g = lane/4
// and q = lane%4: A (16x16, row-major) a0 = A[g][2q..2q+1], a1 = A[g+8][2q..],
// a2 = A[g][2q+8..], a3 = A[g+8][2q+8..]; B (16x8) b0 = B[2q..2q+1][g],
// b1 = B[2q+8..2q+9][g]; C/D (16x8, f32) c0,c1 = C[g][2q..2q+1], c2,c3 =
// C[g+8][2q..2q+1].
//
// Precision: Q (pre-scaled by 1/sqrt(head_dim)), K, V and P are rounded to
// fp16, so outputs differ from fp32 attention by ~1e-3 relative (the bound
// tests/gpu/cuda_attention_test.cc states). CHAI's identities still hold bit
// for bit: a member head's block runs the same instructions on its
// representative's query and K as the representative's block does.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"

namespace chai::kernels::cuda {
namespace {

constexpr int kMmaThreads = 128;
constexpr int kRows = 64;  // query rows per block: 4 warps x 16
constexpr int kCols = 64;  // cached positions per chunk

template <int HD>
struct Smem {
  static constexpr int kLd = HD + 8;  // fp16 row stride: 16-byte aligned rows, fewer conflicts
  static constexpr size_t kK = 0;
  static constexpr size_t kV = kK + sizeof(__half) * kCols * kLd;
  static constexpr size_t kBytes = kV + sizeof(__half) * kCols * kLd;
};

__device__ __forceinline__ uint32_t Pack(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

// d += a * b for one m16n8k16 tile.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// The B fragment of rows k0..k0+15 (positions), columns n0..n0+7 of a
// row-major fp16 matrix in shared memory, transposed on the way (V in P V).
__device__ __forceinline__ void LoadBTrans(const __half* m, int ld, int k0, int n0, int lane,
                                           uint32_t& b0, uint32_t& b1) {
  const __half* row = m + (k0 + (lane & 15)) * ld + n0;
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(b0), "=r"(b1)
               : "r"(addr));
}

template <int HD>
__global__ void __launch_bounds__(kMmaThreads, 3)
    PrefillMmaKernel(const float* __restrict__ q, PagedKv kv, int32_t splits, float scale,
                     float* __restrict__ scratch, float* __restrict__ out) {
  using L = Smem<HD>;
  constexpr int kKSteps = HD / 16;  // k-steps of Q K^T
  constexpr int kDTiles = HD / 8;   // n-tiles of O
  constexpr int kSTiles = kCols / 8;
  const int h = blockIdx.x;
  const int split = blockIdx.y;
  const int row0 = blockIdx.z * kRows;
  const int n_rows = min(kRows, kv.n_tokens - row0);
  const int nq = kv.n_q_heads;
  const int n_kv = kv.n_kv_heads;
  const int bs = kv.block_size;
  const int kvh = h / (nq / n_kv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, qd = lane & 3;
  const int r0 = warp * 16 + g, r1 = r0 + 8;  // this thread's two rows in the tile

  extern __shared__ __align__(128) unsigned char smem[];
  __half* ks = reinterpret_cast<__half*>(smem + L::kK);
  __half* vs = reinterpret_cast<__half*>(smem + L::kV);
  __shared__ int s_seq[kRows], s_pos[kRows];
  __shared__ unsigned long long s_pending, s_active;
  __shared__ int s_gseq, s_glen;

  if (tid < kRows) {
    s_seq[tid] = tid < n_rows ? kv.seq[row0 + tid] : -1;
    s_pos[tid] = tid < n_rows ? kv.pos[row0 + tid] : -1;
  }
  if (tid == 0) s_pending = n_rows >= 64 ? ~0ull : (1ull << n_rows) - 1ull;
  __syncthreads();

  for (;;) {
    // Next group: the pending rows that share the first pending row's sequence.
    if (tid == 0) {
      const unsigned long long pending = s_pending;
      unsigned long long active = 0;
      int glen = 0, gseq = 0;
      if (pending != 0) {
        gseq = s_seq[__ffsll(static_cast<long long>(pending)) - 1];
        for (int i = 0; i < n_rows; ++i) {
          if (((pending >> i) & 1ull) && s_seq[i] == gseq) {
            active |= 1ull << i;
            glen = max(glen, s_pos[i] + 1);
          }
        }
      }
      s_active = active;
      s_gseq = gseq;
      s_glen = glen;
      s_pending = pending & ~active;
    }
    __syncthreads();
    const unsigned long long active = s_active;
    if (active == 0) break;
    const int gseq = s_gseq, glen = s_glen;
    const int r = kv.score_head[int64_t{gseq} * nq + h];
    const int slot = kv.k_slot[int64_t{gseq} * nq + r];
    const int32_t* table = kv.block_tables + int64_t{gseq} * kv.max_blocks;
    const int32_t* pages = kv.k_pages + int64_t{gseq} * kv.max_blocks * n_kv;

    // This thread's rows: active in the group, and their last position.
    const bool act0 = (active >> r0) & 1ull, act1 = (active >> r1) & 1ull;
    const int last0 = act0 ? s_pos[r0] : -1, last1 = act1 ? s_pos[r1] : -1;
    int warp_last = max(last0, last1);
    for (int off = 16; off > 0; off >>= 1)
      warp_last = max(warp_last, __shfl_xor_sync(0xffffffffu, warp_last, off));

    // The representative's queries, scaled, as A fragments; other rows zero.
    uint32_t qa[kKSteps][4];
    {
      const float* q0 = q + (int64_t{row0 + r0} * nq + r) * HD;
      const float* q1 = q + (int64_t{row0 + r1} * nq + r) * HD;
#pragma unroll
      for (int k = 0; k < kKSteps; ++k) {
        const int c = k * 16 + 2 * qd;
        const float2 x00 = act0 ? *reinterpret_cast<const float2*>(q0 + c) : float2{0, 0};
        const float2 x01 = act0 ? *reinterpret_cast<const float2*>(q0 + c + 8) : float2{0, 0};
        const float2 x10 = act1 ? *reinterpret_cast<const float2*>(q1 + c) : float2{0, 0};
        const float2 x11 = act1 ? *reinterpret_cast<const float2*>(q1 + c + 8) : float2{0, 0};
        qa[k][0] = Pack(x00.x * scale, x00.y * scale);
        qa[k][1] = Pack(x10.x * scale, x10.y * scale);
        qa[k][2] = Pack(x01.x * scale, x01.y * scale);
        qa[k][3] = Pack(x11.x * scale, x11.y * scale);
      }
    }
    float o[kDTiles][4];
#pragma unroll
    for (int t = 0; t < kDTiles; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY;  // running max of rows r0, r1
    float l0 = 0.0f, l1 = 0.0f;            // this thread's share of the running sums

    for (int start = split * kCols; start < glen; start += splits * kCols) {
      // Stage the chunk, four floats at a time; positions past glen are zeros.
      __syncthreads();  // the previous chunk's fragments are read
      for (int e = tid; e < kCols * (HD / 4); e += kMmaThreads) {
        const int j = e / (HD / 4), c = (e % (HD / 4)) * 4;
        const int p = start + j;
        float4 kx = {0, 0, 0, 0}, vx = {0, 0, 0, 0};
        if (p < glen) {
          const int b = p / bs, off = p - b * bs;
          kx = *reinterpret_cast<const float4*>(
              kv.k + (int64_t{pages[b * n_kv + slot]} * bs + off) * HD + c);
          vx = *reinterpret_cast<const float4*>(
              kv.v + ((int64_t{table[b]} * bs + off) * n_kv + kvh) * HD + c);
        }
        *reinterpret_cast<uint2*>(ks + j * L::kLd + c) =
            make_uint2(Pack(kx.x, kx.y), Pack(kx.z, kx.w));
        *reinterpret_cast<uint2*>(vs + j * L::kLd + c) =
            make_uint2(Pack(vx.x, vx.y), Pack(vx.z, vx.w));
      }
      __syncthreads();
      if (start > warp_last) continue;  // every row of this warp precedes the chunk

      // S[16, 64] = Q K^T.
      float s[kSTiles][4];
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        s[t][0] = s[t][1] = s[t][2] = s[t][3] = 0.0f;
        const __half* krow = ks + (t * 8 + g) * L::kLd + 2 * qd;
#pragma unroll
        for (int k = 0; k < kKSteps; ++k) {
          const uint32_t b0 = *reinterpret_cast<const uint32_t*>(krow + k * 16);
          const uint32_t b1 = *reinterpret_cast<const uint32_t*>(krow + k * 16 + 8);
          Mma(s[t], qa[k], b0, b1);
        }
      }
      // Mask, then the online softmax of rows r0 (s[.][0..1]) and r1 (s[.][2..3]).
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        const int p = start + t * 8 + 2 * qd;
        if (p > last0) s[t][0] = -INFINITY;
        if (p + 1 > last0) s[t][1] = -INFINITY;
        if (p > last1) s[t][2] = -INFINITY;
        if (p + 1 > last1) s[t][3] = -INFINITY;
        mx0 = fmaxf(mx0, fmaxf(s[t][0], s[t][1]));
        mx1 = fmaxf(mx1, fmaxf(s[t][2], s[t][3]));
      }
      // The four lanes of a quad hold one row between them.
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
      const float alpha0 = m0 == -INFINITY ? 0.0f : __expf(m0 - n0);
      const float alpha1 = m1 == -INFINITY ? 0.0f : __expf(m1 - n1);
      m0 = n0;
      m1 = n1;
      float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
      for (int t = 0; t < kSTiles; ++t) {
        s[t][0] = s[t][0] == -INFINITY ? 0.0f : __expf(s[t][0] - n0);
        s[t][1] = s[t][1] == -INFINITY ? 0.0f : __expf(s[t][1] - n0);
        s[t][2] = s[t][2] == -INFINITY ? 0.0f : __expf(s[t][2] - n1);
        s[t][3] = s[t][3] == -INFINITY ? 0.0f : __expf(s[t][3] - n1);
        sum0 += s[t][0] + s[t][1];
        sum1 += s[t][2] + s[t][3];
      }
      l0 = l0 * alpha0 + sum0;
      l1 = l1 * alpha1 + sum1;
#pragma unroll
      for (int t = 0; t < kDTiles; ++t) {
        o[t][0] *= alpha0;
        o[t][1] *= alpha0;
        o[t][2] *= alpha1;
        o[t][3] *= alpha1;
      }
      // O[16, HD] += P V: the score tiles 2k and 2k+1 are P's A fragment k.
#pragma unroll
      for (int k = 0; k < kCols / 16; ++k) {
        const uint32_t pa[4] = {Pack(s[2 * k][0], s[2 * k][1]), Pack(s[2 * k][2], s[2 * k][3]),
                                Pack(s[2 * k + 1][0], s[2 * k + 1][1]),
                                Pack(s[2 * k + 1][2], s[2 * k + 1][3])};
#pragma unroll
        for (int t = 0; t < kDTiles; ++t) {
          uint32_t b0, b1;
          LoadBTrans(vs, L::kLd, k * 16, t * 8, lane, b0, b1);
          Mma(o[t], pa, b0, b1);
        }
      }
    }

    // Row sums over the quad; then outputs (or attention.cu's partials).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const int64_t parts = int64_t{kv.n_tokens} * nq * splits;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      if (!(half == 0 ? act0 : act1)) continue;
      const int row = row0 + (half == 0 ? r0 : r1);
      const float l = half == 0 ? l0 : l1;
      const float m = half == 0 ? m0 : m1;
      const int64_t row_head = int64_t{row} * nq + h;
      if (splits == 1) {
        float* dst = out + row_head * HD + 2 * qd;
        const float inv = 1.0f / l;
#pragma unroll
        for (int t = 0; t < kDTiles; ++t) {
          *reinterpret_cast<float2*>(dst + t * 8) =
              make_float2(o[t][2 * half] * inv, o[t][2 * half + 1] * inv);
        }
      } else {
        const int64_t idx = row_head * splits + split;
        float* dst = scratch + idx * HD + 2 * qd;
#pragma unroll
        for (int t = 0; t < kDTiles; ++t) {
          *reinterpret_cast<float2*>(dst + t * 8) = make_float2(o[t][2 * half], o[t][2 * half + 1]);
        }
        if (qd == 0) {
          scratch[parts * HD + idx] = m;
          scratch[parts * HD + parts + idx] = l;
        }
      }
    }
    __syncthreads();  // s_active and the staged chunk are reused by the next group
  }
}

}  // namespace

bool MmaAttentionHeadDim(int32_t head_dim) { return head_dim == 64 || head_dim == 128; }

cudaError_t ConfigureMmaAttention() {
  cudaError_t e =
      cudaFuncSetAttribute(PrefillMmaKernel<64>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(Smem<64>::kBytes));
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(PrefillMmaKernel<128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(Smem<128>::kBytes));
}

cudaError_t LaunchMmaAttention(const float* q, const PagedKv& kv, int32_t splits, float scale,
                               float* scratch, float* out, cudaStream_t stream) {
  const unsigned tiles = static_cast<unsigned>((kv.n_tokens + kRows - 1) / kRows);
  if (tiles > 65535u) return cudaErrorInvalidConfiguration;
  const dim3 grid(static_cast<unsigned>(kv.n_q_heads), static_cast<unsigned>(splits), tiles);
  if (kv.head_dim == 64) {
    PrefillMmaKernel<64>
        <<<grid, kMmaThreads, Smem<64>::kBytes, stream>>>(q, kv, splits, scale, scratch, out);
  } else if (kv.head_dim == 128) {
    PrefillMmaKernel<128>
        <<<grid, kMmaThreads, Smem<128>::kBytes, stream>>>(q, kv, splits, scale, scratch, out);
  } else {
    return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace chai::kernels::cuda
