// Token history that the repetition / presence / frequency penalties need,
// kept incrementally so a step costs O(distinct tokens seen), not O(sequence
// length), and nothing is allocated per vocabulary entry (sparse: a sequence
// touching 300 distinct tokens stores 300 entries, not 49152 counters).
//
// Ownership: one per sequence, owned by the sequence state.
// Thread-safety: not thread-safe; const methods may run concurrently.
#ifndef CHAI_ENGINE_SAMPLING_PENALTY_STATE_H_
#define CHAI_ENGINE_SAMPLING_PENALTY_STATE_H_

#include <cstdint>
#include <span>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace chai::engine {

class PenaltyState {
 public:
  // One distinct token seen in the prompt or the output.
  struct Entry {
    int32_t token = 0;
    // Times the token was generated (0 for a token seen only in the prompt).
    int32_t output_count = 0;
  };

  // REQUIRES: vocab_size > 0.
  explicit PenaltyState(int64_t vocab_size) : vocab_size_(vocab_size) {}

  // Records prompt tokens: they count for the repetition penalty only.
  // INVALID_ARGUMENT (and nothing recorded) if any id is outside the vocab.
  absl::Status AddPrompt(std::span<const int32_t> tokens);

  // Records one generated token: it counts for all three penalties.
  // INVALID_ARGUMENT if the id is outside the vocab.
  absl::Status Add(int32_t token);

  // Distinct tokens seen so far, in order of first appearance (so iteration,
  // and anything computed from it, is deterministic).
  const std::vector<Entry>& entries() const { return entries_; }

  // Times `token` was generated; 0 if never.
  int32_t OutputCount(int32_t token) const;
  // Whether `token` appeared in the prompt or the output.
  bool Seen(int32_t token) const { return index_.contains(token); }

  int64_t vocab_size() const { return vocab_size_; }
  int64_t num_generated() const { return num_generated_; }

 private:
  Entry& FindOrInsert(int32_t token);

  int64_t vocab_size_;
  int64_t num_generated_ = 0;
  std::vector<Entry> entries_;
  absl::flat_hash_map<int32_t, uint32_t> index_;  // token -> position in entries_
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SAMPLING_PENALTY_STATE_H_
