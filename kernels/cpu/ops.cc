#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/matmul_kernels.h"

namespace chai::kernels::cpu {
namespace {

// Dot product with 8 lane-wise partial sums (the compiler vectorises this
// without reassociating) and a fixed reduction tree: the order depends only
// on n.
inline float Dot(const float* a, const float* b, int32_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return (((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))) + tail;
}

struct AttendArgs {
  const float* q;        // [n_q, head_dim]: query heads sharing one KV head
  int32_t n_q;           // how many (1, or the whole GQA group)
  const float* k;        // cache pool [blocks, block_size, heads, head_dim]
  const float* v;        // same layout as k
  const int32_t* table;  // this sequence's block table
  int32_t len;           // attend over positions [0, len)
  int32_t block_size, heads, head, head_dim;
  float scale;
  float* probs;  // scratch [n_q, len]
  float* out;    // [n_q, head_dim]
};

// Query heads that share a KV head over one sequence's cached positions.
// Walks the block table a block at a time (no division per position) and
// reads each K and V row once for all n_q heads (GQA: 3x less cache traffic
// for SmolLM2). Each head's arithmetic is the same sequence of operations
// whatever n_q is, and contraction is off for this library, so n_q = 1 and
// n_q = group, and the AVX2 and generic instantiations, are bit-identical.
// First row (position `start`, which begins a block) of this head in a cache
// pool; the block's later positions follow at a stride of heads * head_dim.
inline const float* BlockRows(const float* pool, const AttendArgs& a, int32_t start) {
  const int64_t block = a.table[start / a.block_size];
  return pool + (block * a.block_size * a.heads + a.head) * a.head_dim;
}

__attribute__((always_inline)) inline void AttendImpl(const AttendArgs& a) {
  const int64_t row_stride = int64_t{a.heads} * a.head_dim;
  constexpr int32_t kMaxGroup = 64;
  float max_s[kMaxGroup];
  for (int32_t j = 0; j < a.n_q; ++j) max_s[j] = -std::numeric_limits<float>::infinity();
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const float* kp = BlockRows(a.k, a, start);
    for (int32_t i = 0; i < n; ++i, kp += row_stride) {
      for (int32_t j = 0; j < a.n_q; ++j) {
        const float s = Dot(a.q + int64_t{j} * a.head_dim, kp, a.head_dim) * a.scale;
        a.probs[int64_t{j} * a.len + start + i] = s;
        max_s[j] = std::max(max_s[j], s);
      }
    }
  }
  float inv[kMaxGroup];
  for (int32_t j = 0; j < a.n_q; ++j) {
    float* pj = a.probs + int64_t{j} * a.len;
    float sum = 0.0f;
    for (int32_t p = 0; p < a.len; ++p) {
      pj[p] = std::exp(pj[p] - max_s[j]);
      sum += pj[p];
    }
    inv[j] = 1.0f / sum;
    std::fill(a.out + int64_t{j} * a.head_dim, a.out + int64_t{j + 1} * a.head_dim, 0.0f);
  }
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const float* vp = BlockRows(a.v, a, start);
    for (int32_t i = 0; i < n; ++i, vp += row_stride) {
      for (int32_t j = 0; j < a.n_q; ++j) {
        const float wp = a.probs[int64_t{j} * a.len + start + i];
        float* o = a.out + int64_t{j} * a.head_dim;
        for (int32_t d = 0; d < a.head_dim; ++d) o[d] += wp * vp[d];
      }
    }
  }
  for (int32_t j = 0; j < a.n_q; ++j) {
    float* o = a.out + int64_t{j} * a.head_dim;
    for (int32_t d = 0; d < a.head_dim; ++d) o[d] *= inv[j];
  }
}

__attribute__((target("avx2"))) void AttendAvx2(const AttendArgs& a) { AttendImpl(a); }
void AttendGeneric(const AttendArgs& a) { AttendImpl(a); }

}  // namespace

void EmbedRows(const WeightView& table, const int32_t* ids, int32_t n, float* out) {
  const int64_t row_bytes = RowBytes(table.dtype, table.cols);
  const char* base = static_cast<const char*>(table.data);
  for (int32_t i = 0; i < n; ++i) {
    DequantizeRow(table.dtype, base + ids[i] * row_bytes, out + int64_t{i} * table.cols,
                  table.cols);
  }
}

void RmsNormRows(const float* x, const float* w, int32_t n, int32_t dim, float eps, float* out) {
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + int64_t{i} * dim;
    float* oi = out + int64_t{i} * dim;
    const float mean = Dot(xi, xi, dim) / static_cast<float>(dim);
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int32_t j = 0; j < dim; ++j) oi[j] = (xi[j] * scale) * w[j];
  }
}

void RopeRows(float* x, const int32_t* pos, int32_t n, int32_t heads, const RopeParams& rope) {
  const int32_t half = rope.head_dim / 2;
  absl::InlinedVector<float, 128> cos_v(half), sin_v(half);
  for (int32_t t = 0; t < n; ++t) {
    for (int32_t i = 0; i < half; ++i) {
      // The angle is rounded to float as Hugging Face and llama.cpp do; cos
      // and sin of that float are then evaluated in double and rounded once.
      const float theta = static_cast<float>(pos[t]) * rope.inv_freq[i];
      cos_v[i] = static_cast<float>(std::cos(static_cast<double>(theta)));
      sin_v[i] = static_cast<float>(std::sin(static_cast<double>(theta)));
    }
    for (int32_t h = 0; h < heads; ++h) {
      float* v = x + (int64_t{t} * heads + h) * rope.head_dim;
      for (int32_t i = 0; i < half; ++i) {
        const int32_t a = rope.rotate_half ? i : 2 * i;
        const int32_t b = rope.rotate_half ? i + half : 2 * i + 1;
        const float x0 = v[a], x1 = v[b];
        v[a] = x0 * cos_v[i] - x1 * sin_v[i];
        v[b] = x0 * sin_v[i] + x1 * cos_v[i];
      }
    }
  }
}

void SwiGluValues(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = (g / (1.0f + std::exp(-g))) * up[i];
  }
}

void AddValues(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void GatherRowsOf(const float* src, const int32_t* rows, int32_t n, int32_t dim, float* dst) {
  for (int32_t i = 0; i < n; ++i) {
    std::memcpy(dst + int64_t{i} * dim, src + int64_t{rows[i]} * dim, sizeof(float) * dim);
  }
}

void StoreKvRows(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) {
  const size_t k_bytes = sizeof(float) * kv.n_k_heads * kv.head_dim;
  const size_t v_bytes = sizeof(float) * kv.n_v_heads * kv.head_dim;
  for (int32_t t = 0; t < place.n_tokens; ++t) {
    const int32_t* table = place.block_tables + int64_t{place.seq[t]} * place.max_blocks;
    const int32_t p = place.pos[t];
    const int64_t slot = int64_t{table[p / kv.block_size]} * kv.block_size + p % kv.block_size;
    std::memcpy(kv.k + slot * kv.n_k_heads * kv.head_dim,
                k + int64_t{t} * kv.n_k_heads * kv.head_dim, k_bytes);
    std::memcpy(kv.v + slot * kv.n_v_heads * kv.head_dim,
                v + int64_t{t} * kv.n_v_heads * kv.head_dim, v_bytes);
  }
}

void PagedAttention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                    const KvLayer& kv, float* out, ThreadPool* pool) {
  if (kv.n_k_heads != kv.n_v_heads || kv.n_v_heads <= 0 || n_q_heads % kv.n_v_heads != 0) {
    std::abort();  // Programmer error: see REQUIRES in ops.h.
  }
  const int32_t hd = kv.head_dim;
  const int32_t group = n_q_heads / kv.n_v_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Whole GQA groups per work item when there are enough of them to keep the
  // pool busy (each K/V row is then read once per group); single query heads
  // otherwise (batch-1 decode has only n_kv_heads groups). Same bits either way.
  const int32_t per_item =
      (group <= 64 && int64_t{place.n_tokens} * kv.n_v_heads >= 2 * pool->num_threads()) ? group
                                                                                         : 1;
  const int32_t items_per_token = n_q_heads / per_item;
  const int64_t items = int64_t{place.n_tokens} * items_per_token;
  // The matmul's detector (AVX2+FMA+F16C) is a superset of what this needs;
  // both instantiations give the same bits, so it only picks the faster one.
  const bool avx2 = internal::CpuHasAvx2Fma();
  pool->ParallelFor(items, [&](int64_t begin, int64_t end) {
    // Per-thread scratch that only grows, so steady-state calls allocate
    // nothing.
    thread_local std::vector<float> probs;
    for (int64_t item = begin; item < end; ++item) {
      const int32_t t = static_cast<int32_t>(item / items_per_token);
      const int32_t h0 = static_cast<int32_t>(item % items_per_token) * per_item;
      const int32_t len = place.pos[t] + 1;
      const size_t need = static_cast<size_t>(len) * per_item;
      if (probs.size() < need) probs.resize(need);
      const int64_t row = int64_t{t} * n_q_heads + h0;
      const AttendArgs args{q + row * hd,
                            per_item,
                            kv.k,
                            kv.v,
                            place.block_tables + int64_t{place.seq[t]} * place.max_blocks,
                            len,
                            kv.block_size,
                            kv.n_k_heads,
                            h0 / group,
                            hd,
                            scale,
                            probs.data(),
                            out + row * hd};
      if (avx2) {
        AttendAvx2(args);
      } else {
        AttendGeneric(args);
      }
    }
  });
}

}  // namespace chai::kernels::cpu
