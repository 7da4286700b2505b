// Prefill attention on tensor cores (WMMA, fp16 inputs, fp32 accumulation):
// the path attention.cu takes for batches of more than 64 rows when the head
// size is 64 or 128.
//
// Why: the fp32 CUDA-core kernel spent 185 of 240 ms of a 2048-token
// LLaMA-7B prefill on an H100 in attention (docs/PERFORMANCE.md); the same
// FLOPs on tensor cores take a few ms.
//
// A block owns one query head h, one context split and a tile of 64 batch
// rows, four warps of 16 rows each. Rows of one sequence are processed
// together (the same grouping as attention.cu); for each chunk of 64 cached
// positions it stages K (the representative's K slot) and V (h's own KV head)
// as fp16 in shared memory, computes S = Q K^T with WMMA, runs the online
// softmax on S in fp32 (one row per warp step), rounds P to fp16 and adds
// P V into an fp32 accumulator kept in shared memory.
//
// Precision: Q (pre-scaled by 1/sqrt(head_dim)), K, V and P are rounded to
// fp16, so outputs differ from fp32 attention by ~1e-3 relative (the bound
// tests/gpu/cuda_attention_test.cc states), as in other fp16 engines. CHAI's
// identities still hold bit for bit: a member head's block runs the same
// instructions on its representative's query and K as the representative's
// block does.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/warp_reduce.cuh"

namespace chai::kernels::cuda {
namespace {

constexpr int kMmaThreads = 128;
constexpr int kRows = 64;  // query rows per block: 4 warps x 16
constexpr int kCols = 64;  // cached positions per chunk

// Shared memory layout; row strides padded against bank conflicts, every
// array and every 16-row / 16-column tile start 32-byte aligned (WMMA).
template <int HD>
struct Smem {
  static constexpr int kLdH = HD + 8;     // fp16 Q, K, V rows
  static constexpr int kLdS = kCols + 4;  // fp32 S rows
  static constexpr int kLdP = kCols + 8;  // fp16 P rows
  static constexpr int kLdO = HD + 4;     // fp32 O rows
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(__half) * kRows * kLdH;
  static constexpr size_t kV = kK + sizeof(__half) * kCols * kLdH;
  static constexpr size_t kS = kV + sizeof(__half) * kCols * kLdH;
  static constexpr size_t kP = kS + sizeof(float) * kRows * kLdS;
  static constexpr size_t kO = kP + sizeof(__half) * kRows * kLdP;
  static constexpr size_t kBytes = kO + sizeof(float) * kRows * kLdO;
  static_assert(kK % 32 == 0 && kV % 32 == 0 && kS % 32 == 0 && kP % 32 == 0 && kO % 32 == 0);
};

template <int HD>
__global__ void __launch_bounds__(kMmaThreads)
    PrefillMmaKernel(const float* __restrict__ q, PagedKv kv, int32_t splits, float scale,
                     float* __restrict__ scratch, float* __restrict__ out) {
  using namespace nvcuda;
  using L = Smem<HD>;
  const int h = blockIdx.x;
  const int split = blockIdx.y;
  const int row0 = blockIdx.z * kRows;
  const int n_rows = min(kRows, kv.n_tokens - row0);
  const int nq = kv.n_q_heads;
  const int n_kv = kv.n_kv_heads;
  const int bs = kv.block_size;
  const int kvh = h / (nq / n_kv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wr = warp * 16;  // this warp's first row in the tile

  extern __shared__ __align__(128) unsigned char smem[];
  __half* qs = reinterpret_cast<__half*>(smem + L::kQ);
  __half* ks = reinterpret_cast<__half*>(smem + L::kK);
  __half* vs = reinterpret_cast<__half*>(smem + L::kV);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  __half* ps = reinterpret_cast<__half*>(smem + L::kP);
  float* os = reinterpret_cast<float*>(smem + L::kO);
  __shared__ int s_seq[kRows], s_pos[kRows];
  __shared__ float row_m[kRows], row_l[kRows];
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

    // The representative's queries, scaled, as fp16; other rows zero.
    for (int e = tid; e < kRows * HD; e += kMmaThreads) {
      const int i = e / HD, d = e % HD;
      const float x =
          ((active >> i) & 1ull) ? q[(int64_t{row0 + i} * nq + r) * HD + d] * scale : 0.0f;
      qs[i * L::kLdH + d] = __float2half_rn(x);
      os[i * L::kLdO + d] = 0.0f;
    }
    if (tid < kRows) {
      row_m[tid] = -INFINITY;
      row_l[tid] = 0.0f;
    }
    __syncthreads();

    for (int start = split * kCols; start < glen; start += splits * kCols) {
      // Stage the chunk; positions past the group's length are zeros.
      for (int e = tid; e < kCols * HD; e += kMmaThreads) {
        const int j = e / HD, d = e % HD;
        const int p = start + j;
        float kx = 0.0f, vx = 0.0f;
        if (p < glen) {
          const int b = p / bs, o = p % bs;
          kx = kv.k[(int64_t{pages[b * n_kv + slot]} * bs + o) * HD + d];
          vx = kv.v[((int64_t{table[b]} * bs + o) * n_kv + kvh) * HD + d];
        }
        ks[j * L::kLdH + d] = __float2half_rn(kx);
        vs[j * L::kLdH + d] = __float2half_rn(vx);
      }
      __syncthreads();

      // S[16 rows, 64 positions] = Q K^T for this warp's rows.
#pragma unroll
      for (int n = 0; n < kCols / 16; ++n) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int k = 0; k < HD / 16; ++k) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
          wmma::load_matrix_sync(a, qs + wr * L::kLdH + k * 16, L::kLdH);
          wmma::load_matrix_sync(b, ks + n * 16 * L::kLdH + k * 16, L::kLdH);
          wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(ss + wr * L::kLdS + n * 16, acc, L::kLdS, wmma::mem_row_major);
      }
      __syncwarp();

      // Online softmax over the chunk, one row at a time; lanes own positions
      // lane and lane + 32. Masked: other groups' rows and future positions.
      for (int i = wr; i < wr + 16; ++i) {
        const bool act = (active >> i) & 1ull;
        const int last = act ? s_pos[i] : -1;
        const float s0 = start + lane <= last ? ss[i * L::kLdS + lane] : -INFINITY;
        const float s1 = start + lane + 32 <= last ? ss[i * L::kLdS + lane + 32] : -INFINITY;
        const float m_old = row_m[i];
        const float m_new = fmaxf(m_old, WarpMax(fmaxf(s0, s1)));
        const float p0 = m_new == -INFINITY ? 0.0f : __expf(s0 - m_new);
        const float p1 = m_new == -INFINITY ? 0.0f : __expf(s1 - m_new);
        const float alpha = m_old == -INFINITY ? 0.0f : __expf(m_old - m_new);
        const float sum = WarpSum(p0 + p1);
        ps[i * L::kLdP + lane] = __float2half_rn(p0);
        ps[i * L::kLdP + lane + 32] = __float2half_rn(p1);
        for (int d = lane; d < HD; d += 32) os[i * L::kLdO + d] *= alpha;
        __syncwarp();
        if (lane == 0) {
          row_m[i] = m_new;
          row_l[i] = row_l[i] * alpha + sum;
        }
      }
      __syncwarp();

      // O[16 rows, HD] += P V.
#pragma unroll
      for (int dt = 0; dt < HD / 16; ++dt) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
        wmma::load_matrix_sync(o, os + wr * L::kLdO + dt * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
        for (int k = 0; k < kCols / 16; ++k) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> b;
          wmma::load_matrix_sync(a, ps + wr * L::kLdP + k * 16, L::kLdP);
          wmma::load_matrix_sync(b, vs + k * 16 * L::kLdH + dt * 16, L::kLdH);
          wmma::mma_sync(o, a, b, o);
        }
        wmma::store_matrix_sync(os + wr * L::kLdO + dt * 16, o, L::kLdO, wmma::mem_row_major);
      }
      __syncthreads();  // ks / vs are restaged next chunk
    }

    for (int e = tid; e < kRows * HD; e += kMmaThreads) {
      const int i = e / HD, d = e % HD;
      if (!((active >> i) & 1ull)) continue;
      const int64_t row_head = int64_t{row0 + i} * nq + h;
      const float acc = os[i * L::kLdO + d];
      if (splits == 1) {
        out[row_head * HD + d] = acc / row_l[i];
      } else {
        // attention.cu's partial layout, merged by its CombineKernel.
        const int64_t idx = row_head * splits + split;
        const int64_t parts = int64_t{kv.n_tokens} * nq * splits;
        scratch[idx * HD + d] = acc;
        if (d == 0) {
          scratch[parts * HD + idx] = row_m[i];
          scratch[parts * HD + parts + idx] = row_l[i];
        }
      }
    }
    __syncthreads();  // row_m / row_l / qs / os are reused by the next group
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
