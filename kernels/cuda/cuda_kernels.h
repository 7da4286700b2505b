// Launchers of the CUDA backend's kernels (elementwise.cu, attention.cu,
// device_random.cu). Host-callable, plain C++ types only, so that the host
// code (cuda_backend.cc, compiled by g++ with Abseil) and the .cu files
// (compiled by nvcc, no Abseil) share nothing but this header.
//
// Every launcher enqueues on `stream` and returns cudaGetLastError() of its
// launch(es): a bad configuration shows up here, a fault inside a kernel at
// the next synchronisation. All pointers are device memory unless stated.
// Shapes as in kernels/backend.h; float32 activations, fp16 weights.
//
// Thread-safety: launchers are stateless; streams serialise their work.
#ifndef CHAI_KERNELS_CUDA_CUDA_KERNELS_H_
#define CHAI_KERNELS_CUDA_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace chai::kernels::cuda {

// dst[i] = fp16(src[i]) (round to nearest even; beyond +-65504 -> +-inf).
cudaError_t LaunchF32ToF16(const float* src, uint16_t* dst, int64_t n, cudaStream_t stream);

// out[i, :] = float(table[ids[i], :]); table: [rows, cols] fp16 (or fp32 when
// table_is_f32). Rows with ids outside [0, rows) are written as zeros (the
// engine validates ids first; this only keeps a bad id from reading out of
// bounds).
cudaError_t LaunchEmbed(const void* table, bool table_is_f32, int64_t rows, int64_t cols,
                        const int32_t* ids, int32_t n, float* out, cudaStream_t stream);

// out = x / sqrt(mean(x^2) + eps) * w per row. x, out: [n, dim]; may alias.
cudaError_t LaunchRmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
                          float* out, cudaStream_t stream);

// In-place rotary embedding. x: [n, heads, head_dim]; pos: [n];
// inv_freq: [head_dim / 2] (device).
cudaError_t LaunchRope(float* x, const int32_t* pos, int32_t n, int32_t heads, int32_t head_dim,
                       bool rotate_half, const float* inv_freq, cudaStream_t stream);

// out = silu(gate) * up over n values (out may alias gate or up).
cudaError_t LaunchSwiGlu(const float* gate, const float* up, int64_t n, float* out,
                         cudaStream_t stream);

// x += y over n values.
cudaError_t LaunchAdd(float* x, const float* y, int64_t n, cudaStream_t stream);

// dst[i, :] = src[rows[i], :]. dst: [n, dim].
cudaError_t LaunchGatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                             float* dst, cudaStream_t stream);

// The paged cache of one layer and the batch's placement in it; see KvLayer
// and TokenPlacement in kernels/backend.h for every field.
struct PagedKv {
  int32_t n_tokens = 0;
  const int32_t* seq = nullptr;           // [n_tokens]
  const int32_t* pos = nullptr;           // [n_tokens]
  const int32_t* block_tables = nullptr;  // [max_seqs, max_blocks]
  int32_t max_blocks = 0;
  float* k = nullptr;                   // [num_k_pages, block_size, head_dim]
  float* v = nullptr;                   // [num_blocks, block_size, n_kv_heads, head_dim]
  const int32_t* k_pages = nullptr;     // [max_seqs, max_blocks, n_kv_heads]
  const int32_t* k_src = nullptr;       // [max_seqs, n_kv_heads]
  const int32_t* score_head = nullptr;  // [max_seqs, n_q_heads]
  const int32_t* k_slot = nullptr;      // [max_seqs, n_q_heads]
  int32_t n_q_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
};

// Head sizes the attention kernels support: multiples of 32 up to 256 (every
// LLaMA-family model: 64 or 128).
inline bool AttentionHeadDimSupported(int32_t head_dim) {
  return head_dim > 0 && head_dim <= 256 && head_dim % 32 == 0;
}

// Writes k, v ([n_tokens, n_kv_heads, head_dim]) into the cache.
cudaError_t LaunchStoreKv(const float* k, const float* v, const PagedKv& kv, cudaStream_t stream);

// MatMul for a few rows (gemv.cu): y[m, n] = x[m, k] W^T, W fp16 [n, k]
// row-major, x/y float32, fp32 accumulation; a row's bits do not depend on m.
inline constexpr int32_t kGemvMaxRows = 8;
// Whether LaunchGemv takes this product: 1 <= m <= kGemvMaxRows, k a
// multiple of 8, w and x 16-byte aligned.
bool GemvApplies(int32_t m, int64_t n, int64_t k, const void* w, const float* x);
cudaError_t LaunchGemv(const uint16_t* w, const float* x, int32_t m, int32_t n, int32_t k, float* y,
                       cudaStream_t stream);

// Batch rows per block of the tensor-core prefill kernel (attention_mma.cu).
inline constexpr int32_t kMmaTileRows = 64;

// How Attention splits its work; see attention.cu.
struct AttentionPlan {
  // Batch rows per block: 1 (decode kernel, fp32), 16 (prefill tiles, fp32)
  // or kMmaTileRows (prefill tiles on tensor cores, fp16 inputs).
  int32_t tile_rows = 1;
  int32_t splits = 1;  // context splits per row (flash-decoding); 1 = no combine pass
};

// Chooses the kernel, tile rows and splits for a batch of n_tokens rows on a
// device with `sm_count` multiprocessors: one row per block up to 64 rows;
// above that, tensor-core tiles where MmaAttentionHeadDim(head_dim), else
// fp32 tiles of 16.
AttentionPlan PlanAttention(int32_t n_tokens, int32_t n_q_heads, int32_t head_dim,
                            int32_t sm_count);

// The decode kernel alone (attention_decode.cu; one block per row, head and
// split; LaunchAttention adds the combine pass when splits > 1).
cudaError_t LaunchDecodeAttention(const float* q, const PagedKv& kv, int32_t splits, float scale,
                                  float* scratch, float* out, cudaStream_t stream);

// Head sizes the tensor-core prefill kernel takes: 64 and 128.
bool MmaAttentionHeadDim(int32_t head_dim);
// Its dynamic shared memory opt-in; ConfigureAttentionKernels calls it.
cudaError_t ConfigureMmaAttention();
// The tensor-core prefill kernel alone (LaunchAttention adds the combine pass
// when splits > 1). REQUIRES: MmaAttentionHeadDim(kv.head_dim).
cudaError_t LaunchMmaAttention(const float* q, const PagedKv& kv, int32_t splits, float scale,
                               float* scratch, float* out, cudaStream_t stream);

// Floats of scratch Attention needs for `plan` (0 when splits == 1).
int64_t AttentionScratchFloats(const AttentionPlan& plan, int32_t n_tokens, int32_t n_q_heads,
                               int32_t head_dim);

// Causal paged attention through the CHAI head maps (kernels/backend.h).
// q, out: [n_tokens, n_q_heads, head_dim]; scratch: AttentionScratchFloats().
// REQUIRES: AttentionHeadDimSupported(kv.head_dim), n_q_heads % n_kv_heads == 0.
cudaError_t LaunchAttention(const float* q, const PagedKv& kv, const AttentionPlan& plan,
                            float* scratch, float* out, cudaStream_t stream);

// Allows the attention kernels the dynamic shared memory head_dim needs
// (cudaFuncSetAttribute); call once per device before LaunchAttention.
cudaError_t ConfigureAttentionKernels();

// Fills dst[n] (fp16) with uniform values in [-scale, scale) from a counter
// hash of (seed, index): the same (seed, n) gives the same bits on any GPU.
cudaError_t LaunchFillRandomF16(uint16_t* dst, int64_t n, float scale, uint64_t seed,
                                cudaStream_t stream);
// Same for float32 values in [offset - scale, offset + scale).
cudaError_t LaunchFillRandomF32(float* dst, int64_t n, float offset, float scale, uint64_t seed,
                                cudaStream_t stream);

}  // namespace chai::kernels::cuda

#endif  // CHAI_KERNELS_CUDA_CUDA_KERNELS_H_
