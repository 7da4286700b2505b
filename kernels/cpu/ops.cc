#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/half_row.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/swiglu.h"

namespace chai::kernels::cpu {
namespace {

// The fixed reduction tree of 8 lane partials; the AVX2 Hsum's.
inline float Reduce8(const float* acc) {
  return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

// A KV cache element as a float (exact for fp16).
inline float KvValue(float x) { return x; }
inline float KvValue(uint16_t h) { return Fp16ToFp32(h); }

// Dot product with 8 lane-wise partial sums (the compiler vectorises this
// without reassociating) and a fixed reduction tree: the order depends only
// on n.
template <typename T>
inline float Dot(const float* a, const T* b, int32_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * KvValue(b[i + k]);
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * KvValue(b[i]);
  return Reduce8(acc) + tail;
}

using internal::kMaxGroup;
using internal::MixArgs;
using internal::ScoreArgs;

// Walks the sequence's K pages a block at a time (no division per
// position); each page is block_size contiguous rows, read once for all
// heads in the call. Each head's arithmetic is the same sequence of
// operations whatever n_heads is, and contraction is off for this library,
// so any grouping gives the same bits.
template <typename T>
void ScoreImpl(const ScoreArgs& a) {
  float max_s[kMaxGroup];
  for (int32_t j = 0; j < a.n_heads; ++j) max_s[j] = -std::numeric_limits<float>::infinity();
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const T* kp =
        static_cast<const T*>(a.k) +
        int64_t{a.pages[(start / a.block_size) * a.page_stride]} * a.block_size * a.head_dim;
    for (int32_t i = 0; i < n; ++i, kp += a.head_dim) {
      for (int32_t j = 0; j < a.n_heads; ++j) {
        const int32_t h = a.heads[j];
        const float s = Dot(a.q + int64_t{h} * a.head_dim, kp, a.head_dim) * a.scale;
        a.probs[int64_t{h} * a.len + start + i] = s;
        max_s[j] = std::max(max_s[j], s);
      }
    }
  }
  internal::ExpNormalize(a, max_s);
}

// Each V row is read once for all the query heads sharing its KV head.
template <typename T>
void MixImpl(const MixArgs& a) {
  const int64_t row_stride = int64_t{a.n_kv_heads} * a.head_dim;
  for (int32_t j = 0; j < a.n_heads; ++j) {
    float* o = a.out + int64_t{a.heads[j]} * a.head_dim;
    std::fill(o, o + a.head_dim, 0.0f);
  }
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const T* vp =
        static_cast<const T*>(a.v) +
        (int64_t{a.table[start / a.block_size]} * a.block_size * a.n_kv_heads + a.kv_head) *
            a.head_dim;
    for (int32_t i = 0; i < n; ++i, vp += row_stride) {
      for (int32_t j = 0; j < a.n_heads; ++j) {
        const int32_t h = a.heads[j];
        const float wp = a.probs[int64_t{a.score_head[h]} * a.len + start + i];
        float* o = a.out + int64_t{h} * a.head_dim;
        for (int32_t d = 0; d < a.head_dim; ++d) o[d] += wp * KvValue(vp[d]);
      }
    }
  }
  internal::ScaleByInvSum(a);
}

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

namespace {

// cos and sin of one position's angles, half values each (RopeRows' exact
// evaluation).
void RopeAngles(int32_t pos, const RopeParams& rope, float* cos_v, float* sin_v) {
  for (int32_t i = 0; i < rope.head_dim / 2; ++i) {
    // The angle is rounded to float as Hugging Face and llama.cpp do; cos
    // and sin of that float are then evaluated in double and rounded once.
    const float theta = static_cast<float>(pos) * rope.inv_freq[i];
    cos_v[i] = static_cast<float>(std::cos(static_cast<double>(theta)));
    sin_v[i] = static_cast<float>(std::sin(static_cast<double>(theta)));
  }
}

// This thread's RopeAngles rows by position, filled on first use. Every
// layer's q and k rotate with the same angles (60 calls per decode step for
// the default model), and the double-precision cos/sin cost ~1 us per token
// per call: evaluating them once per position and thread saves that. Keyed
// by the frequencies' values (not their address, which a later model could
// reuse); positions past kMaxPositions are evaluated per call.
class RopeTable {
 public:
  static constexpr int32_t kMaxPositions = 1 << 15;  // 8 MB per thread at head_dim 64

  // cos at [0, half), sin at [half, 2 half); valid until the next call.
  const float* Row(int32_t pos, const RopeParams& rope) {
    const int32_t half = rope.head_dim / 2;
    if (inv_.size() != static_cast<size_t>(half) ||
        !std::equal(inv_.begin(), inv_.end(), rope.inv_freq)) {
      inv_.assign(rope.inv_freq, rope.inv_freq + half);
      table_.clear();
      filled_.clear();
    }
    float* row;
    if (pos >= kMaxPositions) {
      scratch_.resize(2 * half);
      row = scratch_.data();
    } else {
      if (filled_.size() <= static_cast<size_t>(pos)) {
        const size_t n =
            std::min<size_t>(kMaxPositions, std::max<size_t>(2 * filled_.size(), pos + 1));
        filled_.resize(n, 0);
        table_.resize(n * 2 * half);
      }
      row = table_.data() + int64_t{pos} * 2 * half;
      if (filled_[pos]) return row;
      filled_[pos] = 1;
    }
    RopeAngles(pos, rope, row, row + half);
    return row;
  }

 private:
  std::vector<float> inv_, table_, scratch_;
  std::vector<uint8_t> filled_;
};

}  // namespace

void RopeRows(float* x, const int32_t* pos, int32_t n, int32_t heads, const RopeParams& rope) {
  const int32_t half = rope.head_dim / 2;
  thread_local RopeTable table;
  for (int32_t t = 0; t < n; ++t) {
    const float* cos_v = table.Row(pos[t], rope);
    const float* sin_v = cos_v + half;
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

void SwiGluValues(const float* gate, const float* up, int64_t n, float* out, bool allow_avx2) {
  int64_t i = 0;
  if (allow_avx2 && internal::CpuHasAvx2Fma()) i = internal::SwiGluAvx2(gate, up, n, out);
  for (; i < n; ++i) out[i] = internal::SwiGluOne(gate[i], up[i]);
}

void AddValues(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void GatherRowsOf(const float* src, const int32_t* rows, int32_t n, int32_t dim, float* dst) {
  for (int32_t i = 0; i < n; ++i) {
    std::memcpy(dst + int64_t{i} * dim, src + int64_t{rows[i]} * dim, sizeof(float) * dim);
  }
}

namespace {

inline void StoreValues(const float* src, int64_t n, float* dst) {
  std::memcpy(dst, src, n * sizeof(float));
}
inline void StoreValues(const float* src, int64_t n, uint16_t* dst) { Fp32ToFp16Row(src, n, dst); }

template <typename T>
void StoreKvRowsOf(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) {
  const int32_t hd = kv.head_dim;
  const int64_t v_row = int64_t{hd} * kv.n_kv_heads;
  T* kc = static_cast<T*>(kv.k);
  T* vc = static_cast<T*>(kv.v);
  for (int32_t t = 0; t < place.n_tokens; ++t) {
    const int32_t seq = place.seq[t];
    const int32_t p = place.pos[t];
    const int32_t b = p / kv.block_size;
    const int32_t i = p % kv.block_size;
    const int32_t* table = place.block_tables + int64_t{seq} * place.max_blocks;
    const int64_t row = int64_t{table[b]} * kv.block_size + i;
    StoreValues(v + t * v_row, v_row, vc + row * v_row);
    const int32_t* src = kv.k_src + int64_t{seq} * kv.n_kv_heads;
    const int32_t* pages = kv.k_pages + (int64_t{seq} * place.max_blocks + b) * kv.n_kv_heads;
    for (int32_t j = 0; j < kv.n_kv_heads && src[j] >= 0; ++j) {
      StoreValues(k + (int64_t{t} * kv.n_kv_heads + src[j]) * hd, hd,
                  kc + (int64_t{pages[j]} * kv.block_size + i) * hd);
    }
  }
}

}  // namespace

void StoreKvRows(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv,
                 DType kv_dtype) {
  if (kv_dtype == DType::kF16) {
    StoreKvRowsOf<uint16_t>(k, v, place, kv);
  } else {
    StoreKvRowsOf<float>(k, v, place, kv);
  }
}

namespace internal {

void ExpNormalize(const ScoreArgs& a, const float* max_s) {
  for (int32_t j = 0; j < a.n_heads; ++j) {
    const int32_t h = a.heads[j];
    float* pj = a.probs + int64_t{h} * a.len;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int32_t p = 0;
    for (; p + 8 <= a.len; p += 8) {
      for (int k = 0; k < 8; ++k) {
        pj[p + k] = FastExp(pj[p + k] - max_s[j]);
        acc[k] += pj[p + k];
      }
    }
    float tail = 0.0f;
    for (; p < a.len; ++p) {
      pj[p] = FastExp(pj[p] - max_s[j]);
      tail += pj[p];
    }
    a.inv_sum[h] = 1.0f / (Reduce8(acc) + tail);
  }
}

void ScaleByInvSum(const MixArgs& a) {
  for (int32_t j = 0; j < a.n_heads; ++j) {
    const int32_t h = a.heads[j];
    const float inv = a.inv_sum[a.score_head[h]];
    float* o = a.out + int64_t{h} * a.head_dim;
    for (int32_t d = 0; d < a.head_dim; ++d) o[d] *= inv;
  }
}

void ScoreGeneric(const ScoreArgs& a) {
  if (a.f16) {
    ScoreImpl<uint16_t>(a);
  } else {
    ScoreImpl<float>(a);
  }
}
void MixGeneric(const MixArgs& a) {
  if (a.f16) {
    MixImpl<uint16_t>(a);
  } else {
    MixImpl<float>(a);
  }
}

}  // namespace internal

void PagedAttention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                    const KvLayer& kv, DType kv_dtype, float* out, ThreadPool* pool,
                    bool allow_avx2) {
  if (kv.n_kv_heads <= 0 || n_q_heads != kv.n_q_heads || n_q_heads % kv.n_kv_heads != 0 ||
      n_q_heads / kv.n_kv_heads > kMaxGroup ||
      (kv_dtype != DType::kF32 && kv_dtype != DType::kF16)) {
    std::abort();  // Programmer error: see REQUIRES in ops.h.
  }
  const int32_t hd = kv.head_dim;
  const int32_t n_kv = kv.n_kv_heads;
  const int32_t group = n_q_heads / n_kv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool avx2 = allow_avx2 && internal::CpuHasAvx2Fma() && internal::Avx2AttentionSupports(hd);
  const int32_t n_tokens = place.n_tokens;
  const bool f16 = kv_dtype == DType::kF16;
  // Phase 1 scores representatives, phase 2 mixes values for every head;
  // members read their representative's row of `probs`, so they use its
  // probabilities bit for bit and CHAI skips their q k^T work. Rows of probs
  // per token start at an offset of n_q_heads * (positions before it).
  static thread_local std::vector<int64_t> offset;
  offset.resize(n_tokens + 1);
  offset[0] = 0;
  for (int32_t t = 0; t < n_tokens; ++t) {
    offset[t + 1] = offset[t] + int64_t{n_q_heads} * (place.pos[t] + 1);
  }
  static thread_local std::vector<float> probs_buf, inv_buf;
  if (probs_buf.size() < static_cast<size_t>(offset[n_tokens])) {
    probs_buf.resize(offset[n_tokens]);
  }
  if (inv_buf.size() < static_cast<size_t>(n_tokens) * n_q_heads) {
    inv_buf.resize(static_cast<size_t>(n_tokens) * n_q_heads);
  }
  // Lambdas must not name the thread_locals: on a worker thread they would
  // be the worker's own (empty) instances.
  float* probs = probs_buf.data();
  float* inv = inv_buf.data();
  const int64_t* off = offset.data();

  // Phase 1: one item per (token, K slot): the representatives reading that
  // slot share each K row. A K slot holds one KV head, so at most `group`
  // representatives read it.
  pool->ParallelFor(int64_t{n_tokens} * n_kv, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int32_t t = static_cast<int32_t>(item / n_kv);
      const int32_t slot = static_cast<int32_t>(item % n_kv);
      const int32_t seq = place.seq[t];
      const int32_t* sh = kv.score_head + int64_t{seq} * n_q_heads;
      const int32_t* ks = kv.k_slot + int64_t{seq} * n_q_heads;
      int32_t heads[kMaxGroup];
      int32_t n = 0;
      for (int32_t h = 0; h < n_q_heads; ++h) {
        if (sh[h] == h && ks[h] == slot) heads[n++] = h;
      }
      if (n == 0) continue;
      const ScoreArgs args{q + int64_t{t} * n_q_heads * hd,
                           heads,
                           n,
                           kv.k,
                           f16,
                           kv.k_pages + int64_t{seq} * place.max_blocks * n_kv + slot,
                           n_kv,
                           place.pos[t] + 1,
                           kv.block_size,
                           hd,
                           scale,
                           probs + off[t],
                           inv + int64_t{t} * n_q_heads};
      if (avx2) {
        internal::ScoreAvx2(args);
      } else {
        internal::ScoreGeneric(args);
      }
    }
  });
  // Phase 2: one item per (token, KV head), or per (token, head) when there
  // are too few of those to keep the pool busy (batch-1 decode). Same bits
  // either way.
  const int32_t per_item = int64_t{n_tokens} * n_kv >= 2 * pool->num_threads() ? group : 1;
  const int32_t items_per_token = n_q_heads / per_item;
  pool->ParallelFor(int64_t{n_tokens} * items_per_token, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int32_t t = static_cast<int32_t>(item / items_per_token);
      const int32_t h0 = static_cast<int32_t>(item % items_per_token) * per_item;
      int32_t heads[kMaxGroup];
      for (int32_t j = 0; j < per_item; ++j) heads[j] = h0 + j;
      const int32_t seq = place.seq[t];
      const MixArgs args{heads,
                         kv.score_head + int64_t{seq} * n_q_heads,
                         per_item,
                         kv.v,
                         f16,
                         place.block_tables + int64_t{seq} * place.max_blocks,
                         place.pos[t] + 1,
                         kv.block_size,
                         n_kv,
                         h0 / group,
                         hd,
                         probs + off[t],
                         inv + int64_t{t} * n_q_heads,
                         out + int64_t{t} * n_q_heads * hd};
      if (avx2) {
        internal::MixAvx2(args);
      } else {
        internal::MixGeneric(args);
      }
    }
  });
}

}  // namespace chai::kernels::cpu
