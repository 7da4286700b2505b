// What a client asks the serving engine for, and what it streams back.
//
// These are plain value types shared by the engine (engine/serving/) and the
// gRPC front end (server/), which translates the wire messages of
// proto/chai/v1 into them. Nothing here knows about gRPC.
//
// Thread-safety: plain structs; no internal synchronisation.
#ifndef CHAI_ENGINE_SERVING_REQUEST_H_
#define CHAI_ENGINE_SERVING_REQUEST_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/sampling/sampling_params.h"

namespace chai::engine {

// When generation stops. Stop strings are matched on the detokenized text
// and are never part of the streamed text (cut exactly where they begin).
struct StopParams {
  int32_t max_tokens = 128;             // >= 1
  std::vector<std::string> stop;        // stop strings, non-empty each
  std::vector<int32_t> stop_token_ids;  // ids inside the vocabulary
  bool ignore_eos = false;              // keep going past end-of-generation tokens
};

enum class FinishReason { kLength, kStop, kEos, kCancelled, kError };

// Lower-case wire/metric name: "length", "stop", "eos", "cancelled", "error".
const char* FinishReasonName(FinishReason reason);

struct GenerationRequest {
  // Unique among requests in flight (ALREADY_EXISTS otherwise). The front
  // end generates one when the client gives none.
  std::string id;
  std::vector<int32_t> prompt;  // token ids, already tokenized (BOS/chat applied)
  SamplingParams sampling;
  StopParams stop;
  // Logprobs: < 0 none; 0 the chosen token's only; n > 0 also the top n.
  int32_t top_logprobs = -1;
  // Use CHAI when the engine runs with a cluster config; false forces plain
  // attention for this request.
  bool chai = true;
  // Past it the request finishes with DEADLINE_EXCEEDED (kError).
  absl::Time deadline = absl::InfiniteFuture();
  // When the front end received it (queue time starts here).
  absl::Time arrival = absl::Now();
};

// Named UpdateLogprob, not TokenLogprob: engine/sampling/sampler.h already
// defines chai::engine::TokenLogprob (a different struct), and a translation
// unit that needs both the sampler and these types would not compile.
struct UpdateLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // (id, logprob), best first
};

// One message of a request's stream. Every update carries at least one new
// token, or is the final one (finished == true), or both.
struct GenerationUpdate {
  std::vector<int32_t> token_ids;       // new tokens since the last update
  std::string text;                     // their text: whole UTF-8 characters only
  std::vector<UpdateLogprob> logprobs;  // one per token id when asked
  bool finished = false;
  // Set on the final update only.
  FinishReason finish_reason = FinishReason::kLength;
  // Non-OK with kError: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (could never
  // fit the KV cache), INTERNAL (a model step failed), UNAVAILABLE (engine
  // stopped).
  absl::Status error;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  double queue_s = 0;  // arrival -> first scheduled
  double ttft_s = 0;   // arrival -> first token
  double total_s = 0;  // arrival -> finish
  bool chai = false;   // whether CHAI was in force for this request
};

// Receives a request's updates, in order, on the engine thread. It must not
// block (hand the update to another thread); after the final update it is
// never called again and is destroyed.
using UpdateSink = std::function<void(GenerationUpdate)>;

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_REQUEST_H_
