#include "kernels/backend_registry.h"

#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cuda/cuda_module.h"

namespace chai::kernels {
namespace {

constexpr char kModuleFile[] = "libchai_cuda_backend.so";

// A loaded module, or why loading failed; one per module path per process.
struct LoadedModule {
  const ChaiCudaModule* api = nullptr;
  absl::Status status;
};

std::string ExecutableDir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

bool FileExists(const std::string& path) {
  return !path.empty() && access(path.c_str(), F_OK) == 0;
}

// The search order of backend_registry.h; NOT_FOUND lists where it looked.
absl::StatusOr<std::string> FindModule(const BackendOptions& options) {
  std::vector<std::string> tried;
  auto consider = [&tried](std::string path) -> bool {
    tried.push_back(path);
    return FileExists(path);
  };
  if (!options.cuda_module_path.empty()) {
    if (consider(options.cuda_module_path)) return options.cuda_module_path;
    return absl::NotFoundError(
        absl::StrCat("CUDA backend module not found at ", options.cuda_module_path));
  }
  if (const char* env = std::getenv("CHAI_CUDA_MODULE"); env != nullptr && *env != '\0') {
    if (consider(env)) return std::string(env);
    return absl::NotFoundError(
        absl::StrCat("CUDA backend module not found at $CHAI_CUDA_MODULE=", env));
  }
  if (const std::string dir = ExecutableDir(); !dir.empty()) {
    if (std::string p = absl::StrCat(dir, "/", kModuleFile); consider(p)) return p;
  }
#ifdef CHAI_CUDA_MODULE_BUILD_PATH
  if (consider(CHAI_CUDA_MODULE_BUILD_PATH)) return std::string(CHAI_CUDA_MODULE_BUILD_PATH);
#endif
  std::string where;
  for (const std::string& t : tried) absl::StrAppend(&where, where.empty() ? "" : ", ", t);
  return absl::NotFoundError(absl::StrCat(
      "CUDA backend module ", kModuleFile, " not found (looked at ",
      where.empty() ? "nothing" : where, "; set $CHAI_CUDA_MODULE, or build with CUDA)"));
}

LoadedModule Load(const std::string& path) {
  LoadedModule m;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    m.status = absl::FailedPreconditionError(
        absl::StrCat("cannot load the CUDA backend module: ", err ? err : path));
    return m;
  }
  // Never dlclose()d: see backend_registry.h.
  auto entry = reinterpret_cast<ChaiCudaModuleFn>(dlsym(lib, "chai_cuda_module"));
  if (entry == nullptr) {
    m.status = absl::FailedPreconditionError(
        absl::StrCat(path, " is not a chai CUDA module (no chai_cuda_module symbol)"));
    return m;
  }
  const ChaiCudaModule* api = entry();
  if (api == nullptr || api->abi != CHAI_CUDA_MODULE_ABI) {
    m.status = absl::FailedPreconditionError(
        absl::StrCat(path, ": CUDA module ABI ", api ? api->abi : -1, ", this binary needs ",
                     CHAI_CUDA_MODULE_ABI, " (module and binary come from different builds)"));
    return m;
  }
  m.api = api;
  return m;
}

// Loads each path once; later calls get the same result.
absl::StatusOr<const ChaiCudaModule*> Module(const BackendOptions& options) {
  absl::StatusOr<std::string> path = FindModule(options);
  if (!path.ok()) return path.status();
  static std::mutex* mu = new std::mutex;
  static auto* loaded = new std::vector<std::pair<std::string, LoadedModule>>;
  std::lock_guard<std::mutex> lock(*mu);
  for (const auto& [p, m] : *loaded) {
    if (p == *path) return m.api ? absl::StatusOr<const ChaiCudaModule*>(m.api) : m.status;
  }
  loaded->emplace_back(*path, Load(*path));
  const LoadedModule& m = loaded->back().second;
  return m.api ? absl::StatusOr<const ChaiCudaModule*>(m.api) : m.status;
}

absl::Status FromModule(int code, const char* msg) {
  switch (code) {
    case CHAI_CUDA_OK:
      return absl::OkStatus();
    case CHAI_CUDA_NO_DEVICE:
      return absl::UnavailableError(msg);
    case CHAI_CUDA_BAD_ARG:
      return absl::InvalidArgumentError(msg);
    case CHAI_CUDA_OUT_OF_MEMORY:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// The module last used to create a CUDA backend, for BackendStatus().
std::atomic<const ChaiCudaModule*> g_backend_module{nullptr};

}  // namespace

absl::StatusOr<BackendKind> ParseBackendKind(absl::string_view name) {
  if (name == "auto") return BackendKind::kAuto;
  if (name == "cpu") return BackendKind::kCpu;
  if (name == "cuda") return BackendKind::kCuda;
  return absl::InvalidArgumentError(
      absl::StrCat("backend must be auto, cpu or cuda, got '", name, "'"));
}

const char* BackendKindName(BackendKind kind) {
  switch (kind) {
    case BackendKind::kAuto:
      return "auto";
    case BackendKind::kCpu:
      return "cpu";
    case BackendKind::kCuda:
      return "cuda";
  }
  return "?";
}

absl::Status BackendOptions::Validate() const {
  if (cpu_threads < 0 || cpu_threads > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("cpu_threads must be 0..1024, got ", cpu_threads));
  }
  if (cuda_device < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cuda_device must be >= 0, got ", cuda_device));
  }
  return absl::OkStatus();
}

absl::Status CudaAvailability(const BackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<const ChaiCudaModule*> api = Module(options);
  if (!api.ok()) return api.status();
  char msg[512] = {0};
  return FromModule((*api)->probe(options.cuda_device, msg, sizeof(msg)), msg);
}

absl::StatusOr<std::string> CudaDeviceDescription(const BackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<const ChaiCudaModule*> api = Module(options);
  if (!api.ok()) return api.status();
  char msg[512] = {0};
  if (absl::Status s = FromModule((*api)->probe(options.cuda_device, msg, sizeof(msg)), msg);
      !s.ok()) {
    return s;
  }
  return std::string(msg);
}

absl::StatusOr<DeviceMemory> QueryDeviceMemory(const BackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  absl::StatusOr<const ChaiCudaModule*> api = Module(options);
  if (!api.ok()) return api.status();
  char msg[512] = {0};
  DeviceMemory mem;
  if (absl::Status s = FromModule((*api)->mem_info(options.cuda_device, &mem.free_bytes,
                                                   &mem.total_bytes, msg, sizeof(msg)),
                                  msg);
      !s.ok()) {
    return s;
  }
  return mem;
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(BackendKind kind,
                                                       const BackendOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  if (kind == BackendKind::kCpu ||
      (kind == BackendKind::kAuto && !CudaAvailability(options).ok())) {
    return CreateCpuBackendOrError({.threads = options.cpu_threads,
                                    .activation_mode = options.cpu_activations,
                                    .kv_dtype = options.cpu_kv_dtype});
  }
  absl::StatusOr<const ChaiCudaModule*> api = Module(options);
  if (!api.ok()) return api.status();
  const ChaiCudaBackendOptions opts{options.cuda_device};
  void* handle = nullptr;
  char msg[512] = {0};
  if (absl::Status s = FromModule((*api)->create(&opts, &handle, msg, sizeof(msg)), msg); !s.ok()) {
    return s;
  }
  if (handle == nullptr) return absl::InternalError("CUDA module returned no backend");
  g_backend_module.store(*api);
  return std::unique_ptr<Backend>(static_cast<Backend*>(handle));
}

absl::Status BackendStatus(const Backend& backend) {
  const ChaiCudaModule* api = g_backend_module.load();
  if (backend.name() != "cuda" || api == nullptr) return absl::OkStatus();
  char msg[512] = {0};
  return FromModule(api->backend_status(&backend, msg, sizeof(msg)), msg);
}

}  // namespace chai::kernels
