// BPE merge engine shared by byte-level BPE and SentencePiece-style BPE.
//
// A word arrives as a sequence of initial symbols (token ids, or negative
// placeholders for symbols the vocabulary lacks). Adjacent pairs are merged, always the pair of
// lowest rank first, ties broken by leftmost position, until no mergeable
// pair remains: this is both Hugging Face's rank-ordered BPE and (with ranks
// derived from scores, see bpe_ranks in tokenizer.cc) SentencePiece's
// score-ordered BPE. A priority queue keyed by (rank, position) with lazy
// invalidation makes a word of n symbols cost O(n log n).
//
// Thread-safety: immutable after construction; Merge() is const and safe to
// call concurrently.
#ifndef CHAI_ENGINE_TOKENIZER_BPE_H_
#define CHAI_ENGINE_TOKENIZER_BPE_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace chai::engine {

class BpeMerger {
 public:
  struct Merge {
    int32_t rank;    // lower merges first
    int32_t result;  // token id of the merged symbol
  };

  // Registers that (left, right) merges into `result` with `rank`. If the
  // pair is already present the lower rank wins (HF keeps the first merge).
  void AddMerge(int32_t left, int32_t right, int32_t rank, int32_t result);
  size_t num_merges() const { return merges_.size(); }

  // Merges `symbols` in place. Negative values are opaque placeholders for
  // symbols outside the vocabulary: they never merge and are kept in place.
  void Apply(std::vector<int32_t>* symbols) const;

 private:
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  const Merge* Find(int32_t left, int32_t right) const;

  absl::flat_hash_map<uint64_t, Merge> merges_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_BPE_H_
