#include "server/grpc/generate_reactor.h"

#include <chrono>
#include <utility>

#include "server/grpc/chai_service.h"
#include "server/grpc/request_builder.h"

namespace chai::server {
namespace {

// Appends `more` (a later update) to `msg`, which has not been written yet.
void Merge(v1::GenerateResponse&& more, v1::GenerateResponse* msg) {
  msg->mutable_token_ids()->MergeFrom(more.token_ids());
  msg->mutable_text()->append(more.text());
  for (v1::TokenLogprob& lp : *more.mutable_logprobs()) *msg->add_logprobs() = std::move(lp);
  if (more.has_complete()) *msg->mutable_complete() = std::move(*more.mutable_complete());
}

absl::Status FinalStatus(const engine::GenerationUpdate& update) {
  switch (update.finish_reason) {
    case engine::FinishReason::kError:
      return update.error.ok() ? absl::InternalError("the engine failed the request")
                               : update.error;
    case engine::FinishReason::kCancelled:
      return absl::CancelledError("the request was cancelled");
    default:
      return absl::OkStatus();
  }
}

}  // namespace

GenerateReactor::GenerateReactor(ChaiServiceImpl* service, grpc::CallbackServerContext* context,
                                 const v1::GenerateRequest* request)
    : service_(service),
      context_(context),
      arrival_(absl::Now()),
      mailbox_(std::make_shared<GenerateMailbox>()) {
  service_->StreamStarted();
  record_.method = "Generate";
  record_.peer = context->peer();
  record_.request_id = request->request_id();
  Start(*request);
}

void GenerateReactor::Start(const v1::GenerateRequest& request) {
  grpc::CallbackServerContext* context = context_;
  absl::StatusOr<engine::GenerationRequest> built;
  {
    absl::MutexLock lock(&mailbox_->mu);
    mailbox_->reactor = this;
    if (absl::Status s = service_->CheckCall(context); !s.ok()) return RejectLocked(s);
    if (!service_->accepting()) {
      return RejectLocked(absl::UnavailableError("the server is draining; retry elsewhere"));
    }
    const ServingState& st = service_->state();
    built = BuildGenerationRequest(request, *st.tokenizer, st.limits);
    if (!built.ok()) return RejectLocked(built.status());
    if (built->id.empty()) built->id = service_->NewRequestId();
    request_id_ = built->id;
    record_.request_id = request_id_;
    record_.prompt_tokens = static_cast<int32_t>(built->prompt.size());
    built->arrival = arrival_;
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      deadline_ = absl::FromChrono(context->deadline());
      built->deadline = deadline_;
    }
    submitted_ = true;
  }

  // The engine never calls the sink inside Submit, but its thread may call it
  // as soon as the request is queued, so Submit runs without the lock held.
  std::shared_ptr<GenerateMailbox> mailbox = mailbox_;
  absl::Status submitted =
      service_->state().engine->Submit(*std::move(built), [mailbox](engine::GenerationUpdate u) {
        absl::MutexLock lock(&mailbox->mu);
        if (mailbox->reactor != nullptr) mailbox->reactor->DeliverLocked(std::move(u));
      });
  if (!submitted.ok()) {
    absl::MutexLock lock(&mailbox_->mu);
    submitted_ = false;
    // The engine counted its own rejection; only finish the call.
    FinishLocked(submitted);
  }
}

void GenerateReactor::RejectLocked(const absl::Status& status) {
  service_->ReportFailure(status.code());
  FinishLocked(status);
}

void GenerateReactor::DeliverLocked(engine::GenerationUpdate update) {
  if (finish_called_ || final_received_) return;
  if (update.finished) {
    final_received_ = true;
    final_status_ = FinalStatus(update);
    record_.finish_reason = engine::FinishReasonName(update.finish_reason);
    record_.prompt_tokens = update.prompt_tokens;
    record_.completion_tokens = update.completion_tokens;
    record_.queue_s = update.queue_s;
    record_.ttft_s = update.ttft_s;
    record_.total_s = update.total_s;
  }
  v1::GenerateResponse msg;
  ToProto(request_id_, update, &msg);
  if (next_.has_value()) {
    Merge(std::move(msg), &*next_);
  } else {
    next_ = std::move(msg);
  }
  MaybeWriteLocked();
}

void GenerateReactor::MaybeWriteLocked() {
  if (write_in_flight_ || finish_called_) return;
  if (cancelled_) return FinishLocked(cancel_status_);
  if (next_.has_value()) {
    in_flight_ = *std::move(next_);
    next_.reset();
    write_in_flight_ = true;
    StartWrite(&in_flight_);
    return;
  }
  if (final_received_) FinishLocked(final_status_);
}

void GenerateReactor::OnWriteDone(bool ok) {
  bool cancel_engine = false;
  {
    absl::MutexLock lock(&mailbox_->mu);
    write_in_flight_ = false;
    if (!ok && !cancelled_) {
      // The stream broke: nothing more can be delivered. When the deadline
      // passed, gRPC may fail the write before it calls OnCancel, so the
      // log must still say it was the deadline.
      cancelled_ = true;
      cancel_status_ = DeadlinePassed() ? absl::DeadlineExceededError("the call's deadline passed")
                                        : absl::CancelledError("the stream to the client broke");
      cancel_engine = submitted_ && !final_received_;
    }
    MaybeWriteLocked();
  }
  if (cancel_engine) service_->state().engine->Cancel(request_id_);
}

void GenerateReactor::OnCancel() {
  bool cancel_engine = false;
  {
    absl::MutexLock lock(&mailbox_->mu);
    if (!cancelled_) {
      cancelled_ = true;
      // gRPC cancels the call itself when its deadline passes; say which it
      // was in the log.
      cancel_status_ = DeadlinePassed() ? absl::DeadlineExceededError("the call's deadline passed")
                                        : absl::CancelledError("the call was cancelled");
      cancel_engine = submitted_ && !final_received_;
    }
    MaybeWriteLocked();
  }
  // Outside the lock: Cancel may take the engine's own locks.
  if (cancel_engine) service_->state().engine->Cancel(request_id_);
}

bool GenerateReactor::DeadlinePassed() const {
  // gRPC's timer may fire a hair before our reading of the deadline (it
  // counts from the wire's relative timeout), hence slack.
  return absl::Now() + absl::Milliseconds(20) >= deadline_;
}

void GenerateReactor::FinishLocked(const absl::Status& status) {
  if (finish_called_) return;
  finish_called_ = true;
  record_.code = status.code();
  record_.error = std::string(status.message());
  if (!final_received_) record_.total_s = absl::ToDoubleSeconds(absl::Now() - arrival_);
  service_->Log(record_);
  Finish(ToGrpcStatus(status));
}

void GenerateReactor::OnDone() {
  {
    absl::MutexLock lock(&mailbox_->mu);
    mailbox_->reactor = nullptr;
  }
  service_->StreamDone();
  delete this;
}

}  // namespace chai::server
