// `chai bench --target HOST:PORT --concurrency C (--requests N | --rate R)
// --prompt-tokens P --max-tokens M [--json]`: load-tests a running server
// (server/grpc/load_generator.h) and prints throughput, TTFT and
// inter-token latency percentiles and errors by status code, as a table or
// one JSON object. Exit 0 when the run completed (even with request
// errors: they are the measurement), 1 when the server cannot be reached,
// 2 for a bad command line.
#ifndef CHAI_SERVER_BENCH_COMMAND_H_
#define CHAI_SERVER_BENCH_COMMAND_H_

#include <string>
#include <vector>

namespace chai::server {

int RunBench(const std::vector<std::string>& args);

}  // namespace chai::server

#endif  // CHAI_SERVER_BENCH_COMMAND_H_
