// Translation between the wire messages of proto/chai/v1/chai.proto and the
// engine's request types (engine/serving/request.h), with the request
// validation of DESIGN.md section 7: every malformed request is rejected
// here with INVALID_ARGUMENT and a message naming the field, before it
// reaches the engine.
//
// Thread-safety: free functions over const inputs; safe from any thread.
#ifndef CHAI_SERVER_GRPC_REQUEST_BUILDER_H_
#define CHAI_SERVER_GRPC_REQUEST_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "chai/v1/chai.pb.h"
#include "engine/serving/request.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::server {

// What the server accepts, fixed at start-up.
struct RequestLimits {
  // Longest prompt + max_tokens (min of the model's context and
  // --max-model-len). > 0.
  int32_t context_length = 0;
  int32_t vocab_size = 0;
  int32_t default_max_tokens = 128;
  int32_t max_stop_strings = 16;
  int32_t max_stop_string_bytes = 256;
  int32_t max_request_id_bytes = 256;
};

// Token ids of a prompt as Generate builds them: text gets BOS as the model's
// metadata says (control-token text stays plain text); chat messages are
// rendered with the model's template (its control tokens are real tokens,
// no extra BOS); token ids are checked against the vocabulary.
// INVALID_ARGUMENT: no prompt, an empty one, ids outside [0, vocab), bad chat
// roles, a model without a chat template asked for chat.
absl::StatusOr<std::vector<int32_t>> BuildPrompt(const v1::GenerateRequest& request,
                                                 const engine::Tokenizer& tokenizer,
                                                 const RequestLimits& limits);
absl::StatusOr<std::vector<int32_t>> BuildPrompt(const v1::TokenizeRequest& request,
                                                 const engine::Tokenizer& tokenizer);

// The whole engine request: prompt, sampling, stopping, logprobs, CHAI switch
// and id (copied; the caller fills in a generated id when it is empty, and
// the deadline and arrival time). INVALID_ARGUMENT for any field out of its
// documented range (NaN or negative temperature, top_p outside (0, 1], ...)
// or prompt + max_tokens over limits.context_length.
absl::StatusOr<engine::GenerationRequest> BuildGenerationRequest(const v1::GenerateRequest& request,
                                                                 const engine::Tokenizer& tokenizer,
                                                                 const RequestLimits& limits);

v1::FinishReason ToProto(engine::FinishReason reason);

// Copies an engine update into a stream message (request_id, tokens, text,
// logprobs; `complete` when the update is the final one).
void ToProto(const std::string& request_id, const engine::GenerationUpdate& update,
             v1::GenerateResponse* out);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_REQUEST_BUILDER_H_
