#include "kernels/cpu/ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "kernels/cpu/attention_kernels.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cpu/fast_exp.h"
#include "kernels/cpu/half_row.h"
#include "kernels/cpu/matmul_kernels.h"
#include "kernels/cpu/rms_norm.h"
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

// Dot product with 8 lane-wise partial sums of fused multiply-adds and a
// fixed reduction tree: the order depends only on n.
template <typename T>
inline float Dot(const float* a, const T* b, int32_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] = std::fma(a[i + k], KvValue(b[i + k]), acc[k]);
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail = std::fma(a[i], KvValue(b[i]), tail);
  return Reduce8(acc) + tail;
}

using internal::kMaxGroup;
using internal::LinePrefetcher;
using internal::MixArgs;
using internal::ScoreArgs;

// Walks the sequence's K pages a block at a time (no division per
// position). A page is transposed (attention_kernels.h): the key at page
// position i is the column i, elements block_size apart. Each head's
// arithmetic is the same sequence of operations whatever n_heads is, and
// contraction is off for this library, so any grouping gives the same bits.
template <typename T>
void ScoreImpl(const ScoreArgs& a) {
  float max_s[kMaxGroup];
  for (int32_t j = 0; j < a.n_heads; ++j) max_s[j] = -std::numeric_limits<float>::infinity();
  for (int32_t start = 0; start < a.len; start += a.block_size) {
    const int32_t n = std::min(a.block_size, a.len - start);
    const T* kp =
        static_cast<const T*>(a.k) +
        int64_t{a.pages[(start / a.block_size) * a.page_stride]} * a.block_size * a.head_dim;
    for (int32_t i = 0; i < n; ++i) {
      for (int32_t j = 0; j < a.n_heads; ++j) {
        const int32_t h = a.heads[j];
        const float* q = a.q + int64_t{h} * a.head_dim;
        float s = 0.0f;
        for (int32_t d = 0; d < a.head_dim; ++d) {
          s = std::fma(q[d], KvValue(kp[int64_t{d} * a.block_size + i]), s);
        }
        s *= a.scale;
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
        for (int32_t d = 0; d < a.head_dim; ++d) o[d] = std::fma(wp, KvValue(vp[d]), o[d]);
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

void RmsNormRows(const float* x, const float* w, int32_t n, int32_t dim, float eps, float* out,
                 bool allow_avx2) {
  const bool avx2 = allow_avx2 && internal::CpuHasAvx2Fma();
  for (int32_t i = 0; i < n; ++i) {
    const float* xi = x + int64_t{i} * dim;
    float* oi = out + int64_t{i} * dim;
    if (avx2) {
      internal::RmsNormRowAvx2(xi, w, dim, eps, oi);
      continue;
    }
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

void SwiGluValues(const float* gate, const float* up, int64_t n, float* out, SimdIsa max_isa) {
  int64_t i = 0;
  if (max_isa >= SimdIsa::kAvx512 && internal::CpuHasAvx512F()) {
    i = internal::SwiGluAvx512(gate, up, n, out);
  }
  if (max_isa >= SimdIsa::kAvx2 && internal::CpuHasAvx2Fma()) {
    i += internal::SwiGluAvx2(gate + i, up + i, n - i, out + i);
  }
  for (; i < n; ++i) out[i] = internal::SwiGluOne(gate[i], up[i]);
}

void AddValues(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void AddRmsNormRows(float* x, const float* y, const float* w, int32_t n, int32_t dim, float eps,
                    float* out) {
  for (int32_t i = 0; i < n; ++i) {
    const int64_t at = int64_t{i} * dim;
    AddValues(x + at, y + at, dim);
    RmsNormRows(x + at, w, 1, dim, eps, out + at);
  }
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
  thread_local std::vector<T> key;
  key.resize(hd);
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
    // A key goes down a page column: one element per d-row of the page, so
    // 32 cache lines at head_dim 64 in fp16, mostly not in cache. Asking for
    // all of them (for writing) before the first store lets the misses
    // overlap; the stores alone would meet them one by one. Batch-32 step:
    // 0.52-0.56 -> 0.40-0.43 ms (docs/PERFORMANCE.md, session 13).
    const int64_t d_stride = int64_t{kv.block_size} * static_cast<int64_t>(sizeof(T));
    const int32_t d_step = static_cast<int32_t>(std::max<int64_t>(1, 64 / d_stride));
    for (int32_t j = 0; j < kv.n_kv_heads && src[j] >= 0; ++j) {
      const char* col =
          reinterpret_cast<const char*>(kc + int64_t{pages[j]} * kv.block_size * hd + i);
      for (int32_t d = 0; d < hd; d += d_step) __builtin_prefetch(col + d * d_stride, 1, 3);
    }
    for (int32_t j = 0; j < kv.n_kv_heads && src[j] >= 0; ++j) {
      // Converted as a row, then scattered down the page's column i.
      StoreValues(k + (int64_t{t} * kv.n_kv_heads + src[j]) * hd, hd, key.data());
      T* col = kc + int64_t{pages[j]} * kv.block_size * hd + i;
      for (int32_t d = 0; d < hd; ++d) col[int64_t{d} * kv.block_size] = key[d];
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
    a.max[h] = max_s[j];
    a.sum[h] = Reduce8(acc) + tail;
  }
}

void ScaleByInvSum(const MixArgs& a) {
  if (a.inv_sum == nullptr) return;
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

namespace {

// Positions per context part (rounded down to whole KV blocks, at least
// one). Long contexts get several parts per K slot for the threads to
// share (batch-1 attention at context 4096 ~1.5x faster); shorter ones stay
// whole, because a split only adds merge work and shorter kernel calls
// where (part, slot) items are already plenty: with 128, batch 32 at
// context 144 ran ~8% slower (docs/PERFORMANCE.md, session 11).
constexpr int32_t kPartPositions = 256;

// A token's items not yet finished, alone in its cache line: the threads
// count down neighbouring tokens at once.
struct alignas(64) PendingItems {
  std::atomic<int32_t> n;
};

// What every work item of one PagedAttention call reads.
struct AttentionCall {
  const float* q;  // [n_tokens, n_q_heads, hd]
  int32_t n_q_heads, n_kv, group, hd, bs, part_len;
  float scale;
  bool f16;
  void (*score_fn)(const internal::ScoreArgs&);  // the kernels RunItem calls
  void (*mix_fn)(const internal::MixArgs&);
  const TokenPlacement* place;
  const KvLayer* kv;
  const int64_t*
      first_part;  // [n_tokens + 1] a token's parts are [first_part[t], first_part[t + 1])
  const int32_t* part_token;  // [parts] the token of a part
  // Parts of multi-part tokens: unscaled outputs [parts, n_q_heads, hd],
  // maxes and sums [parts, n_q_heads].
  float* part_out;
  float* part_max;
  float* part_sum;
  PendingItems* pending;  // [n_tokens]
  float* out;             // [n_tokens, n_q_heads, hd]
};

// Merges the parts of token t: out_h = sum_c e_c o_c / sum_c e_c l_c with
// e_c = FastExp(m_c - M), M the largest m_c, over the parts c in order.
void MergeParts(const AttentionCall& a, int32_t t) {
  const int64_t f = a.first_part[t];
  const int32_t parts = static_cast<int32_t>(a.first_part[t + 1] - f);
  const int32_t nh = a.n_q_heads, hd = a.hd;
  absl::InlinedVector<float, 64> e(parts);
  for (int32_t h = 0; h < nh; ++h) {
    const float* m = a.part_max + f * nh + h;
    const float* l = a.part_sum + f * nh + h;
    float big = m[0];
    for (int32_t c = 1; c < parts; ++c) big = std::max(big, m[int64_t{c} * nh]);
    float total = 0.0f;
    for (int32_t c = 0; c < parts; ++c) {
      e[c] = FastExp(m[int64_t{c} * nh] - big);
      total += e[c] * l[int64_t{c} * nh];
    }
    const float inv = 1.0f / total;
    float* oh = a.out + (int64_t{t} * nh + h) * hd;
    const float* o = a.part_out + (f * nh + h) * hd;
    for (int32_t d = 0; d < hd; ++d) oh[d] = e[0] * o[d];
    for (int32_t c = 1; c < parts; ++c) {
      o += int64_t{nh} * hd;
      for (int32_t d = 0; d < hd; ++d) oh[d] += e[c] * o[d];
    }
    for (int32_t d = 0; d < hd; ++d) oh[d] *= inv;
  }
}

// Where part `part` of its token sits: positions [p0, p0 + len) of
// sequence seq. Part c of n takes KV blocks [c * blocks / n, (c + 1) *
// blocks / n): at most part_len positions (n = ceil(context / part_len)),
// sizes within a block of each other.
struct PartSpan {
  int32_t t, seq, p0, len;
  bool whole;  // the token's only part
};
PartSpan SpanOf(const AttentionCall& a, int64_t part) {
  const TokenPlacement& place = *a.place;
  const int32_t t = a.part_token[part];
  const int32_t context = place.pos[t] + 1;
  const int64_t blocks = (context + a.bs - 1) / a.bs;
  const int64_t n_parts = a.first_part[t + 1] - a.first_part[t];
  const int64_t c = part - a.first_part[t];
  const int32_t p0 = static_cast<int32_t>(c * blocks / n_parts) * a.bs;
  const int32_t len =
      std::min(context, static_cast<int32_t>((c + 1) * blocks / n_parts) * a.bs) - p0;
  return {t, place.seq[t], p0, len, n_parts == 1};
}

// Queues the first kWarmKPages K pages that item (part, slot)'s Score reads.
void QueueKPages(const AttentionCall& a, int64_t part, int32_t slot, LinePrefetcher* pf) {
  const PartSpan s = SpanOf(a, part);
  const int32_t* pages =
      a.kv->k_pages + (int64_t{s.seq} * a.place->max_blocks + s.p0 / a.bs) * a.n_kv + slot;
  const int64_t page_bytes = int64_t{a.bs} * a.hd * (a.f16 ? 2 : 4);
  const int32_t n = std::min<int32_t>(internal::kWarmKPages, (s.len + a.bs - 1) / a.bs);
  for (int32_t i = 0; i < n; ++i) {
    pf->Add(static_cast<const char*>(a.kv->k) + pages[int64_t{i} * a.n_kv] * page_bytes,
            page_bytes);
  }
}

// Queues the V rows of KV head g in the first kWarmVBlocks blocks of s; false
// when pf had no room for all of them.
bool QueueVRows(const AttentionCall& a, const PartSpan& s, int32_t g, LinePrefetcher* pf) {
  const int32_t* table = a.place->block_tables + int64_t{s.seq} * a.place->max_blocks + s.p0 / a.bs;
  const int64_t row_bytes = int64_t{a.hd} * (a.f16 ? 2 : 4);
  const int32_t n = std::min(s.len, internal::kWarmVBlocks * a.bs);
  bool all = true;
  for (int32_t i = 0; i < n; ++i) {
    all &= pf->Add(static_cast<const char*>(a.kv->v) +
                       ((int64_t{table[i / a.bs]} * a.bs + i % a.bs) * a.n_kv + g) * row_bytes,
                   row_bytes);
  }
  return all;
}

// One work item: Score for the representatives that read K slot `slot`, over
// the positions of `part`, then Mix for every head they represent (members
// use their representative's probabilities bit for bit, and CHAI skips
// their q k^T work). scratch: [n_q_heads * (part_len + 3)] floats. k_warm:
// the item's first kWarmKPages K pages were queued already (by the item
// before, QueueKPages); next: lines the Mixes request for the item after.
void RunItem(const AttentionCall& a, int64_t part, int32_t slot, float* scratch, bool k_warm,
             LinePrefetcher* next) {
  const TokenPlacement& place = *a.place;
  const KvLayer& kv = *a.kv;
  const int32_t nh = a.n_q_heads;
  const PartSpan span = SpanOf(a, part);
  const int32_t t = span.t, seq = span.seq, p0 = span.p0, len = span.len;
  const bool whole = span.whole;
  const int32_t* sh = kv.score_head + int64_t{seq} * nh;
  const int32_t* ks = kv.k_slot + int64_t{seq} * nh;
  int32_t reps[kMaxGroup];
  int32_t n_reps = 0;
  for (int32_t h = 0; h < nh; ++h) {
    if (sh[h] == h && ks[h] == slot) reps[n_reps++] = h;
  }
  if (n_reps == 0) {
    next->Rest();
    return;
  }
  // Heads of KV head g that Mix with this slot's probabilities.
  const auto mix_heads = [&](int32_t g, int32_t* heads) {
    int32_t n = 0;
    for (int32_t h = g * a.group; h < (g + 1) * a.group; ++h) {
      if (ks[sh[h]] == slot) heads[n++] = h;
    }
    return n;
  };
  // Score requests the first Mix's first V blocks while it works.
  int32_t heads[kMaxGroup];
  int32_t first_g = 0;
  while (first_g < a.n_kv && mix_heads(first_g, heads) == 0) ++first_g;
  LinePrefetcher v_warm;
  const bool v_queued = first_g < a.n_kv && QueueVRows(a, span, first_g, &v_warm);
  float* probs = scratch;  // [nh, len]: the representatives' rows
  float* max_s = scratch + int64_t{nh} * a.part_len;
  float* sum_s = max_s + nh;
  float* inv_s = sum_s + nh;
  const ScoreArgs score{a.q + int64_t{t} * nh * a.hd,
                        reps,
                        n_reps,
                        kv.k,
                        a.f16,
                        kv.k_pages + (int64_t{seq} * place.max_blocks + p0 / a.bs) * a.n_kv + slot,
                        a.n_kv,
                        len,
                        a.bs,
                        a.hd,
                        a.scale,
                        probs,
                        max_s,
                        sum_s,
                        k_warm ? internal::kWarmKPages : 0,
                        &v_warm};
  a.score_fn(score);
  v_warm.Rest();  // what Score did not request (all of it, for the portable one)
  if (whole) {
    for (int32_t j = 0; j < n_reps; ++j) inv_s[reps[j]] = 1.0f / sum_s[reps[j]];
  }
  float* dst = whole ? a.out + int64_t{t} * nh * a.hd : a.part_out + part * nh * a.hd;
  // One Mix per KV head, over the heads of this slot's representatives.
  for (int32_t g = first_g; g < a.n_kv; ++g) {
    const int32_t n = mix_heads(g, heads);
    if (n == 0) continue;
    const MixArgs mix{heads,
                      sh,
                      n,
                      kv.v,
                      a.f16,
                      place.block_tables + int64_t{seq} * place.max_blocks + p0 / a.bs,
                      len,
                      a.bs,
                      a.n_kv,
                      g,
                      a.hd,
                      probs,
                      whole ? inv_s : nullptr,
                      dst,
                      g == first_g && v_queued ? internal::kWarmVBlocks : 0,
                      next};
    a.mix_fn(mix);
    if (!whole) {
      for (int32_t j = 0; j < n; ++j) {
        a.part_max[part * nh + heads[j]] = max_s[sh[heads[j]]];
        a.part_sum[part * nh + heads[j]] = sum_s[sh[heads[j]]];
      }
    }
  }
  next->Rest();  // what the Mixes did not request (all of it, for the portable one)
}

// The widest instruction set this CPU and max_isa allow among those whose
// kernel takes the shape: an index into the {portable, AVX2, AVX-512}
// tables below (SimdIsa's order).
int WidestLevel(SimdIsa max_isa, bool avx2_takes_it, bool avx512_takes_it) {
  if (max_isa >= SimdIsa::kAvx512 && internal::CpuHasAvx512F() && avx512_takes_it) return 2;
  if (max_isa >= SimdIsa::kAvx2 && internal::CpuHasAvx2Fma() && avx2_takes_it) return 1;
  return 0;
}

constexpr void (*kScoreFns[])(const internal::ScoreArgs&) = {
    internal::ScoreGeneric, internal::ScoreAvx2, internal::ScoreAvx512};
constexpr void (*kMixFns[])(const internal::MixArgs&) = {internal::MixGeneric, internal::MixAvx2,
                                                         internal::MixAvx512};

}  // namespace

void PagedAttention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                    const KvLayer& kv, DType kv_dtype, float* out, ThreadPool* pool,
                    SimdIsa max_isa) {
  if (kv.n_kv_heads <= 0 || n_q_heads != kv.n_q_heads || n_q_heads % kv.n_kv_heads != 0 ||
      n_q_heads / kv.n_kv_heads > kMaxGroup ||
      (kv_dtype != DType::kF32 && kv_dtype != DType::kF16)) {
    std::abort();  // Programmer error: see REQUIRES in ops.h.
  }
  const int32_t n_tokens = place.n_tokens;
  const int32_t n_kv = kv.n_kv_heads;
  const int32_t hd = kv.head_dim;
  // Each token's context [0, pos] is cut into ceil((pos + 1) / part_len)
  // parts of whole KV blocks by its position alone, whatever else is in the
  // batch, so a token's bits never depend on the batch. Work items are
  // (part, K slot) pairs (RunItem). A token with one part is finished by
  // its items; the item that finishes the last part of a longer context
  // merges its parts (MergeParts; the merge's order is fixed, so which
  // thread runs it does not matter).
  const int32_t part_len = kv.block_size * std::max(1, kPartPositions / kv.block_size);
  static thread_local std::vector<int64_t> first_part;
  static thread_local std::vector<int32_t> part_token;
  static thread_local std::vector<float> part_out, part_max, part_sum;
  static thread_local std::unique_ptr<PendingItems[]> pending;
  static thread_local int32_t pending_cap = 0;
  first_part.resize(n_tokens + 1);
  first_part[0] = 0;
  for (int32_t t = 0; t < n_tokens; ++t) {
    first_part[t + 1] = first_part[t] + (place.pos[t] + part_len) / part_len;
  }
  const int64_t n_parts = first_part[n_tokens];
  part_token.resize(n_parts);
  if (pending_cap < n_tokens) {
    pending = std::make_unique<PendingItems[]>(n_tokens);
    pending_cap = n_tokens;
  }
  for (int32_t t = 0; t < n_tokens; ++t) {
    const int64_t parts = first_part[t + 1] - first_part[t];
    std::fill_n(part_token.begin() + first_part[t], parts, t);
    pending[t].n.store(static_cast<int32_t>(parts) * n_kv, std::memory_order_relaxed);
  }
  if (n_parts > n_tokens) {
    part_out.resize(n_parts * n_q_heads * hd);
    part_max.resize(n_parts * n_q_heads);
    part_sum.resize(n_parts * n_q_heads);
  }
  // The items read the thread_locals through `call`: on a worker thread
  // the names would be the worker's own (empty) instances.
  const AttentionCall call{
      q,
      n_q_heads,
      n_kv,
      n_q_heads / n_kv,
      hd,
      kv.block_size,
      part_len,
      1.0f / std::sqrt(static_cast<float>(hd)),
      kv_dtype == DType::kF16,
      kScoreFns[WidestLevel(max_isa, internal::Avx2ScoreSupports(kv.block_size),
                            internal::Avx512ScoreSupports(kv.block_size))],
      kMixFns[WidestLevel(max_isa, internal::Avx2MixSupports(hd), internal::Avx512MixSupports(hd))],
      &place,
      &kv,
      first_part.data(),
      part_token.data(),
      part_out.data(),
      part_max.data(),
      part_sum.data(),
      pending.get(),
      out};
  pool->ParallelFor(n_parts * n_kv, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scratch;  // this thread's own
    scratch.resize(std::max(scratch.size(), static_cast<size_t>(n_q_heads) * (part_len + 3)));
    // Each item's Mix requests the next item's first K pages.
    LinePrefetcher next;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t part = item / n_kv;
      next.Clear();
      if (item + 1 < end) {
        QueueKPages(call, (item + 1) / n_kv, static_cast<int32_t>((item + 1) % n_kv), &next);
      }
      RunItem(call, part, static_cast<int32_t>(item % n_kv), scratch.data(), item > begin, &next);
      const int32_t t = call.part_token[part];
      // acq_rel: the merging thread sees every other item's part outputs.
      if (call.first_part[t + 1] - call.first_part[t] > 1 &&
          call.pending[t].n.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        MergeParts(call, t);
      }
    }
  });
}

}  // namespace chai::kernels::cpu
