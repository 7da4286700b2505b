// probe_loader: host-only launcher (plain g++, links no CUDA library) that
// dlopen()s libchai_cuda_probe_module.so, as the daemon will load its CUDA
// backend (DESIGN.md §8). Any reason the GPU path is unavailable (module or
// libcublas missing, ABI mismatch, no driver, no device) is reported and the
// program continues on the "CPU fallback" with exit 0.
//
// usage: probe_loader [--module PATH] [--expect-gpu]
//   module: --module, else $CHAI_CUDA_MODULE, else next to this executable.
//   --expect-gpu: a fallback exits 4 instead of 0 (for the GPU machine).
// exit: 0 GPU path passed, or CPU fallback; 1 the module ran and failed;
//       2 usage; 4 fallback under --expect-gpu.
// The module stays loaded until exit: a library with static cudart is not
// dlclose()d while the process may still hold CUDA state.

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "probe_module.h"

namespace {

std::string default_module_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  std::string dir = ".";
  if (n > 0) {
    buf[n] = '\0';
    dir = buf;
    dir = dir.substr(0, dir.find_last_of('/'));
  }
  return dir + "/libchai_cuda_probe_module.so";
}

int fallback(bool expect_gpu, const char* why) {
  std::printf("CPU fallback: %s\n", why);
  std::printf("RESULT loader %s cpu_fallback\n", expect_gpu ? "FAIL" : "PASS");
  return expect_gpu ? 4 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  bool expect_gpu = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--module") && i + 1 < argc) {
      path = argv[++i];
    } else if (!std::strcmp(argv[i], "--expect-gpu")) {
      expect_gpu = true;
    } else {
      std::fprintf(stderr, "usage: %s [--module PATH] [--expect-gpu]\n", argv[0]);
      return 2;
    }
  }
  if (path.empty()) {
    const char* env = std::getenv("CHAI_CUDA_MODULE");
    path = env && *env ? env : default_module_path();
  }
  std::printf("probe_loader: loading %s\n", path.c_str());

  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = dlerror();
    std::string why =
        std::string("cannot load CUDA module: ") + (err ? err : "unknown dlopen error");
    return fallback(expect_gpu, why.c_str());
  }
  auto abi =
      reinterpret_cast<chai_cuda_probe_module_abi_fn>(dlsym(lib, "chai_cuda_probe_module_abi"));
  auto run =
      reinterpret_cast<chai_cuda_probe_module_run_fn>(dlsym(lib, "chai_cuda_probe_module_run"));
  if (!abi || !run) return fallback(expect_gpu, "CUDA module lacks its entry points");
  if (abi() != CHAI_CUDA_PROBE_MODULE_ABI) {
    char why[128];
    std::snprintf(why, sizeof why, "CUDA module ABI %d, loader wants %d", abi(),
                  CHAI_CUDA_PROBE_MODULE_ABI);
    return fallback(expect_gpu, why);
  }

  char msg[1024] = {0};
  const int rc = run(msg, sizeof msg);
  switch (rc) {
    case CHAI_PROBE_OK:
      std::printf("GPU path: %s\n", msg);
      std::printf("RESULT loader PASS gpu_path\n");
      return 0;
    case CHAI_PROBE_NO_DEVICE:
      return fallback(expect_gpu, msg);
    default:
      std::printf("ERROR: CUDA module failed (status %d): %s\n", rc, msg);
      std::printf("RESULT loader FAIL module_error\n");
      return 1;
  }
}
