// The serving engine: accepts generation requests from any thread and runs
// them with continuous (iteration-level) batching on one engine thread.
//
// Each engine step drains the inbound queue, applies cancellations and
// deadlines (their KV blocks are freed in that same step), asks the Scheduler
// for a plan (decode tokens first, then chunked prefill, FCFS admission,
// preemption by recompute when the KV cache runs out), runs one
// ModelRunner::Forward over the flat batch, samples one token for every
// sequence whose computed tokens reached its end, detokenizes incrementally
// (whole UTF-8 characters only; text that could be the start of a stop string
// is held back until it is known not to be one) and hands updates to the
// requests' sinks. Finished sequences are retired at once. See
// docs/SERVING.md.
//
// Determinism: a sequence's logits do not depend on what else is in the batch
// (the runner computes every row independently), and each request has its own
// Sampler seeded from its SamplingParams, so a seeded or greedy request gives
// the same tokens alone or among many others, and after a preemption.
//
// Ownership: the engine borrows `model` and `backend` (both must outlive it)
// and owns one thread, which owns the ModelRunner, the KvCache and the
// Scheduler (DESIGN.md section 6). The observer, if any, is borrowed and must
// outlive the engine.
//
// Thread-safety: Submit, Cancel, StopAccepting, Shutdown and Snapshot may be
// called from any thread concurrently. The only cross-thread points are the
// inbound queue (one mutex + condition variable) and the sinks, which the
// engine thread calls. Sinks and observer methods run on the engine thread,
// never under the engine's lock, and must not block; a sink may call Submit,
// Cancel or Snapshot, but never Shutdown or the destructor (the engine thread
// cannot join itself).
#ifndef CHAI_ENGINE_SERVING_REQUEST_ENGINE_H_
#define CHAI_ENGINE_SERVING_REQUEST_ENGINE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/chai/chai_plan.h"
#include "engine/loaded_model.h"
#include "engine/serving/engine_observer.h"
#include "engine/serving/request.h"
#include "kernels/backend.h"

namespace chai::engine {

struct RequestEngineOptions {
  // Sequences holding KV blocks at once (vLLM's --max-num-seqs).
  int32_t max_num_seqs = 64;
  // Tokens (prefill + decode) in one forward pass (--max-num-batched-tokens).
  // >= max_num_seqs so every running sequence can decode in one step.
  int32_t max_batch_tokens = 2048;
  // Accepted requests not yet scheduled for the first time, beyond which
  // Submit returns RESOURCE_EXHAUSTED.
  int32_t max_queue = 1024;
  // Longest sequence (prompt + max_tokens); 0 = the model's context length.
  // May not exceed the model's context length.
  int64_t max_model_len = 0;
  // Bytes for the K and V caches together. Blocks are counted at plain
  // attention's cost, and must hold at least one max_model_len sequence.
  int64_t kv_cache_bytes = int64_t{1} << 30;
  // Positions per KV block.
  int32_t block_size = 16;
  // Most prompt tokens of one sequence per step (chunked prefill). >= 5, so a
  // CHAI sequence's first chunk holds the 5 tokens it is clustered on.
  int32_t prefill_chunk = 512;
  // CHAI per layer; empty vectors = plain attention for every request. A
  // request uses it when GenerationRequest::chai is set and its prompt has at
  // least 5 tokens.
  ChaiPlan chai;

  // INVALID_ARGUMENT naming the field for values out of range. The model-
  // dependent checks (context length, KV cache size) happen in Create.
  absl::Status Validate() const;
};

// Counts for health checks, metrics and tests; a consistent copy taken at the
// end of the engine's last step (or the last cancellation pass).
struct EngineSnapshot {
  bool accepting = true;  // false after StopAccepting or Shutdown
  int32_t inbound = 0;    // submitted, not yet seen by the engine thread
  int32_t running = 0;    // sequences holding KV blocks
  int32_t waiting = 0;    // in the scheduler, waiting for blocks/budget
  int32_t in_flight = 0;  // every accepted request not yet finished
  int64_t kv_blocks_total = 0;
  int64_t kv_blocks_used = 0;
  double kv_usage_ratio = 0;  // used / total
  int64_t k_bytes_in_use = 0;
  int64_t v_bytes_in_use = 0;
  int64_t steps = 0;            // engine loop iterations completed
  int64_t num_preemptions = 0;  // total since start
  int64_t max_model_len = 0;    // the limit in force
};

class RequestEngine {
 public:
  // Builds the runner and a KV cache of options.kv_cache_bytes and starts the
  // engine thread. INVALID_ARGUMENT for bad options, a max_model_len over the
  // model's context, or a cache too small for one max_model_len sequence;
  // errors of ModelRunner/KvCache creation as they come. REQUIRES: model and
  // backend non-null and outliving the engine.
  static absl::StatusOr<std::unique_ptr<RequestEngine>> Create(const LoadedModel* model,
                                                               kernels::Backend* backend,
                                                               const RequestEngineOptions& options,
                                                               EngineObserver* observer);

  // Shutdown(), then releases everything.
  ~RequestEngine();

  RequestEngine(const RequestEngine&) = delete;
  RequestEngine& operator=(const RequestEngine&) = delete;

  // Queues `request`; `sink` then receives its updates on the engine thread,
  // the last with finished == true. Errors (the sink is never called):
  //   INVALID_ARGUMENT   empty id or prompt, token ids outside the vocabulary,
  //                      invalid SamplingParams, max_tokens < 1, empty stop
  //                      string, stop token ids outside the vocabulary,
  //                      top_logprobs > kMaxTopLogprobs, prompt + max_tokens >
  //                      max_model_len
  //   ALREADY_EXISTS     a request with this id is in flight
  //   RESOURCE_EXHAUSTED the queue holds max_queue requests
  //   UNAVAILABLE        after StopAccepting() or Shutdown()
  absl::Status Submit(GenerationRequest request, UpdateSink sink);

  // Cancels the request with this id if it is in flight (no-op otherwise):
  // its sink gets a final update with kCancelled and its KV blocks are freed
  // within one engine step.
  void Cancel(const std::string& id);

  // From now on Submit returns UNAVAILABLE; work in flight continues.
  void StopAccepting();

  // Stops accepting, finishes every request in flight with kError /
  // UNAVAILABLE, and joins the engine thread. Idempotent.
  void Shutdown();

  EngineSnapshot Snapshot() const;

  // The limit Submit checks prompt + max_tokens against.
  int64_t max_model_len() const;

 private:
  class Impl;
  explicit RequestEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_REQUEST_ENGINE_H_
