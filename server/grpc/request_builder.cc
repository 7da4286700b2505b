#include "server/grpc/request_builder.h"

#include <cmath>
#include <span>

#include "absl/strings/str_cat.h"
#include "engine/sampling/sampling_params.h"

namespace chai::server {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", why));
}

absl::Status CheckIds(const google::protobuf::RepeatedField<int32_t>& ids, int32_t vocab_size,
                      absl::string_view field) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return Invalid(field, absl::StrCat("[", i, "] = ", ids[i], " is outside the vocabulary [0, ",
                                         vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> RenderChat(const v1::ChatMessages& chat,
                                                const engine::Tokenizer& tokenizer) {
  if (chat.messages().empty()) return Invalid("chat.messages", "is empty");
  std::vector<engine::ChatMessage> messages;
  messages.reserve(chat.messages().size());
  for (const v1::ChatMessage& m : chat.messages()) {
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") {
      return Invalid("chat.messages.role",
                     absl::StrCat("must be system, user or assistant, got '", m.role(), "'"));
    }
    messages.push_back({m.role(), m.content()});
  }
  absl::StatusOr<std::string> rendered = tokenizer.ApplyChatTemplate(
      std::span<const engine::ChatMessage>(messages), /*add_generation_prompt=*/true);
  if (!rendered.ok()) {
    // A model without a template cannot take chat input: the client's
    // request, not the server, is what is wrong.
    return absl::InvalidArgumentError(absl::StrCat("chat: ", rendered.status().message()));
  }
  return tokenizer.Encode(*rendered, /*add_special=*/false, /*parse_special=*/true);
}

absl::StatusOr<std::vector<int32_t>> EncodeText(const std::string& text,
                                                const engine::Tokenizer& tokenizer) {
  if (text.empty()) return Invalid("text", "is empty");
  return tokenizer.Encode(text, /*add_special=*/true, /*parse_special=*/false);
}

absl::Status BuildSampling(const v1::SamplingParams& in, int32_t vocab_size,
                           engine::SamplingParams* out) {
  // Unset optional fields keep the engine's defaults, which leave the model's
  // distribution unchanged (temperature 1, top_p 1, repetition penalty 1).
  if (in.has_temperature()) out->temperature = in.temperature();
  out->top_k = in.top_k();
  if (in.has_top_p()) out->top_p = in.top_p();
  out->min_p = in.min_p();
  if (in.has_repetition_penalty()) out->repetition_penalty = in.repetition_penalty();
  out->presence_penalty = in.presence_penalty();
  out->frequency_penalty = in.frequency_penalty();
  if (in.has_seed()) out->seed = in.seed();
  absl::Status s = out->Validate(vocab_size);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("sampling.", s.message()));
  return absl::OkStatus();
}

absl::Status CheckRequestId(const std::string& id, const RequestLimits& limits) {
  if (static_cast<int64_t>(id.size()) > limits.max_request_id_bytes) {
    return Invalid("request_id", absl::StrCat("is longer than ", limits.max_request_id_bytes,
                                              " bytes (", id.size(), ")"));
  }
  for (char c : id) {
    // Printable ASCII without spaces: ids end up in log lines.
    if (c < 0x21 || c > 0x7e) {
      return Invalid("request_id", "must be printable ASCII without spaces");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> BuildPrompt(const v1::GenerateRequest& request,
                                                 const engine::Tokenizer& tokenizer,
                                                 const RequestLimits& limits) {
  switch (request.prompt_case()) {
    case v1::GenerateRequest::kText:
      return EncodeText(request.text(), tokenizer);
    case v1::GenerateRequest::kChat:
      return RenderChat(request.chat(), tokenizer);
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = request.token_ids().ids();
      if (ids.empty()) return Invalid("token_ids", "is empty");
      if (absl::Status s = CheckIds(ids, limits.vocab_size, "token_ids.ids"); !s.ok()) return s;
      return std::vector<int32_t>(ids.begin(), ids.end());
    }
    case v1::GenerateRequest::PROMPT_NOT_SET:
      break;
  }
  return Invalid("prompt", "is missing: set one of text, chat or token_ids");
}

absl::StatusOr<std::vector<int32_t>> BuildPrompt(const v1::TokenizeRequest& request,
                                                 const engine::Tokenizer& tokenizer) {
  switch (request.prompt_case()) {
    case v1::TokenizeRequest::kText:
      return EncodeText(request.text(), tokenizer);
    case v1::TokenizeRequest::kChat:
      return RenderChat(request.chat(), tokenizer);
    case v1::TokenizeRequest::PROMPT_NOT_SET:
      break;
  }
  return Invalid("prompt", "is missing: set text or chat");
}

absl::StatusOr<engine::GenerationRequest> BuildGenerationRequest(const v1::GenerateRequest& request,
                                                                 const engine::Tokenizer& tokenizer,
                                                                 const RequestLimits& limits) {
  engine::GenerationRequest out;
  if (absl::Status s = CheckRequestId(request.request_id(), limits); !s.ok()) return s;
  out.id = request.request_id();

  absl::StatusOr<std::vector<int32_t>> prompt = BuildPrompt(request, tokenizer, limits);
  if (!prompt.ok()) return prompt.status();
  out.prompt = *std::move(prompt);
  const int64_t prompt_len = static_cast<int64_t>(out.prompt.size());
  if (prompt_len >= limits.context_length) {
    return Invalid("prompt", absl::StrCat("has ", prompt_len,
                                          " tokens, which leaves no room in the context of ",
                                          limits.context_length, " tokens"));
  }

  if (absl::Status s = BuildSampling(request.sampling(), limits.vocab_size, &out.sampling);
      !s.ok()) {
    return s;
  }

  const v1::StoppingParams& stop = request.stopping();
  if (stop.has_max_tokens()) {
    if (stop.max_tokens() < 1) {
      return Invalid("stopping.max_tokens", absl::StrCat("must be >= 1, got ", stop.max_tokens()));
    }
    if (prompt_len + stop.max_tokens() > limits.context_length) {
      return Invalid("stopping.max_tokens",
                     absl::StrCat("(", stop.max_tokens(), ") plus the prompt (", prompt_len,
                                  " tokens) exceeds the context length of ", limits.context_length,
                                  " tokens"));
    }
    out.stop.max_tokens = stop.max_tokens();
  } else {
    out.stop.max_tokens = static_cast<int32_t>(
        std::min<int64_t>(limits.default_max_tokens, limits.context_length - prompt_len));
  }
  if (stop.stop().size() > limits.max_stop_strings) {
    return Invalid("stopping.stop", absl::StrCat("has more than ", limits.max_stop_strings,
                                                 " strings (", stop.stop().size(), ")"));
  }
  for (const std::string& s : stop.stop()) {
    if (s.empty()) return Invalid("stopping.stop", "contains an empty string");
    if (static_cast<int64_t>(s.size()) > limits.max_stop_string_bytes) {
      return Invalid("stopping.stop", absl::StrCat("contains a string over ",
                                                   limits.max_stop_string_bytes, " bytes"));
    }
    out.stop.stop.push_back(s);
  }
  if (absl::Status s =
          CheckIds(stop.stop_token_ids(), limits.vocab_size, "stopping.stop_token_ids");
      !s.ok()) {
    return s;
  }
  out.stop.stop_token_ids.assign(stop.stop_token_ids().begin(), stop.stop_token_ids().end());
  out.stop.ignore_eos = stop.ignore_eos();

  if (request.has_logprobs()) {
    const int32_t max_top = std::min<int32_t>(engine::kMaxTopLogprobs, limits.vocab_size);
    if (request.logprobs() < 0 || request.logprobs() > max_top) {
      return Invalid("logprobs",
                     absl::StrCat("must be in [0, ", max_top, "], got ", request.logprobs()));
    }
    out.top_logprobs = request.logprobs();
    out.sampling.top_logprobs = request.logprobs();
  }
  out.chai = !request.has_chai() || request.chai();
  return out;
}

v1::FinishReason ToProto(engine::FinishReason reason) {
  switch (reason) {
    case engine::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case engine::FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case engine::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case engine::FinishReason::kError:
      return v1::FINISH_REASON_ERROR;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const std::string& request_id, const engine::GenerationUpdate& update,
             v1::GenerateResponse* out) {
  out->set_request_id(request_id);
  out->mutable_token_ids()->Add(update.token_ids.begin(), update.token_ids.end());
  out->set_text(update.text);
  for (const engine::UpdateLogprob& lp : update.logprobs) {
    v1::TokenLogprob* p = out->add_logprobs();
    p->set_token_id(lp.id);
    p->set_logprob(lp.logprob);
    for (const auto& [id, logprob] : lp.top) {
      v1::TopLogprob* t = p->add_top();
      t->set_token_id(id);
      t->set_logprob(logprob);
    }
  }
  if (!update.finished) return;
  v1::GenerationComplete* c = out->mutable_complete();
  c->set_finish_reason(ToProto(update.finish_reason));
  c->mutable_usage()->set_prompt_tokens(update.prompt_tokens);
  c->mutable_usage()->set_completion_tokens(update.completion_tokens);
  c->mutable_timings()->set_queue_s(update.queue_s);
  c->mutable_timings()->set_ttft_s(update.ttft_s);
  c->mutable_timings()->set_total_s(update.total_s);
  c->set_chai(update.chai);
}

}  // namespace chai::server
