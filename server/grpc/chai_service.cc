#include "server/grpc/chai_service.h"

#include <random>
#include <span>

#include "absl/strings/str_format.h"
#include "engine/text_stream.h"
#include "server/grpc/generate_reactor.h"

namespace chai::server {
namespace {

std::optional<absl::string_view> Header(const grpc::CallbackServerContext* context,
                                        absl::string_view key) {
  const auto& md = context->client_metadata();
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return absl::string_view(it->second.data(), it->second.size());
}

// A per-process prefix keeps generated ids unique across restarts, so logs
// of two runs never share an id.
std::string RandomPrefix() {
  std::random_device rd;
  return absl::StrFormat("chai-%08x", rd());
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

ChaiServiceImpl::ChaiServiceImpl(Options options)
    : options_(std::move(options)), id_prefix_(RandomPrefix()) {}

void ChaiServiceImpl::Activate(ServingState state) {
  state_ = std::move(state);
  activated_.store(true, std::memory_order_release);
}

void ChaiServiceImpl::StopAccepting() { accepting_.store(false, std::memory_order_release); }

int64_t ChaiServiceImpl::active_streams() const {
  absl::MutexLock lock(&streams_mu_);
  return active_streams_;
}

bool ChaiServiceImpl::WaitForStreams(absl::Duration timeout) const {
  absl::MutexLock lock(&streams_mu_);
  auto none_active = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(streams_mu_) {
    return active_streams_ == 0;
  };
  return streams_mu_.AwaitWithTimeout(absl::Condition(&none_active), timeout);
}

void ChaiServiceImpl::StreamStarted() {
  absl::MutexLock lock(&streams_mu_);
  ++active_streams_;
}

void ChaiServiceImpl::StreamDone() {
  absl::MutexLock lock(&streams_mu_);
  --active_streams_;
}

std::string ChaiServiceImpl::NewRequestId() {
  return absl::StrCat(id_prefix_, "-", next_id_.fetch_add(1, std::memory_order_relaxed));
}

void ChaiServiceImpl::ReportFailure(absl::StatusCode code) const {
  if (options_.on_failure) options_.on_failure(code);
}

void ChaiServiceImpl::Log(const AccessRecord& record) const {
  if (options_.access_log != nullptr) options_.access_log->Write(record);
}

absl::Status ChaiServiceImpl::CheckCall(grpc::CallbackServerContext* context) const {
  if (!activated_.load(std::memory_order_acquire)) {
    return absl::UnavailableError("the model is still loading");
  }
  if (options_.api_keys != nullptr) {
    return options_.api_keys->Check(Header(context, "authorization"), Header(context, "x-api-key"));
  }
  return absl::OkStatus();
}

void ChaiServiceImpl::FinishUnary(grpc::ServerUnaryReactor* reactor,
                                  grpc::CallbackServerContext* context, const std::string& method,
                                  const absl::Status& status) {
  AccessRecord record;
  record.method = method;
  record.peer = context->peer();
  record.code = status.code();
  record.error = std::string(status.message());
  Log(record);
  if (!status.ok()) ReportFailure(status.code());
  reactor->Finish(ToGrpcStatus(status));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* ChaiServiceImpl::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return new GenerateReactor(this, context, request);
}

grpc::ServerUnaryReactor* ChaiServiceImpl::Tokenize(grpc::CallbackServerContext* context,
                                                    const v1::TokenizeRequest* request,
                                                    v1::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = CheckCall(context);
  if (status.ok()) {
    absl::StatusOr<std::vector<int32_t>> ids = BuildPrompt(*request, *state_.tokenizer);
    if (ids.ok()) {
      response->mutable_token_ids()->Add(ids->begin(), ids->end());
    } else {
      status = ids.status();
    }
  }
  FinishUnary(reactor, context, "Tokenize", status);
  return reactor;
}

grpc::ServerUnaryReactor* ChaiServiceImpl::Detokenize(grpc::CallbackServerContext* context,
                                                      const v1::DetokenizeRequest* request,
                                                      v1::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = CheckCall(context);
  if (status.ok()) {
    const int32_t vocab = state_.limits.vocab_size;
    for (int i = 0; i < request->token_ids().size() && status.ok(); ++i) {
      const int32_t id = request->token_ids(i);
      if (id < 0 || id >= vocab) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "token_ids[", i, "] = ", id, " is outside the vocabulary [0, ", vocab, ")"));
      }
    }
    if (status.ok()) {
      // The streaming decoder, so control tokens and invalid bytes are
      // treated exactly as in Generate's text.
      engine::TextStream stream(state_.tokenizer, request->show_control());
      std::string text;
      for (int32_t id : request->token_ids()) text += stream.Push(id);
      text += stream.Flush();
      response->set_text(std::move(text));
    }
  }
  FinishUnary(reactor, context, "Detokenize", status);
  return reactor;
}

grpc::ServerUnaryReactor* ChaiServiceImpl::GetModelInfo(grpc::CallbackServerContext* context,
                                                        const v1::GetModelInfoRequest* request,
                                                        v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = CheckCall(context);
  if (status.ok()) *response = state_.model_info;
  FinishUnary(reactor, context, "GetModelInfo", status);
  return reactor;
}

}  // namespace chai::server
