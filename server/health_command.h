// `chai health [--target HOST:PORT]`: asks a running server's
// grpc.health.v1 service and exits 0 iff it answers SERVING (container
// health checks). Prints the status on stdout; exit 1 when NOT_SERVING or
// unreachable, 2 for a bad command line.
#ifndef CHAI_SERVER_HEALTH_COMMAND_H_
#define CHAI_SERVER_HEALTH_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunHealth(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_HEALTH_COMMAND_H_
