// `chai serve`: the gRPC serving daemon (DESIGN.md section 3). Loads the
// model, runs the continuous-batching engine, serves chai.v1.ChaiService,
// grpc.health.v1 and /metrics, logs one line per request, and drains on
// SIGTERM/SIGINT. Returns the process exit status: 0 after a clean drain,
// 1 when start-up fails (unusable model, port in use, unreadable TLS or key
// file), 2 for a bad command line.
#ifndef CHAI_SERVER_SERVE_COMMAND_H_
#define CHAI_SERVER_SERVE_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunServe(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_SERVE_COMMAND_H_
