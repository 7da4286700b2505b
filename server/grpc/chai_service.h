// chai.v1.ChaiService on gRPC's callback API: Generate (server streaming,
// one GenerateReactor per call), Tokenize, Detokenize, GetModelInfo.
//
// Life cycle: the service is registered before the model is loaded, so the
// health service can answer NOT_SERVING during the load; until Activate()
// every RPC fails with UNAVAILABLE. StopAccepting() starts the drain: new
// Generate calls get UNAVAILABLE while the streams in flight go on.
//
// Every RPC checks the API key first (when keys are configured), writes one
// access-log line when it finishes, and reports failures that never reached
// the engine (bad request, bad key, draining) through Options::on_failure
// (the engine reports its own rejections and failures to its observer).
//
// Ownership: borrows everything in Options and ServingState; they must
// outlive the grpc::Server the service is registered with.
// Thread-safety: all methods may be called from any thread.
#ifndef CHAI_SERVER_GRPC_CHAI_SERVICE_H_
#define CHAI_SERVER_GRPC_CHAI_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "chai/v1/chai.grpc.pb.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/grpc/access_log.h"
#include "server/grpc/api_key.h"
#include "server/grpc/generation_engine.h"
#include "server/grpc/request_builder.h"

namespace chai::server {

// What the service serves, known once the model is loaded.
struct ServingState {
  const engine::Tokenizer* tokenizer = nullptr;  // not owned
  GenerationEngine* engine = nullptr;            // not owned
  RequestLimits limits;
  v1::ModelInfo model_info;
};

class ChaiServiceImpl final : public v1::ChaiService::CallbackService {
 public:
  struct Options {
    const ApiKeys* api_keys = nullptr;  // nullptr: no authentication
    AccessLog* access_log = nullptr;    // nullptr: no access log
    // Called (on a gRPC thread) with the code of every RPC that failed
    // before reaching the engine. May be empty.
    std::function<void(absl::StatusCode)> on_failure;
  };

  explicit ChaiServiceImpl(Options options);

  // Starts serving. REQUIRES: called once; state's pointers non-null.
  void Activate(ServingState state);
  // New Generate calls get UNAVAILABLE from now on.
  void StopAccepting();
  bool accepting() const { return accepting_.load(std::memory_order_acquire); }

  // Generate calls whose reactor has not finished yet.
  int64_t active_streams() const;
  // Blocks until no Generate call is active or `timeout` passes; true when
  // none is active.
  bool WaitForStreams(absl::Duration timeout) const;

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  friend class GenerateReactor;

  // UNAVAILABLE before Activate; UNAUTHENTICATED for a missing/wrong key.
  absl::Status CheckCall(grpc::CallbackServerContext* context) const;
  const ServingState& state() const { return state_; }  // REQUIRES: activated
  std::string NewRequestId();
  void StreamStarted();
  void StreamDone();
  void ReportFailure(absl::StatusCode code) const;
  void Log(const AccessRecord& record) const;
  // Finishes a unary call: access log, failure count, gRPC status.
  void FinishUnary(grpc::ServerUnaryReactor* reactor, grpc::CallbackServerContext* context,
                   const std::string& method, const absl::Status& status);

  const Options options_;
  ServingState state_;  // written once before activated_ is set
  std::atomic<bool> activated_{false};
  std::atomic<bool> accepting_{true};
  std::atomic<uint64_t> next_id_{0};
  const std::string id_prefix_;

  mutable absl::Mutex streams_mu_;
  int64_t active_streams_ ABSL_GUARDED_BY(streams_mu_) = 0;
};

// absl and gRPC share the canonical codes.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_CHAI_SERVICE_H_
