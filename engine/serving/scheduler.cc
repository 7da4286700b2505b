#include "engine/serving/scheduler.h"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::Status SchedulerOptions::Validate() const {
  if (max_num_seqs < 1) return absl::InvalidArgumentError("max_num_seqs must be >= 1");
  if (max_batch_tokens < 1) return absl::InvalidArgumentError("max_batch_tokens must be >= 1");
  if (prefill_chunk < 1) return absl::InvalidArgumentError("prefill_chunk must be >= 1");
  return absl::OkStatus();
}

Scheduler::Scheduler(const SchedulerOptions& options, KvAllocator* allocator)
    : options_(options), allocator_(allocator) {
  // Programmer error (the REQUIRES): fail loudly rather than schedule nonsense.
  if (absl::Status s = options.Validate(); !s.ok() || allocator == nullptr) {
    std::fprintf(stderr, "Scheduler: %s\n",
                 allocator == nullptr ? "null allocator" : s.ToString().c_str());
    std::abort();
  }
}

absl::Status Scheduler::Add(int64_t seq, int64_t prompt_len, bool chai, int32_t min_first_chunk) {
  if (prompt_len < 1) return absl::InvalidArgumentError("a sequence needs a prompt token");
  if (min_first_chunk < 1) return absl::InvalidArgumentError("min_first_chunk must be >= 1");
  if (seqs_.contains(seq)) return absl::AlreadyExistsError(absl::StrCat("sequence ", seq));
  Seq s;
  s.arrival = next_arrival_++;
  s.prompt_len = prompt_len;
  s.min_first_chunk = min_first_chunk;
  s.chai = chai;
  seqs_.emplace(seq, s);
  waiting_.push_back(seq);
  return absl::OkStatus();
}

void Scheduler::Remove(int64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  if (it->second.running) {
    allocator_->Close(seq);
    running_.erase(std::find(running_.begin(), running_.end(), seq));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), seq));
  }
  seqs_.erase(it);
}

bool Scheduler::IsRunning(int64_t seq) const {
  auto it = seqs_.find(seq);
  return it != seqs_.end() && it->second.running;
}

Scheduler::SeqView Scheduler::View(int64_t seq) const {
  const Seq& s = seqs_.at(seq);
  return {s.prompt_len, s.num_generated, s.num_computed, s.running};
}

void Scheduler::InsertWaiting(int64_t seq) {
  const int64_t arrival = seqs_.at(seq).arrival;
  auto pos = std::find_if(waiting_.begin(), waiting_.end(),
                          [&](int64_t w) { return seqs_.at(w).arrival > arrival; });
  waiting_.insert(pos, seq);
}

void Scheduler::AddChunk(int64_t seq, int32_t n, StepPlan& plan, int32_t& budget) {
  const Seq& s = seqs_.at(seq);
  const int64_t remaining = s.total() - s.num_computed;
  plan.chunks.push_back({seq, s.num_computed, n, s.num_computed + n == s.total()});
  plan.num_tokens += n;
  if (remaining > 1) plan.num_prefill_tokens += n;
  budget -= n;
}

void Scheduler::Preempt(int64_t seq, StepPlan& plan, int32_t& budget) {
  Seq& s = seqs_.at(seq);
  allocator_->Close(seq);
  auto chunk = std::find_if(plan.chunks.begin(), plan.chunks.end(),
                            [&](const ScheduledChunk& c) { return c.seq == seq; });
  if (chunk != plan.chunks.end()) {
    plan.num_tokens -= chunk->num_tokens;
    if (s.total() - s.num_computed > 1) plan.num_prefill_tokens -= chunk->num_tokens;
    budget += chunk->num_tokens;
    plan.chunks.erase(chunk);
  }
  running_.erase(std::find(running_.begin(), running_.end(), seq));
  s.running = false;
  s.num_computed = 0;
  InsertWaiting(seq);
  plan.preempted.push_back(seq);
  ++num_preemptions_;
}

bool Scheduler::ReserveOrPreempt(int64_t seq, int64_t n_positions, StepPlan& plan,
                                 int32_t& budget) {
  for (;;) {
    const absl::Status status = allocator_->Reserve(seq, n_positions);
    if (status.ok()) return true;
    const bool short_of_memory = absl::IsResourceExhausted(status);
    if (short_of_memory && running_.back() != seq) {
      Preempt(running_.back(), plan, budget);
      continue;
    }
    if (short_of_memory && running_.size() > 1) {
      Preempt(seq, plan, budget);  // everyone else is older
      return false;
    }
    // Alone and still short, or a range error: it can never run.
    Remove(seq);
    plan.failed.push_back(seq);
    return false;
  }
}

StepPlan Scheduler::Schedule() {
  StepPlan plan;
  int32_t budget = options_.max_batch_tokens;

  // 1. Decodes, oldest first. Iterate a copy: preemption edits running_.
  const std::vector<int64_t> decode_order = running_;
  for (int64_t seq : decode_order) {
    if (budget < 1) break;
    auto it = seqs_.find(seq);
    if (it == seqs_.end() || !it->second.running) continue;
    const Seq& s = it->second;
    if (s.total() - s.num_computed != 1) continue;
    if (!ReserveOrPreempt(seq, s.num_computed + 1, plan, budget)) continue;
    AddChunk(seq, 1, plan, budget);
  }

  // 2. Running prefills (chunked or recomputing), oldest first.
  const std::vector<int64_t> prefill_order = running_;
  for (int64_t seq : prefill_order) {
    if (budget < 1) break;
    auto it = seqs_.find(seq);
    if (it == seqs_.end() || !it->second.running) continue;
    const Seq& s = it->second;
    const int64_t remaining = s.total() - s.num_computed;
    if (remaining <= 1) continue;
    const int64_t n = std::min<int64_t>({remaining, options_.prefill_chunk, budget});
    if (s.num_computed == 0 && n < std::min<int64_t>(s.min_first_chunk, remaining)) continue;
    if (!ReserveOrPreempt(seq, s.num_computed + n, plan, budget)) continue;
    AddChunk(seq, static_cast<int32_t>(n), plan, budget);
  }

  // 3. Admissions in arrival order; none in a step that had to preempt, since
  // memory is already short (admitting would only preempt again).
  while (plan.preempted.empty() && !waiting_.empty() && budget >= 1 &&
         static_cast<int32_t>(running_.size()) < options_.max_num_seqs) {
    const int64_t seq = waiting_.front();
    Seq& s = seqs_.at(seq);
    const int64_t remaining = s.total();
    const int64_t n = std::min<int64_t>(
        {remaining, std::max<int64_t>(options_.prefill_chunk, s.min_first_chunk), budget});
    if (n < std::min<int64_t>(s.min_first_chunk, remaining)) break;
    if (!allocator_->Open(seq, s.chai).ok()) break;
    if (absl::Status st = allocator_->Reserve(seq, n); !st.ok()) {
      allocator_->Close(seq);
      if (running_.empty()) {  // nothing else holds memory: it never fits
        waiting_.pop_front();
        seqs_.erase(seq);
        plan.failed.push_back(seq);
        continue;
      }
      break;
    }
    waiting_.pop_front();
    s.running = true;
    s.num_computed = 0;
    auto pos = std::find_if(running_.begin(), running_.end(),
                            [&](int64_t r) { return seqs_.at(r).arrival > s.arrival; });
    running_.insert(pos, seq);
    plan.admitted.push_back(seq);
    AddChunk(seq, static_cast<int32_t>(n), plan, budget);
  }
  return plan;
}

void Scheduler::Commit(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    auto it = seqs_.find(c.seq);
    if (it == seqs_.end() || !it->second.running) continue;
    assert(it->second.num_computed == c.start);
    it->second.num_computed = c.start + c.num_tokens;
  }
}

void Scheduler::AppendToken(int64_t seq) { ++seqs_.at(seq).num_generated; }

}  // namespace chai::engine
