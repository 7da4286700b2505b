#include "engine/sampling/penalty_state.h"

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

absl::Status TokenOutOfRange(int32_t token, int64_t vocab_size) {
  return absl::InvalidArgumentError(
      absl::StrCat("token id ", token, " is outside the vocabulary [0, ", vocab_size, ")"));
}

}  // namespace

absl::Status PenaltyState::AddPrompt(std::span<const int32_t> tokens) {
  // Check everything first so a bad prompt leaves the state untouched.
  for (int32_t t : tokens) {
    if (t < 0 || t >= vocab_size_) return TokenOutOfRange(t, vocab_size_);
  }
  for (int32_t t : tokens) FindOrInsert(t);
  return absl::OkStatus();
}

absl::Status PenaltyState::Add(int32_t token) {
  if (token < 0 || token >= vocab_size_) return TokenOutOfRange(token, vocab_size_);
  ++FindOrInsert(token).output_count;
  ++num_generated_;
  return absl::OkStatus();
}

int32_t PenaltyState::OutputCount(int32_t token) const {
  auto it = index_.find(token);
  return it == index_.end() ? 0 : entries_[it->second].output_count;
}

PenaltyState::Entry& PenaltyState::FindOrInsert(int32_t token) {
  auto [it, inserted] = index_.try_emplace(token, static_cast<uint32_t>(entries_.size()));
  if (inserted) entries_.push_back(Entry{token, 0});
  return entries_[it->second];
}

}  // namespace chai::engine
