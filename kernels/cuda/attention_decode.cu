// Decode attention (batches of up to 64 rows, one row per block): the path
// attention.cu takes when its plan has tile_rows == 1.
//
// Why: the shared fp32 kernel staged each 32-position chunk in shared memory
// and computed it with a quarter of its threads between barriers; at batch 1
// and 2048 positions of LLaMA-7B it read the K/V cache at 0.86 TB/s, 29% of
// an H100's copy bandwidth (docs/PERFORMANCE.md, run h). Here every warp
// streams its own positions straight from the cache: for each position the
// 32 lanes read K's head_dim floats together (coalesced), reduce the dot
// product by shuffles, then read V's floats the same way. No shared memory
// until the block's four warps merge their online-softmax states at the end.
//
// A block owns one batch row, one query head h and one context split; its
// warps take groups of kGroup consecutive positions, interleaved over warps
// and splits. CHAI (kernels/backend.h): scores use the representative r's
// query against r's K slot; values come from h's own KV head, so a member's
// block reproduces r's probabilities bit for bit.
//
// fp32 throughout, in a fixed order per row: the bits do not depend on the
// batch's other rows.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/cuda_kernels.h"
#include "kernels/cuda/warp_reduce.cuh"

namespace chai::kernels::cuda {
namespace {

constexpr int kDecodeThreads = 128;
constexpr int kDecodeWarps = kDecodeThreads / 32;
constexpr int kGroup = 8;                     // positions a warp scores before one softmax update
constexpr int kSpan = kDecodeWarps * kGroup;  // positions per block per turn

// VPL: head_dim / 32 values per lane (head_dim a multiple of 32, <= 256).
template <int VPL>
__global__ void __launch_bounds__(kDecodeThreads)
    DecodeAttentionKernel(const float* __restrict__ q, PagedKv kv, int32_t splits, float scale,
                          float* __restrict__ scratch, float* __restrict__ out) {
  constexpr int HD = VPL * 32;
  const int h = blockIdx.x;
  const int split = blockIdx.y;
  const int row = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int nq = kv.n_q_heads, n_kv = kv.n_kv_heads, bs = kv.block_size;
  const int kvh = h / (nq / n_kv);
  const int seq = kv.seq[row];
  const int len = kv.pos[row] + 1;
  const int r = kv.score_head[int64_t{seq} * nq + h];
  const int slot = kv.k_slot[int64_t{seq} * nq + r];
  const int32_t* table = kv.block_tables + int64_t{seq} * kv.max_blocks;
  const int32_t* pages = kv.k_pages + int64_t{seq} * kv.max_blocks * n_kv;

  float qv[VPL];
#pragma unroll
  for (int v = 0; v < VPL; ++v) qv[v] = q[(int64_t{row} * nq + r) * HD + lane + 32 * v] * scale;
  float m = -INFINITY, l = 0.0f;
  float acc[VPL];
#pragma unroll
  for (int v = 0; v < VPL; ++v) acc[v] = 0.0f;

  for (int base = (split * kDecodeWarps + warp) * kGroup; base < len; base += splits * kSpan) {
    const int n = min(kGroup, len - base);
    float s[kGroup];
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      s[j] = -INFINITY;
      if (j < n) {
        const int p = base + j;
        const int b = p / bs, o = p - b * bs;
        const float* kr = kv.k + (int64_t{pages[b * n_kv + slot]} * bs + o) * HD;
        float d = 0.0f;
#pragma unroll
        for (int v = 0; v < VPL; ++v) d = fmaf(qv[v], kr[lane + 32 * v], d);
        s[j] = WarpSum(d);
      }
    }
    float mx = m;
#pragma unroll
    for (int j = 0; j < kGroup; ++j) mx = fmaxf(mx, s[j]);
    const float alpha = m == -INFINITY ? 0.0f : expf(m - mx);
    m = mx;
    l *= alpha;
#pragma unroll
    for (int v = 0; v < VPL; ++v) acc[v] *= alpha;
#pragma unroll
    for (int j = 0; j < kGroup; ++j) {
      if (j < n) {
        const float pj = expf(s[j] - mx);
        l += pj;
        const int p = base + j;
        const int b = p / bs, o = p - b * bs;
        const float* vr = kv.v + ((int64_t{table[b]} * bs + o) * n_kv + kvh) * HD;
#pragma unroll
        for (int v = 0; v < VPL; ++v) acc[v] = fmaf(pj, vr[lane + 32 * v], acc[v]);
      }
    }
  }

  // Merge the warps' states in warp order.
  __shared__ float s_m[kDecodeWarps], s_l[kDecodeWarps];
  __shared__ float s_acc[kDecodeWarps][HD];
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int v = 0; v < VPL; ++v) s_acc[warp][lane + 32 * v] = acc[v];
  __syncthreads();
  if (warp != 0) return;
  float big = -INFINITY;
#pragma unroll
  for (int w = 0; w < kDecodeWarps; ++w) big = fmaxf(big, s_m[w]);
  float sum = 0.0f, o[VPL];
#pragma unroll
  for (int v = 0; v < VPL; ++v) o[v] = 0.0f;
#pragma unroll
  for (int w = 0; w < kDecodeWarps; ++w) {
    if (s_m[w] == -INFINITY) continue;  // the warp saw no position
    const float f = expf(s_m[w] - big);
    sum = fmaf(s_l[w], f, sum);
#pragma unroll
    for (int v = 0; v < VPL; ++v) o[v] = fmaf(s_acc[w][lane + 32 * v], f, o[v]);
  }
  const int64_t row_head = int64_t{row} * nq + h;
  if (splits == 1) {
#pragma unroll
    for (int v = 0; v < VPL; ++v) out[row_head * HD + lane + 32 * v] = o[v] / sum;
  } else {
    // attention.cu's partial layout, merged by its CombineKernel.
    const int64_t idx = row_head * splits + split;
    const int64_t parts = int64_t{kv.n_tokens} * nq * splits;
#pragma unroll
    for (int v = 0; v < VPL; ++v) scratch[idx * HD + lane + 32 * v] = o[v];
    if (lane == 0) {
      scratch[parts * HD + idx] = big;
      scratch[parts * HD + parts + idx] = sum;
    }
  }
}

template <int VPL>
cudaError_t Launch(const float* q, const PagedKv& kv, int32_t splits, float scale, float* scratch,
                   float* out, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(kv.n_q_heads), static_cast<unsigned>(splits),
                  static_cast<unsigned>(kv.n_tokens));
  DecodeAttentionKernel<VPL>
      <<<grid, kDecodeThreads, 0, stream>>>(q, kv, splits, scale, scratch, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchDecodeAttention(const float* q, const PagedKv& kv, int32_t splits, float scale,
                                  float* scratch, float* out, cudaStream_t stream) {
  if (kv.n_tokens > 65535) return cudaErrorInvalidConfiguration;
  switch (kv.head_dim / 32) {
    case 1:
      return Launch<1>(q, kv, splits, scale, scratch, out, stream);
    case 2:
      return Launch<2>(q, kv, splits, scale, scratch, out, stream);
    case 3:
      return Launch<3>(q, kv, splits, scale, scratch, out, stream);
    case 4:
      return Launch<4>(q, kv, splits, scale, scratch, out, stream);
    case 5:
      return Launch<5>(q, kv, splits, scale, scratch, out, stream);
    case 6:
      return Launch<6>(q, kv, splits, scale, scratch, out, stream);
    case 7:
      return Launch<7>(q, kv, splits, scale, scratch, out, stream);
    case 8:
      return Launch<8>(q, kv, splits, scale, scratch, out, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

}  // namespace chai::kernels::cuda
