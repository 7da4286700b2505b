// The `chai` binary: one entry point, one subcommand per job (like `vllm
// serve`). Subcommands parse their own flags; a bad command line exits 2.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "server/calibrate_command.h"
#include "server/eval_command.h"
#include "server/generate_command.h"
#ifdef CHAI_WITH_GRPC
#include "server/bench_command.h"
#include "server/health_command.h"
#include "server/serve_command.h"
#endif

namespace {

constexpr char kUsage[] =
    "usage: chai <command> [flags]\n\n"
    "commands:\n"
    "  generate   load a model and generate a completion for one prompt\n"
    "  eval       score a model on a benchmark (accuracy or perplexity)\n"
    "  calibrate  choose CHAI cluster counts per layer from calibration text\n"
#ifdef CHAI_WITH_GRPC
    "  serve      run the gRPC serving daemon (continuous batching, /metrics)\n"
    "  health     ask a running server's grpc.health.v1 (exit 0 iff SERVING)\n"
    "  bench      load-test a running server: throughput, TTFT, inter-token latency\n"
#endif
    "\n"
    "Run 'chai <command> --help' for the flags of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "generate") return chai::server::RunGenerate(args);
  if (command == "eval") return chai::server::RunEval(args);
  if (command == "calibrate") return chai::server::RunCalibrate(args);
#ifdef CHAI_WITH_GRPC
  if (command == "serve") return chai::server::RunServe(args);
  if (command == "health") return chai::server::RunHealth(args);
  if (command == "bench") return chai::server::RunBench(args);
#endif
  std::fprintf(stderr, "chai: unknown command '%s' (see chai --help)\n", command.c_str());
  return 2;
}
