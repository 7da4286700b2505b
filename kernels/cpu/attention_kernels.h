// Internal to the CPU attention (ops.cc PagedAttention): the two per-item
// kernels of paged attention and their portable, AVX2 and AVX-512
// implementations. Not for use outside kernels/cpu/.
//
// Both run over one span of a sequence's positions (PagedAttention splits a
// context into fixed spans and merges them). Score: for the representative
// query heads that read one K slot of one sequence, s[p] = dot(q_h, k_p) *
// scale over positions [0, len) of the span, then the softmax numerators
// exp(s - max), their max and their sum. Mix: for query heads sharing one
// KV head, out_h = sum_p probs[score_head[h]][p] * v_p, times
// inv_sum[score_head[h]] when the span is the whole context.
//
// The CPU backend keeps each K page transposed, [head_dim, block_size]:
// element d of the key at position i of the page sits at d * block_size + i.
// Score then reads, per element d, one contiguous vector of positions and
// multiply-adds it into every head's vector of scores: no horizontal sums
// (the [block_size, head_dim] rows cost one reduction per score, a third of
// the instructions at head_dim 64), and a vector width that is free to grow.
//
// K and V elements are float or IEEE fp16 (the CPU backend's KvDtype());
// fp16 values are widened exactly (F16C's vcvtph2ps, or Fp16ToFp32) before
// any arithmetic, so an fp16 cache gives the bits a float cache holding the
// same (fp16-representable) values gives.
//
// All implementations do, per output element, the same float operations in
// the same order (the library builds with -ffp-contract=off; products are
// accumulated with fused multiply-adds, std::fma in the portable kernels):
//  - score: s = 0, then s = fma(q[d], k[d], s) for d in order, then
//    s * scale;
//  - mix: o[d] = 0, then o[d] = fma(w_p, v_p[d], o[d]) for p in order, then
//    o[d] * inv;
// so their results are bit-identical whatever the vector width (tested). On
// a CPU without FMA, std::fma is a software routine and the portable kernels
// run several times slower; only such CPUs (which lack the SIMD paths
// anyway) and shapes the SIMD kernels do not take (Score: block sizes that
// are not a multiple of 8; Mix: head sizes that are not) take them.
//
// Thread-safety: pure functions of their arguments; callers give each call
// its own output rows.
#ifndef CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_
#define CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_

#include <cstdint>

namespace chai::kernels::cpu::internal {

inline constexpr int32_t kMaxGroup = 64;  // query heads per KV head

// What a caller may request ahead of a kernel (warm_pages): the first K
// pages of Score's span (its first group of vectors with AVX-512 and three
// heads) and the first V blocks of Mix's (also how far ahead Mix requests
// V rows), which the SIMD kernels would otherwise fetch in a burst before
// their first arithmetic.
inline constexpr int32_t kWarmKPages = 3;
inline constexpr int32_t kWarmVBlocks = 2;

// Memory that the next kernel will read, requested one cache line at a time
// (Next) while the current kernel works. The K and V of a decode step come
// from the L3 or DRAM, and a burst of a few hundred prefetches stalls the
// core as soon as its line fill buffers are full (docs/PERFORMANCE.md,
// session 15): spread between the arithmetic they stall nothing.
//
// Not thread-safe; one per work item. Prefetches are hints: a line never
// requested costs speed, not results.
class LinePrefetcher {
 public:
  // Adds [p, p + bytes) (p 64-byte aligned for whole lines); false, and
  // nothing added, when kMaxRuns runs are queued already.
  bool Add(const void* p, int64_t bytes) {
    if (n_ == kMaxRuns) return false;
    run_[n_] = static_cast<const char*>(p);
    bytes_[n_++] = bytes;
    return true;
  }
  // Requests the next line, if any, and returns its address (nullptr when
  // every line was requested).
  const char* Next() {
    if (i_ == n_) return nullptr;
    const char* line = run_[i_] + off_;
    __builtin_prefetch(line, 0, 3);
    off_ += 64;
    if (off_ >= bytes_[i_]) {
      ++i_;
      off_ = 0;
    }
    return line;
  }
  // Requests every line not yet requested.
  void Rest() {
    while (i_ < n_) Next();
  }
  void Clear() {
    n_ = i_ = 0;
    off_ = 0;
  }

  static constexpr int kMaxRuns = 64;

 private:
  const char* run_[kMaxRuns];
  int64_t bytes_[kMaxRuns];
  int32_t n_ = 0, i_ = 0;
  int64_t off_ = 0;
};

struct ScoreArgs {
  const float* q;        // token's queries [n_q_heads, head_dim]
  const int32_t* heads;  // the representatives [n_heads]
  int32_t n_heads;       // 1..kMaxGroup
  const void* k;         // K pool [pages, head_dim, block_size] (transposed pages), float or fp16
  bool f16;              // K and V elements are IEEE fp16 (else float)
  const int32_t* pages;  // this sequence's page of this slot for block b: pages[b * page_stride]
  int32_t page_stride;
  int32_t len, block_size, head_dim;
  float scale;
  float* probs;  // out: [n_q_heads, len] rows of the representatives (exp(s - max))
  float* max;    // out: [n_q_heads] a representative's largest score
  float* sum;    // out: [n_q_heads] the sum of its row of probs
  // Pages [0, warm_pages) of the span were requested already (a caller's
  // LinePrefetcher); the kernel requests the rest itself.
  int32_t warm_pages = 0;
  // What runs after this kernel: the SIMD kernels request a line of it per
  // step of their loop; the caller requests what is left (Rest) once the
  // kernel returns. nullptr: none.
  LinePrefetcher* then = nullptr;
};

struct MixArgs {
  const int32_t* heads;       // query heads [n_heads], all reading KV head `kv_head`
  const int32_t* score_head;  // the sequence's map [n_q_heads]
  int32_t n_heads;
  const void* v;         // V pool [blocks, block_size, n_kv_heads, head_dim]
  bool f16;              // as ScoreArgs::f16
  const int32_t* table;  // the sequence's block table
  int32_t len, block_size, n_kv_heads, kv_head, head_dim;
  const float* probs;              // [n_q_heads, len]
  const float* inv_sum;            // [n_q_heads] multiplies the outputs; nullptr: left unscaled
  float* out;                      // token's output [n_q_heads, head_dim]
  int32_t warm_pages = 0;          // as ScoreArgs::warm_pages (V blocks of kv_head)
  LinePrefetcher* then = nullptr;  // as ScoreArgs::then
};

void ScoreGeneric(const ScoreArgs& a);
void MixGeneric(const MixArgs& a);

// The parts both implementations share (portable code): Score's softmax
// numerators and sums from the rows of raw scores and each representative's
// max (max_s[j] for a.heads[j]); Mix's final out_h *= inv_sum[score_head[h]]
// (nothing when inv_sum is nullptr).
// Each numerator is FastExp(s - max). The sum: positions
// below 8 * floor(len / 8) in 8 lane partials (lane p % 8), reduced by the
// Hsum tree, plus the remaining positions summed in order.
// ExpNormalizeAvx2 gives the same bits.
void ExpNormalize(const ScoreArgs& a, const float* max_s);
void ExpNormalizeAvx2(const ScoreArgs& a, const float* max_s);
void ScaleByInvSum(const MixArgs& a);

// REQUIRES: CpuHasAvx2Fma(), and Avx2ScoreSupports(block_size) (Score) or
// Avx2MixSupports(head_dim) (Mix).
bool Avx2ScoreSupports(int32_t block_size);
bool Avx2MixSupports(int32_t head_dim);
void ScoreAvx2(const ScoreArgs& a);
void MixAvx2(const MixArgs& a);

// AVX-512F (with the OS saving the ZMM state) and CpuHasAvx2Fma().
bool CpuHasAvx512F();
// REQUIRES: CpuHasAvx512F(), and Avx512ScoreSupports(block_size) (Score) or
// Avx512MixSupports(head_dim) (Mix).
bool Avx512ScoreSupports(int32_t block_size);
bool Avx512MixSupports(int32_t head_dim);
void ScoreAvx512(const ScoreArgs& a);
void MixAvx512(const MixArgs& a);

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_
