// The one thing the gRPC front end needs from the serving engine: submit a
// request with a sink for its updates, and cancel it. The daemon adapts
// engine::RequestEngine to it (server/serve_command.cc); tests drive the
// front end with scripted engines, without a model.
//
// Thread-safety: implementations must accept Submit and Cancel from any
// thread concurrently; the sink is called on another (engine) thread, never
// inside Submit or Cancel.
#ifndef CHAI_SERVER_GRPC_GENERATION_ENGINE_H_
#define CHAI_SERVER_GRPC_GENERATION_ENGINE_H_

#include <string>

#include "absl/status/status.h"
#include "engine/serving/request.h"

namespace chai::server {

class GenerationEngine {
 public:
  virtual ~GenerationEngine() = default;
  // OK: the request is queued and `sink` will get its updates, the last with
  // finished == true. Otherwise the sink is never called: INVALID_ARGUMENT,
  // ALREADY_EXISTS (id in flight), RESOURCE_EXHAUSTED (queue full),
  // UNAVAILABLE (not accepting).
  virtual absl::Status Submit(engine::GenerationRequest request, engine::UpdateSink sink) = 0;
  // Finishes the request (kCancelled) and frees its cache within one engine
  // step; no-op for an unknown or finished id.
  virtual void Cancel(const std::string& id) = 0;
};

}  // namespace chai::server

#endif  // CHAI_SERVER_GRPC_GENERATION_ENGINE_H_
