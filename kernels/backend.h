// The one interface every compute backend (CPU, CUDA) implements.
//
// The engine (engine/) drives a forward pass as a sequence of these ops; a
// backend owns the memory the ops read and write. Pointers passed to ops
// point into that backend's memory: host RAM for the CPU backend, device
// memory for CUDA. Activations are float32, row-major, contiguous.
//
// Determinism contract (DESIGN.md section 3): for every op, the value
// computed for a token row depends only on that row's inputs, never on how
// many other rows are in the call or where they sit. Reductions run in a fixed
// order per row, so a request yields bit-identical results alone or batched.
//
// Thread-safety: a Backend is used by one engine thread at a time. Ops may
// run asynchronously; Synchronize() (and CopyToHost) wait for them.
#ifndef CHAI_KERNELS_BACKEND_H_
#define CHAI_KERNELS_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "absl/status/statusor.h"
#include "kernels/dtype.h"

namespace chai::kernels {

// Memory owned by a backend. Freed when destroyed.
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual void* data() = 0;
  virtual size_t size() const = 0;
};

// How a weight's bytes are arranged. Loaders produce kRowMajor; a backend's
// PrepareWeight may rearrange a MatMul weight for its kernels.
enum class WeightLayout {
  kRowMajor,  // row r starts at data + r * RowBytes(dtype, cols)
  // CPU backend only (kernels/cpu/interleave.h): groups of 8 rows
  // interleaved block by block, the same total bytes. Only MatMul takes it.
  kInterleaved8,
};

// A weight matrix [rows, cols] in `dtype`. Not owning. MatMul computes x *
// W^T, so `rows` is the output dimension and `cols` the input dimension.
struct WeightView {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const void* data = nullptr;
  WeightLayout layout = WeightLayout::kRowMajor;
};

// What a prepared weight will be used for: a backend may lay MatMul weights
// out for its matrix kernels, while Embed reads rows of the loader's layout.
enum class WeightUse { kMatMul, kEmbed };

// A weight made ready for a backend: `view` is what ops take; `storage` (may
// be null when the view aliases host memory, e.g. the CPU backend reading an
// mmapped file) keeps the backing memory alive.
struct PreparedWeight {
  WeightView view;
  std::unique_ptr<Buffer> storage;
};

// Rotary position embedding. `inv_freq` has head_dim/2 entries (host memory;
// backends copy it where needed) and already includes any frequency scaling
// (Llama-3.1). rotate_half=false rotates interleaved pairs (2i, 2i+1), the
// layout of llama.cpp-converted GGUF Q/K; rotate_half=true rotates (i,
// i+head_dim/2), the layout of Hugging Face checkpoints.
struct RopeParams {
  int32_t head_dim = 0;
  bool rotate_half = false;
  const float* inv_freq = nullptr;
};

// One layer of the paged KV cache, with the CHAI head maps of every sequence
// slot (all pointers in backend memory; the engine's KvCache owns them).
//
// V is paged by block: block b holds the values of `block_size` consecutive
// positions of one sequence for all KV heads:
//   v: [num_blocks, block_size, n_kv_heads, head_dim]
// K is paged per head, so that a CHAI sequence allocates only the key heads
// its cluster representatives read (DESIGN.md section 4, docs/CHAI.md):
//   k: [num_k_pages, block_size * head_dim], one page per block and slot,
//      laid out inside as the backend's StoreKv and Attention agree:
//      [block_size, head_dim] on CUDA, transposed [head_dim, block_size]
//      on the CPU (kernels/cpu/attention_kernels.h)
//   k_pages: [max_seqs, place.max_blocks, n_kv_heads] page holding K slot j of
//            block b of a sequence (slots >= the sequence's width unused)
//   k_src: [max_seqs, n_kv_heads] KV head whose keys K slot j stores, -1 if
//          the slot is unused
// The head maps say which query head's attention probabilities each head
// uses and where that head's keys are:
//   score_head: [max_seqs, n_q_heads] head whose probabilities head h uses;
//               score_head[h] == h for representatives (and every head of a
//               plain sequence), and score_head[score_head[h]] ==
//               score_head[h] always
//   k_slot: [max_seqs, n_q_heads] K slot holding the keys head h scores
//           against (read only where score_head[h] == h); the slot's k_src
//           is h's KV head h / (n_q_heads / n_kv_heads)
// A member head h multiplies its representative's probabilities with its
// OWN values: out_h = P_{score_head[h]} V_{h / group}. Plain attention is the
// identity map with k_src[j] = j and k_slot[h] = h / group.
// Elements of k and v are the backend's KvDtype() (float32, or IEEE fp16 on
// the CPU backend by default).
struct KvLayer {
  void* k = nullptr;
  void* v = nullptr;
  const int32_t* k_pages = nullptr;
  const int32_t* k_src = nullptr;
  const int32_t* score_head = nullptr;
  const int32_t* k_slot = nullptr;
  int32_t n_q_heads = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t block_size = 0;
  int32_t num_blocks = 0;
  int32_t num_k_pages = 0;
};

// Where each token of a flat batch lives in the paged cache (backend memory).
struct TokenPlacement {
  int32_t n_tokens = 0;
  const int32_t* seq = nullptr;           // [n_tokens] row of the token's sequence in block_tables
  const int32_t* pos = nullptr;           // [n_tokens] position within its sequence
  const int32_t* block_tables = nullptr;  // [n_seqs, max_blocks] physical block ids
  int32_t max_blocks = 0;
};

// Ops recorded by Backend::EndCapture (a CUDA graph on the CUDA backend).
// Replay() queues the same ops, with the same shapes, on the same buffers,
// reading whatever those buffers hold by then; it returns FAILED_PRECONDITION
// without queuing anything once the backend has moved memory the recording
// uses (its own scratch grew), and the caller must record again. Destroy
// before the backend. Thread-safety: as Backend.
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  virtual absl::Status Replay() = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- recording (optional) ----
  // Between BeginCapture and EndCapture, ops are recorded instead of run;
  // memory calls (Allocate, copies, Synchronize) are not allowed and make
  // EndCapture fail. Worth it where launching many small ops costs more than
  // running them (decode steps on a GPU). Backends that cannot record return
  // false / UNIMPLEMENTED. A failed capture leaves the backend usable.
  virtual bool CanCapture() const { return false; }
  virtual absl::Status BeginCapture() { return absl::UnimplementedError("no op recording"); }
  virtual absl::StatusOr<std::unique_ptr<OpGraph>> EndCapture() {
    return absl::UnimplementedError("no op recording");
  }

  // ---- memory ----
  // True when the backend's buffers are ordinary host memory and its ops
  // take any host pointer: the caller may then have an op write its output
  // straight into host memory instead of copying it out (the logits of a
  // batch-32 decode step are 6.3 MB for the default model).
  virtual bool HostMemory() const { return false; }
  virtual absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) = 0;
  virtual void CopyToDevice(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void Synchronize() = 0;

  // Makes a host weight (kRowMajor) usable by MatMul (use kMatMul) or Embed
  // (kEmbed); only pass the result to the ops of that use. `host.data` must
  // stay valid for the life of the returned weight when storage is null.
  virtual absl::StatusOr<PreparedWeight> PrepareWeight(const WeightView& host, WeightUse use) = 0;

  // ---- ops (float32 activations) ----
  // out[i, :] = dequantize(table row ids[i]). REQUIRES: 0 <= ids[i] < rows.
  // out: [n, table.cols]
  virtual void Embed(const WeightView& table, const int32_t* ids, int32_t n, float* out) = 0;

  // out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w. x, out: [n, dim]; w: [dim].
  virtual void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
                       float* out) = 0;

  // y[m, w.rows] = x[m, w.cols] * W^T.
  virtual void MatMul(const WeightView& w, const float* x, int32_t m, float* y) = 0;

  // ys[i] = MatMul(ws[i], x) for weights sharing the input x (Q, K and V;
  // gate and up): one call lets a backend prepare x once and spread all
  // the weights' rows over its threads together. The same bits as separate
  // MatMul calls. The default issues MatMul per weight.
  // REQUIRES: ws.size() == ys.size(); every ws[i].cols equal.
  virtual void MatMulShared(std::span<const WeightView> ws, const float* x, int32_t m,
                            std::span<float* const> ys) {
    for (size_t i = 0; i < ws.size(); ++i) MatMul(ws[i], x, m, ys[i]);
  }

  // Rotates x in place. x: [n, heads, head_dim]; pos: [n].
  virtual void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
                    const RopeParams& rope) = 0;

  // out = silu(gate) * up, elementwise over n values.
  virtual void SwiGlu(const float* gate, const float* up, int64_t n, float* out) = 0;

  // x += y over n values.
  virtual void Add(float* x, const float* y, int64_t n) = 0;

  // The residual add and the next norm: x += y, then out = RmsNorm(x, w).
  // The same bits as Add then RmsNorm, which the default issues; a backend
  // may do both in one pass over each row. x, y, out: [n, dim]; out may
  // alias y (not x).
  virtual void AddRmsNorm(float* x, const float* y, const float* w, int32_t n, int32_t dim,
                          float eps, float* out) {
    Add(x, y, int64_t{n} * dim);
    RmsNorm(x, w, n, dim, eps, out);
  }

  // dst[i, :] = src[rows[i], :]. src: [*, dim]; dst: [n, dim].
  virtual void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                          float* dst) = 0;

  // Element type of the KV cache this backend's StoreKv writes and Attention
  // reads: DType::kF32 or DType::kF16 (KvLayer). The engine sizes the
  // cache's buffers with it.
  virtual DType KvDtype() const { return DType::kF32; }

  // Writes each token's keys and values into its cache slot (rounded to
  // KvDtype(), to nearest even): all KV heads' values, and for keys each K
  // slot j of the token's sequence with k_src[j] >= 0 gets head k_src[j].
  // k, v: [n_tokens, kv.n_kv_heads, head_dim].
  virtual void StoreKv(const float* k, const float* v, const TokenPlacement& place,
                       KvLayer& kv) = 0;

  // Causal attention of each token over its sequence's cached positions
  // 0..pos (inclusive; StoreKv must have run for them), through the
  // sequence's head maps (see KvLayer): representatives compute
  // softmax(q_h k^T * scale), members reuse those probabilities bit for bit
  // with their own values. REQUIRES: n_q_heads == kv.n_q_heads.
  // q, out: [n_tokens, n_q_heads, head_dim]. Scale 1/sqrt(head_dim).
  virtual void Attention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                         const KvLayer& kv, float* out) = 0;
};

}  // namespace chai::kernels

#endif  // CHAI_KERNELS_BACKEND_H_
