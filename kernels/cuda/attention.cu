// Paged causal attention with CHAI head maps, and the cache writes it reads.
//
// This file's kernel serves prefill at head sizes other than 64 and 128
// (flash-attention style, fp32 throughout): a block owns one query head h, one context split
// and a tile of `TQ` consecutive batch rows. It walks the cached positions in
// chunks of kBk = 32 (chunks split, split + splits, ... so a long context is
// shared by `splits` blocks), stages each chunk's K and V rows in shared
// memory, and keeps a running max / sum per row (online softmax). With
// splits > 1 each block writes an unnormalised partial (acc, max, sum) and
// CombineKernel merges them.
//
// Tiles (TQ = 16) pay off when rows of one sequence are consecutive (a
// prefill chunk): each K/V chunk is loaded once for all of them. A tile that
// mixes sequences is processed one sequence at a time. Batches of up to 64
// rows go to the decode kernel (attention_decode.cu, one row per block, more
// splits); batches of more than 64 rows with head_dim 64 or 128 go to the
// tensor-core kernel (attention_mma.cu). Both share this file's split
// layout and CombineKernel; this kernel keeps the other head sizes' prefill.
//
// CHAI (kernels/backend.h, KvLayer): head h scores with the query of its
// representative r = score_head[h] against K slot k_slot[r], and multiplies
// the probabilities with its OWN values (KV head h / group). A member's block
// recomputes r's scores with the same instructions on the same inputs, so it
// uses r's probabilities bit for bit without waiting on r's block; the member
// and representative blocks of a token are adjacent in the grid (h is
// blockIdx.x), so the representative's K rows come from L2, not DRAM.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/warp_reduce.cuh"

namespace chai::kernels::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kBk = 32;  // positions per chunk; the softmax step maps one to each lane
constexpr int kMaxHeadDim = 256;
constexpr int kTileRows = 16;

template <int TQ>
constexpr int64_t SmemBytes(int head_dim) {
  return int64_t{sizeof(float)} *
         (TQ * head_dim + kBk * (head_dim + 1) + kBk * head_dim + TQ * kBk + 3 * TQ);
}

template <int TQ>
__global__ void __launch_bounds__(kThreads)
    AttentionKernel(const float* __restrict__ q, PagedKv kv, int32_t splits, float scale,
                    float* __restrict__ scratch, float* __restrict__ out) {
  static_assert(kBk == 32 && TQ >= 1 && TQ <= 32);
  constexpr int kMaxAcc = (TQ * kMaxHeadDim + kThreads - 1) / kThreads;
  const int h = blockIdx.x;
  const int split = blockIdx.y;
  const int row0 = blockIdx.z * TQ;
  const int n_rows = min(TQ, kv.n_tokens - row0);
  const int hd = kv.head_dim;
  const int nq = kv.n_q_heads;
  const int n_kv = kv.n_kv_heads;
  const int bs = kv.block_size;
  const int kvh = h / (nq / n_kv);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  extern __shared__ float smem[];
  float* qs = smem;                 // [TQ, hd]
  float* ks = qs + TQ * hd;         // [kBk, hd + 1] (padded: lanes read different rows)
  float* vs = ks + kBk * (hd + 1);  // [kBk, hd]
  float* ps = vs + kBk * hd;        // [TQ, kBk] scores, then probabilities
  float* row_m = ps + TQ * kBk;     // [TQ] running max
  float* row_l = row_m + TQ;        // [TQ] running sum
  float* row_alpha = row_l + TQ;    // [TQ] rescale factor of this chunk
  __shared__ int s_seq[TQ], s_pos[TQ];
  __shared__ unsigned s_pending, s_active;
  __shared__ int s_gseq, s_glen;

  if (tid < n_rows) {
    s_seq[tid] = kv.seq[row0 + tid];
    s_pos[tid] = kv.pos[row0 + tid];
  }
  if (tid == 0) s_pending = n_rows >= 32 ? ~0u : (1u << n_rows) - 1u;
  __syncthreads();

  for (;;) {
    // Next group: the pending rows that share the first pending row's sequence.
    if (tid == 0) {
      const unsigned pending = s_pending;
      unsigned active = 0;
      int glen = 0, gseq = 0;
      if (pending != 0) {
        gseq = s_seq[__ffs(pending) - 1];
        for (int i = 0; i < n_rows; ++i) {
          if (((pending >> i) & 1u) && s_seq[i] == gseq) {
            active |= 1u << i;
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
    const unsigned active = s_active;
    if (active == 0) break;
    const int gseq = s_gseq, glen = s_glen;
    const int r = kv.score_head[int64_t{gseq} * nq + h];
    const int slot = kv.k_slot[int64_t{gseq} * nq + r];
    const int32_t* table = kv.block_tables + int64_t{gseq} * kv.max_blocks;
    const int32_t* pages = kv.k_pages + int64_t{gseq} * kv.max_blocks * n_kv;

    for (int e = tid; e < TQ * hd; e += kThreads) {
      const int i = e / hd, d = e % hd;
      qs[e] = ((active >> i) & 1u) ? q[(int64_t{row0 + i} * nq + r) * hd + d] : 0.0f;
    }
    if (tid < TQ) {
      row_m[tid] = -INFINITY;
      row_l[tid] = 0.0f;
    }
    float acc[kMaxAcc];
#pragma unroll
    for (int m = 0; m < kMaxAcc; ++m) acc[m] = 0.0f;
    __syncthreads();

    for (int start = split * kBk; start < glen; start += splits * kBk) {
      // Stage the chunk; rows past the group's length are zeros, so their
      // zero probabilities never meet stale (possibly non-finite) values.
      for (int j = warp; j < kBk; j += kWarps) {
        const int p = start + j;
        float* krow = ks + j * (hd + 1);
        float* vrow = vs + j * hd;
        if (p < glen) {
          const int b = p / bs, o = p % bs;
          const float* kg = kv.k + (int64_t{pages[b * n_kv + slot]} * bs + o) * hd;
          const float* vg = kv.v + ((int64_t{table[b]} * bs + o) * n_kv + kvh) * hd;
          for (int d = lane; d < hd; d += 32) {
            krow[d] = kg[d];
            vrow[d] = vg[d];
          }
        } else {
          for (int d = lane; d < hd; d += 32) {
            krow[d] = 0.0f;
            vrow[d] = 0.0f;
          }
        }
      }
      __syncthreads();
      for (int e = tid; e < TQ * kBk; e += kThreads) {
        const int i = e / kBk, j = e % kBk;
        float s = -INFINITY;
        if (((active >> i) & 1u) && start + j <= s_pos[i]) {
          const float* qi = qs + i * hd;
          const float* kj = ks + j * (hd + 1);
          float dot = 0.0f;
          for (int d = 0; d < hd; ++d) dot = fmaf(qi[d], kj[d], dot);
          s = dot * scale;
        }
        ps[e] = s;
      }
      __syncthreads();
      for (int i = warp; i < TQ; i += kWarps) {
        const float s = ps[i * kBk + lane];
        const float m_old = row_m[i];
        const float m_new = fmaxf(m_old, WarpMax(s));
        const float p = m_new == -INFINITY ? 0.0f : expf(s - m_new);
        const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        const float sum = WarpSum(p);
        ps[i * kBk + lane] = p;
        if (lane == 0) {
          row_m[i] = m_new;
          row_l[i] = row_l[i] * alpha + sum;
          row_alpha[i] = alpha;
        }
      }
      __syncthreads();
#pragma unroll
      for (int m = 0; m < kMaxAcc; ++m) {
        const int e = tid + m * kThreads;
        if (e < TQ * hd) {
          const int i = e / hd, d = e % hd;
          const float* pi = ps + i * kBk;
          float a = acc[m] * row_alpha[i];
          for (int j = 0; j < kBk; ++j) a = fmaf(pi[j], vs[j * hd + d], a);
          acc[m] = a;
        }
      }
      __syncthreads();
    }

#pragma unroll
    for (int m = 0; m < kMaxAcc; ++m) {
      const int e = tid + m * kThreads;
      if (e < TQ * hd) {
        const int i = e / hd, d = e % hd;
        if ((active >> i) & 1u) {
          const int64_t row_head = int64_t{row0 + i} * nq + h;
          if (splits == 1) {
            out[row_head * hd + d] = acc[m] / row_l[i];
          } else {
            const int64_t idx = row_head * splits + split;
            const int64_t parts = int64_t{kv.n_tokens} * nq * splits;
            scratch[idx * hd + d] = acc[m];
            if (d == 0) {
              scratch[parts * hd + idx] = row_m[i];
              scratch[parts * hd + parts + idx] = row_l[i];
            }
          }
        }
      }
    }
    __syncthreads();  // row_m / row_l / qs are reused by the next group
  }
}

// Merges the splits of one (row, head): out = sum_s e^(m_s - M) acc_s /
// sum_s e^(m_s - M) l_s. A split that saw no position has m = -inf, l = 0.
__global__ void CombineKernel(const float* __restrict__ scratch, int32_t n_tokens, int32_t nq,
                              int32_t splits, int32_t hd, float* __restrict__ out) {
  const int64_t row_head = blockIdx.x;
  const int64_t parts = int64_t{n_tokens} * nq * splits;
  const float* part_m = scratch + parts * hd;
  const float* part_l = part_m + parts;
  const int64_t base = row_head * splits;
  float big = -INFINITY;
  for (int s = 0; s < splits; ++s) big = fmaxf(big, part_m[base + s]);
  float denom = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float m = part_m[base + s];
    if (m != -INFINITY) denom += expf(m - big) * part_l[base + s];
  }
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float num = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float m = part_m[base + s];
      if (m != -INFINITY) num += expf(m - big) * scratch[(base + s) * hd + d];
    }
    out[row_head * hd + d] = num / denom;
  }
}

// One block per token: every KV head's values, and each used K slot's keys.
__global__ void StoreKvKernel(const float* __restrict__ k, const float* __restrict__ v,
                              PagedKv kv) {
  const int t = blockIdx.x;
  const int s = kv.seq[t];
  const int p = kv.pos[t];
  const int hd = kv.head_dim, n_kv = kv.n_kv_heads, bs = kv.block_size;
  const int b = p / bs, o = p % bs;
  const int64_t block = kv.block_tables[int64_t{s} * kv.max_blocks + b];
  const int32_t* src = kv.k_src + int64_t{s} * n_kv;
  const int32_t* pages = kv.k_pages + (int64_t{s} * kv.max_blocks + b) * n_kv;
  for (int e = threadIdx.x; e < n_kv * hd; e += blockDim.x) {
    const int j = e / hd, d = e % hd;
    kv.v[((block * bs + o) * n_kv + j) * hd + d] = v[(int64_t{t} * n_kv + j) * hd + d];
    const int head = src[j];
    if (head >= 0) {
      kv.k[(int64_t{pages[j]} * bs + o) * hd + d] = k[(int64_t{t} * n_kv + head) * hd + d];
    }
  }
}

}  // namespace

AttentionPlan PlanAttention(int32_t n_tokens, int32_t n_q_heads, int32_t head_dim,
                            int32_t sm_count) {
  AttentionPlan plan;
  if (n_tokens <= 64) {
    plan.tile_rows = 1;
  } else {
    plan.tile_rows = MmaAttentionHeadDim(head_dim) ? kMmaTileRows : kTileRows;
  }
  const int64_t tiles = (int64_t{n_tokens} + plan.tile_rows - 1) / plan.tile_rows;
  const int64_t blocks = tiles * n_q_heads;
  // About four blocks per SM (eight for the decode kernel, whose blocks are
  // short streams); more splits only add empty blocks and combine work.
  const int64_t per_sm = plan.tile_rows == 1 ? 8 : 4;
  const int64_t want = (per_sm * (sm_count > 0 ? sm_count : 1) + blocks - 1) / blocks;
  plan.splits = static_cast<int32_t>(want < 1 ? 1 : (want > 32 ? 32 : want));
  return plan;
}

int64_t AttentionScratchFloats(const AttentionPlan& plan, int32_t n_tokens, int32_t n_q_heads,
                               int32_t head_dim) {
  if (plan.splits <= 1) return 0;
  return int64_t{n_tokens} * n_q_heads * plan.splits * (head_dim + 2);
}

cudaError_t ConfigureAttentionKernels() {
  cudaError_t e = ConfigureMmaAttention();
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(AttentionKernel<kTileRows>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(SmemBytes<kTileRows>(kMaxHeadDim)));
}

cudaError_t LaunchStoreKv(const float* k, const float* v, const PagedKv& kv, cudaStream_t stream) {
  if (kv.n_tokens <= 0) return cudaSuccess;
  StoreKvKernel<<<kv.n_tokens, kThreads, 0, stream>>>(k, v, kv);
  return cudaGetLastError();
}

cudaError_t LaunchAttention(const float* q, const PagedKv& kv, const AttentionPlan& plan,
                            float* scratch, float* out, cudaStream_t stream) {
  if (kv.n_tokens <= 0) return cudaSuccess;
  if (!AttentionHeadDimSupported(kv.head_dim) || kv.n_kv_heads <= 0 ||
      kv.n_q_heads % kv.n_kv_heads != 0 || plan.splits < 1 || (plan.splits > 1 && !scratch)) {
    return cudaErrorInvalidValue;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(kv.head_dim));
  cudaError_t e;
  if (plan.tile_rows == kMmaTileRows) {
    e = LaunchMmaAttention(q, kv, plan.splits, scale, scratch, out, stream);
  } else if (plan.tile_rows == 1) {
    e = LaunchDecodeAttention(q, kv, plan.splits, scale, scratch, out, stream);
  } else if (plan.tile_rows == kTileRows) {
    const unsigned tiles = static_cast<unsigned>((kv.n_tokens + kTileRows - 1) / kTileRows);
    if (tiles > 65535u) return cudaErrorInvalidConfiguration;
    const dim3 grid(static_cast<unsigned>(kv.n_q_heads), static_cast<unsigned>(plan.splits), tiles);
    AttentionKernel<kTileRows><<<grid, kThreads, SmemBytes<kTileRows>(kv.head_dim), stream>>>(
        q, kv, plan.splits, scale, scratch, out);
    e = cudaGetLastError();
  } else {
    return cudaErrorInvalidValue;
  }
  if (e != cudaSuccess || plan.splits == 1) return e;
  CombineKernel<<<static_cast<unsigned>(int64_t{kv.n_tokens} * kv.n_q_heads), kThreads, 0,
                  stream>>>(scratch, kv.n_tokens, kv.n_q_heads, plan.splits, kv.head_dim, out);
  return cudaGetLastError();
}

}  // namespace chai::kernels::cuda
