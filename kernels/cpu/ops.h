// CPU implementations of the non-matmul Backend ops (see kernels/backend.h
// for each op's contract and tensor shapes). CpuBackend forwards to these;
// they are separate so tests and benchmarks can call them directly.
//
// Every op computes each output row from that row's inputs alone, with a
// fixed float reduction order, so results do not depend on the batch or the
// thread count. Ops that parallelise take a ThreadPool (not owned).
//
// Thread-safety: pure functions of their arguments; the pool serialises
// concurrent calls.
#ifndef CHAI_KERNELS_CPU_OPS_H_
#define CHAI_KERNELS_CPU_OPS_H_

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace chai::kernels::cpu {

// out: [n, table.cols].
void EmbedRows(const WeightView& table, const int32_t* ids, int32_t n, float* out);

// x, out: [n, dim]; w: [dim]. out may alias x. allow_avx2 = false forces the
// portable form (tests: the AVX2 one must give the same bits).
void RmsNormRows(const float* x, const float* w, int32_t n, int32_t dim, float eps, float* out,
                 bool allow_avx2 = true);

// x: [n, heads, head_dim] rotated in place; pos: [n].
void RopeRows(float* x, const int32_t* pos, int32_t n, int32_t heads, const RopeParams& rope);

// The vector instruction sets of the kernels that have several forms, in
// order. A kernel takes the widest this CPU has up to a cap (tests: every
// form must give the portable one's bits).
enum class SimdIsa { kPortable, kAvx2, kAvx512 };

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) with FastExp
// (fast_exp.h). out may alias gate or up.
void SwiGluValues(const float* gate, const float* up, int64_t n, float* out,
                  SimdIsa max_isa = SimdIsa::kAvx512);
void AddValues(float* x, const float* y, int64_t n);
// Row by row, AddValues then RmsNormRows (their bits), while the row is in
// L1. x, y, out: [n, dim]; out may alias y.
void AddRmsNormRows(float* x, const float* y, const float* w, int32_t n, int32_t dim, float eps,
                    float* out);

// dst[i, :] = src[rows[i], :]. dst: [n, dim].
void GatherRowsOf(const float* src, const int32_t* rows, int32_t n, int32_t dim, float* dst);

// k, v: [n_tokens, kv.n_kv_heads, head_dim]; K slots per kv.k_src, each K
// page transposed, [head_dim, block_size] (kernels/cpu/attention_kernels.h).
// The cache holds `kv_dtype` elements (kF32 or kF16; fp16 rounds to nearest
// even, Fp32ToFp16).
void StoreKvRows(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv,
                 DType kv_dtype);

// q, out: [n_tokens, n_q_heads, head_dim], through the head maps of kv
// (Backend::Attention). Contexts past 256 positions are attended in parts
// that are then merged (ops.cc); a token's result depends only on its own
// position, query and cache, never on the batch or the threads.
// REQUIRES: n_q_heads == kv.n_q_heads, a multiple of kv.n_kv_heads, at most
// 64 query heads per KV head; valid maps.
// max_isa caps the kernels' instruction set (tests: every level must give
// the same bits); the widest this CPU and the shapes allow is taken up to it.
// kv_dtype: the cache's element type, kF32 or kF16.
void PagedAttention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                    const KvLayer& kv, DType kv_dtype, float* out, ThreadPool* pool,
                    SimdIsa max_isa = SimdIsa::kAvx512);

}  // namespace chai::kernels::cpu

#endif  // CHAI_KERNELS_CPU_OPS_H_
