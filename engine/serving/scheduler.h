// Continuous-batching scheduler: decides, step by step, which sequences run
// and how many of their tokens go into the next forward pass.
//
// Pure bookkeeping: no threads, no model, no clock. The engine (or a test's
// fake model step) calls Schedule(), runs the returned plan, then Commit()s it
// and reports sampled tokens with AppendToken(). KV memory is claimed through
// the KvAllocator interface, whose Reserve status is the truth (a CHAI cache
// pages K per head, so free blocks alone do not say whether a sequence fits).
//
// Policy (vLLM v1's, FCFS):
//   1. Running sequences with one token to compute (decode), oldest first.
//   2. Running sequences still prefilling (chunked, or recomputing after a
//      preemption), oldest first, at most prefill_chunk tokens each, from the
//      budget the decodes left.
//   3. Waiting sequences in arrival order while a slot (max_num_seqs), budget
//      and KV memory allow. Admission stops at the first one that does not
//      fit, so a later arrival never overtakes an earlier one.
// A sequence's first chunk holds at least min_first_chunk tokens (CHAI
// clusters on the first 5 prompt tokens inside one forward pass).
//
// Preemption (recompute): when a running sequence cannot get the KV memory
// for its tokens, the youngest running sequence (latest arrival) is
// preempted: its memory is released, its computed count reset to 0, and it
// returns to the waiting queue ahead of every later arrival, keeping its
// generated tokens, so it later re-prefills prompt + generated. If the
// sequence that needs memory is itself the youngest, it is the one preempted.
// A sequence that cannot fit even alone is reported in StepPlan::failed and
// dropped (the engine sizes its cache so this does not happen).
//
// Thread-safety: not thread-safe; one owner thread.
#ifndef CHAI_ENGINE_SERVING_SCHEDULER_H_
#define CHAI_ENGINE_SERVING_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"

namespace chai::engine {

// KV memory as the scheduler sees it, per sequence id. The engine implements
// it over KvCache (slots, blocks, CHAI K pages); tests use a fake pool.
class KvAllocator {
 public:
  virtual ~KvAllocator() = default;
  // Claims a sequence's cache entry (a KvCache slot) holding nothing yet.
  // RESOURCE_EXHAUSTED when none is free.
  virtual absl::Status Open(int64_t seq, bool chai) = 0;
  // Grows the sequence's memory to hold positions [0, n_positions).
  // RESOURCE_EXHAUSTED with nothing taken when memory is short.
  // REQUIRES: Open(seq) succeeded and Close(seq) was not called since.
  virtual absl::Status Reserve(int64_t seq, int64_t n_positions) = 0;
  // Releases the entry and all its memory. REQUIRES: open.
  virtual void Close(int64_t seq) = 0;
};

struct SchedulerOptions {
  int32_t max_num_seqs = 64;        // running sequences at most
  int32_t max_batch_tokens = 2048;  // tokens per step at most
  int32_t prefill_chunk = 512;      // prefill tokens per sequence per step

  // INVALID_ARGUMENT unless all are >= 1.
  absl::Status Validate() const;
};

// One sequence's part of a step: positions [start, start + num_tokens) of its
// token list (prompt followed by generated tokens).
struct ScheduledChunk {
  int64_t seq = 0;
  int64_t start = 0;
  int32_t num_tokens = 0;
  // The chunk ends at the sequence's last token, so the step's logits for its
  // last row give the next token to sample.
  bool samples = false;
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;  // decodes first, then prefills
  int32_t num_tokens = 0;              // sum of chunk sizes
  int32_t num_prefill_tokens = 0;      // of which in chunks with start < prompt
  std::vector<int64_t> admitted;       // left the waiting queue this step
  std::vector<int64_t> preempted;      // returned to the waiting queue
  std::vector<int64_t> failed;         // can never fit; already removed
};

class Scheduler {
 public:
  // `allocator` is not owned and must outlive the scheduler.
  // REQUIRES: options.Validate() is OK.
  Scheduler(const SchedulerOptions& options, KvAllocator* allocator);

  // Queues a new sequence at the back of the waiting queue.
  // INVALID_ARGUMENT if prompt_len < 1 or min_first_chunk < 1;
  // ALREADY_EXISTS if `seq` is known.
  absl::Status Add(int64_t seq, int64_t prompt_len, bool chai, int32_t min_first_chunk = 1);

  // Forgets a sequence (finished, cancelled, expired), releasing its memory if
  // it holds any. No-op for unknown ids.
  void Remove(int64_t seq);

  // Plans the next step, claiming the KV memory its chunks need.
  StepPlan Schedule();

  // Records that the plan's chunks were computed (their K/V are cached).
  // Chunks of sequences removed since Schedule() are skipped.
  void Commit(const StepPlan& plan);

  // Records a token sampled for `seq` (it now has one more token to compute).
  // REQUIRES: seq is known.
  void AppendToken(int64_t seq);

  bool Contains(int64_t seq) const { return seqs_.contains(seq); }
  bool IsRunning(int64_t seq) const;
  int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
  int32_t num_waiting() const { return static_cast<int32_t>(waiting_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }

  // Read-only view of a sequence's counters, for the engine and tests.
  struct SeqView {
    int64_t prompt_len = 0;
    int64_t num_generated = 0;
    int64_t num_computed = 0;  // positions whose K/V are cached
    bool running = false;
  };
  SeqView View(int64_t seq) const;

  // Running ids, oldest first, and waiting ids in queue order (tests).
  const std::vector<int64_t>& running() const { return running_; }
  const std::deque<int64_t>& waiting() const { return waiting_; }

 private:
  struct Seq {
    int64_t arrival = 0;  // Add() order: the FCFS priority, kept across preemptions
    int64_t prompt_len = 0;
    int64_t num_generated = 0;
    int64_t num_computed = 0;
    int32_t min_first_chunk = 1;
    bool chai = false;
    bool running = false;
    int64_t total() const { return prompt_len + num_generated; }
  };

  // Makes room for `seq` to hold `n_positions`, preempting younger running
  // sequences (dropping their chunks from `plan`). False if `seq` itself had
  // to be preempted or failed.
  bool ReserveOrPreempt(int64_t seq, int64_t n_positions, StepPlan& plan, int32_t& budget);
  void Preempt(int64_t seq, StepPlan& plan, int32_t& budget);
  void InsertWaiting(int64_t seq);
  void AddChunk(int64_t seq, int32_t n, StepPlan& plan, int32_t& budget);

  SchedulerOptions options_;
  KvAllocator* allocator_;
  absl::flat_hash_map<int64_t, Seq> seqs_;
  std::vector<int64_t> running_;  // by arrival, oldest first
  std::deque<int64_t> waiting_;   // by arrival, oldest first
  int64_t next_arrival_ = 0;
  int64_t num_preemptions_ = 0;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_SCHEDULER_H_
