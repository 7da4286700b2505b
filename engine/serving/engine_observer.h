// Hooks through which the serving engine reports what it does, so a front
// end can export metrics without the engine knowing about Prometheus.
// server/ implements EngineObserver; engine/ only calls it.
//
// Thread-safety: every method is called on the engine thread, except
// OnClusterConfig, which RequestEngine::Create calls once before that thread
// starts (so it happens-before every other call); all must be cheap and must
// not block or call back into the engine.
#ifndef CHAI_ENGINE_SERVING_ENGINE_OBSERVER_H_
#define CHAI_ENGINE_SERVING_ENGINE_OBSERVER_H_

#include <cstdint>
#include <vector>

#include "engine/serving/request.h"

namespace chai::engine {

// State after one engine step (one forward pass).
struct StepStats {
  int32_t num_tokens = 0;         // tokens in the step's batch (prefill + decode)
  int32_t num_prompt_tokens = 0;  // of which prompt (prefill) tokens
  int32_t num_generated = 0;      // tokens sampled this step
  int32_t running = 0;            // sequences holding KV blocks
  int32_t waiting = 0;            // admitted to the queue, not yet scheduled
  int32_t preempted = 0;          // sequences preempted (recompute) this step
  double kv_usage_ratio = 0;      // used / total KV blocks, 0..1
  int64_t k_bytes_in_use = 0;     // K cache bytes held by running sequences
  int64_t v_bytes_in_use = 0;
  // K bytes plain attention would hold for the same sequences minus
  // k_bytes_in_use (0 without CHAI).
  int64_t k_bytes_saved = 0;
  double step_s = 0;  // wall time of the step
};

// A finished request (any reason), after its final update was delivered.
struct RequestStats {
  FinishReason finish_reason = FinishReason::kLength;
  absl::StatusCode error_code = absl::StatusCode::kOk;  // for kError
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_s = 0;
  double ttft_s = 0;  // < 0 if no token was produced
  double e2e_s = 0;
  // K bytes this request saved, integrated over its tokens (its final
  // sequence length times the per-token saving), for the *_total counter.
  int64_t k_bytes_saved = 0;
};

class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnStep(const StepStats& stats) = 0;
  // Time between two consecutive tokens of one request.
  virtual void OnInterTokenLatency(double seconds) = 0;
  virtual void OnRequestFinished(const RequestStats& stats) = 0;
  // Rejected at Submit (never entered the queue): INVALID_ARGUMENT,
  // ALREADY_EXISTS, RESOURCE_EXHAUSTED, UNAVAILABLE.
  virtual void OnRequestRejected(absl::StatusCode code) = 0;
  // One request's online clustering (all CHAI layers), at prefill.
  virtual void OnClustering(double seconds) = 0;
  // Cluster count per layer of the config in force (called once, before the
  // engine thread starts; empty when CHAI is off).
  virtual void OnClusterConfig(const std::vector<int32_t>& clusters_per_layer) = 0;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_ENGINE_OBSERVER_H_
