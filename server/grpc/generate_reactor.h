// The reactor of one Generate call (gRPC callback API).
//
// Flow: the constructor validates the request and submits it to the engine
// with a sink. The engine thread hands updates to the sink, which appends
// them to the reactor's outbox; one message is written at a time, and
// updates that arrive while a write is in flight are merged into the next
// message (a slow client gets fewer, larger messages, never a blocked
// engine). After the final update is written the call finishes with the
// engine's status.
//
// Invariants: reactions never block (one short mutex); Finish is called
// exactly once (FinishLocked); OnCancel (client cancel, deadline, server
// shutdown) cancels the engine request and finishes the call; OnDone
// detaches the sink and deletes the reactor. The sink holds only a shared
// Mailbox, so an update that arrives after OnDone is dropped safely.
//
// Thread-safety: gRPC threads and the engine thread; all state is guarded by
// the mailbox mutex.
#ifndef CHAI_SERVER_GRPC_GENERATE_REACTOR_H_
#define CHAI_SERVER_GRPC_GENERATE_REACTOR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chai/v1/chai.grpc.pb.h"
#include "engine/serving/request.h"
#include "server/grpc/access_log.h"

namespace chai::server {

class ChaiServiceImpl;
class GenerateReactor;

// Shared by the reactor and the engine's sink; outlives whichever goes last.
struct GenerateMailbox {
  absl::Mutex mu;
  GenerateReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;  // null after OnDone
};

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Submits the request (or finishes the call at once with the reason it
  // cannot be served). `service` must outlive the reactor.
  GenerateReactor(ChaiServiceImpl* service, grpc::CallbackServerContext* context,
                  const v1::GenerateRequest* request);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Validates and submits the request, or finishes the call.
  void Start(const v1::GenerateRequest& request);
  // Called by the sink on the engine thread.
  void DeliverLocked(engine::GenerationUpdate update);
  void MaybeWriteLocked();
  void FinishLocked(const absl::Status& status);
  // Whether the call's deadline has passed (with slack for gRPC's timer).
  bool DeadlinePassed() const;
  // Failure before the engine saw the request: counted here, not by it.
  void RejectLocked(const absl::Status& status);

  ChaiServiceImpl* const service_;
  grpc::CallbackServerContext* const context_;
  const absl::Time arrival_;
  std::shared_ptr<GenerateMailbox> mailbox_;

  // Guarded by mailbox_->mu (a member lock annotation cannot name it).
  std::string request_id_;
  absl::Time deadline_ = absl::InfiniteFuture();
  bool submitted_ = false;       // the engine accepted the request
  bool final_received_ = false;  // the engine sent its last update
  bool write_in_flight_ = false;
  bool finish_called_ = false;
  bool cancelled_ = false;  // OnCancel, or a write failed
  absl::Status cancel_status_;
  absl::Status final_status_;
  v1::GenerateResponse in_flight_;            // the message being written
  std::optional<v1::GenerateResponse> next_;  // updates merged while writing
  AccessRecord record_;
};

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_GENERATE_REACTOR_H_
