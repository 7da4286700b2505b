// Internal to the CPU attention (ops.cc PagedAttention): the two per-item
// kernels of paged attention and their portable and AVX2 implementations.
// Not for use outside kernels/cpu/.
//
// Both run over one span of a sequence's positions (PagedAttention splits a
// context into fixed spans and merges them). Score: for the representative
// query heads that read one K slot of one sequence, s[p] = dot(q_h, k_p) *
// scale over positions [0, len) of the span, then the softmax numerators
// exp(s - max), their max and their sum. Mix: for query heads sharing one
// KV head, out_h = sum_p probs[score_head[h]][p] * v_p, times
// inv_sum[score_head[h]] when the span is the whole context.
//
// K and V elements are float or IEEE fp16 (the CPU backend's KvDtype());
// fp16 values are widened exactly (F16C's vcvtph2ps, or Fp16ToFp32) before
// any arithmetic, so an fp16 cache gives the bits a float cache holding the
// same (fp16-representable) values gives.
//
// Both implementations do, per output element, the same float operations in
// the same order (the library builds with -ffp-contract=off; products are
// accumulated with fused multiply-adds, std::fma in the portable kernels):
//  - dot: eight lane partials acc[k] = fma(q[8i+k], k[8i+k], acc[k]) over
//    i, then (((acc0+acc4)+(acc2+acc6))+((acc1+acc5)+(acc3+acc7))) + tail
//    (tail = fma over the rest, in order), then * scale;
//  - mix: o[d] = 0, then o[d] = fma(w_p, v_p[d], o[d]) for p in order, then
//    o[d] * inv;
// so their results are bit-identical (tested). On a CPU without FMA,
// std::fma is a software routine and the portable kernels run several times
// slower; only such CPUs (which lack the AVX2 path anyway) and head sizes
// that are not a multiple of 8 take them. The AVX2 ones only overlap
// independent positions (Score) and keep o in registers (Mix), which the
// portable loop's store-to-load chain through o and its single add chain
// per dot product prevent.
//
// Thread-safety: pure functions of their arguments; callers give each call
// its own output rows.
#ifndef CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_
#define CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_

#include <cstdint>

namespace chai::kernels::cpu::internal {

inline constexpr int32_t kMaxGroup = 64;  // query heads per KV head

struct ScoreArgs {
  const float* q;        // token's queries [n_q_heads, head_dim]
  const int32_t* heads;  // the representatives [n_heads]
  int32_t n_heads;       // 1..kMaxGroup
  const void* k;         // K pool [pages, block_size, head_dim], float or fp16
  bool f16;              // K and V elements are IEEE fp16 (else float)
  const int32_t* pages;  // this sequence's page of this slot for block b: pages[b * page_stride]
  int32_t page_stride;
  int32_t len, block_size, head_dim;
  float scale;
  float* probs;  // out: [n_q_heads, len] rows of the representatives (exp(s - max))
  float* max;    // out: [n_q_heads] a representative's largest score
  float* sum;    // out: [n_q_heads] the sum of its row of probs
};

struct MixArgs {
  const int32_t* heads;       // query heads [n_heads], all reading KV head `kv_head`
  const int32_t* score_head;  // the sequence's map [n_q_heads]
  int32_t n_heads;
  const void* v;         // V pool [blocks, block_size, n_kv_heads, head_dim]
  bool f16;              // as ScoreArgs::f16
  const int32_t* table;  // the sequence's block table
  int32_t len, block_size, n_kv_heads, kv_head, head_dim;
  const float* probs;    // [n_q_heads, len]
  const float* inv_sum;  // [n_q_heads] multiplies the outputs; nullptr: left unscaled
  float* out;            // token's output [n_q_heads, head_dim]
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

// REQUIRES: CpuHasAvx2Fma() and Avx2AttentionSupports(head_dim).
bool Avx2AttentionSupports(int32_t head_dim);
void ScoreAvx2(const ScoreArgs& a);
void MixAvx2(const MixArgs& a);

}  // namespace chai::kernels::cpu::internal

#endif  // CHAI_KERNELS_CPU_ATTENTION_KERNELS_H_
