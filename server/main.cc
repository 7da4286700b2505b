// The `chai` binary: one entry point, one subcommand per job (like `vllm
// serve`). Subcommands parse their own flags; a bad command line exits 2.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "server/calibrate_command.h"
#include "server/generate_command.h"

namespace {

constexpr char kUsage[] =
    "usage: chai <command> [flags]\n\n"
    "commands:\n"
    "  generate   load a model and generate a completion for one prompt\n"
    "  calibrate  choose CHAI cluster counts per layer from calibration text\n"
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
  if (command == "calibrate") return chai::server::RunCalibrate(args);
  std::fprintf(stderr, "chai: unknown command '%s' (see chai --help)\n", command.c_str());
  return 2;
}
