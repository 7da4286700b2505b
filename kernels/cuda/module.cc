// libchai_cuda_backend.so's one exported symbol, chai_cuda_module(): the C
// table of cuda_module.h over CudaBackend. A library never exits the process
// or throws across this boundary: every failure is a status code + message.
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_module.h"

namespace chai::kernels::cuda {
namespace {

int Report(char* msg, size_t cap, int code, const std::string& text) {
  if (msg != nullptr && cap > 0) std::snprintf(msg, cap, "%s", text.c_str());
  return code;
}

int ToCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return CHAI_CUDA_OK;
    case absl::StatusCode::kUnavailable:
      return CHAI_CUDA_NO_DEVICE;
    case absl::StatusCode::kInvalidArgument:
      return CHAI_CUDA_BAD_ARG;
    case absl::StatusCode::kResourceExhausted:
      return CHAI_CUDA_OUT_OF_MEMORY;
    default:
      return CHAI_CUDA_ERROR;
  }
}

int Report(char* msg, size_t cap, const absl::Status& s) {
  return Report(msg, cap, ToCode(s), std::string(s.message()));
}

// Live backends, so that backend_status() can refuse a pointer it did not make.
std::mutex& LiveMutex() {
  static std::mutex* m = new std::mutex;
  return *m;
}
std::unordered_set<const Backend*>& Live() {
  static auto* s = new std::unordered_set<const Backend*>;
  return *s;
}

// Unregisters itself when the engine deletes it.
class TrackedBackend final : public Backend {
 public:
  explicit TrackedBackend(std::unique_ptr<CudaBackend> impl) : impl_(std::move(impl)) {
    std::lock_guard<std::mutex> lock(LiveMutex());
    Live().insert(this);
  }
  ~TrackedBackend() override {
    std::lock_guard<std::mutex> lock(LiveMutex());
    Live().erase(this);
  }
  const CudaBackend& impl() const { return *impl_; }

  std::string_view name() const override { return impl_->name(); }
  bool CanCapture() const override { return impl_->CanCapture(); }
  absl::Status BeginCapture() override { return impl_->BeginCapture(); }
  absl::StatusOr<std::unique_ptr<OpGraph>> EndCapture() override { return impl_->EndCapture(); }
  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    return impl_->Allocate(bytes);
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    impl_->CopyToDevice(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    impl_->CopyToHost(dst, src, bytes);
  }
  void Synchronize() override { impl_->Synchronize(); }
  absl::StatusOr<PreparedWeight> PrepareWeight(const WeightView& host, WeightUse use) override {
    return impl_->PrepareWeight(host, use);
  }
  void Embed(const WeightView& t, const int32_t* ids, int32_t n, float* out) override {
    impl_->Embed(t, ids, n, out);
  }
  void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
               float* out) override {
    impl_->RmsNorm(x, w, n, dim, eps, out);
  }
  void MatMul(const WeightView& w, const float* x, int32_t m, float* y) override {
    impl_->MatMul(w, x, m, y);
  }
  void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
            const RopeParams& rope) override {
    impl_->Rope(x, pos, n, heads, rope);
  }
  void SwiGlu(const float* g, const float* u, int64_t n, float* out) override {
    impl_->SwiGlu(g, u, n, out);
  }
  void Add(float* x, const float* y, int64_t n) override { impl_->Add(x, y, n); }
  void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                  float* dst) override {
    impl_->GatherRows(src, rows, n, dim, dst);
  }
  void StoreKv(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) override {
    impl_->StoreKv(k, v, place, kv);
  }
  void Attention(const float* q, int32_t n_q_heads, const TokenPlacement& place, const KvLayer& kv,
                 float* out) override {
    impl_->Attention(q, n_q_heads, place, kv, out);
  }

 private:
  std::unique_ptr<CudaBackend> impl_;
};

int Probe(int device, char* msg, size_t cap) {
  std::string description;
  const absl::Status s = ProbeDevice(device, &description);
  if (!s.ok()) return Report(msg, cap, s);
  return Report(msg, cap, CHAI_CUDA_OK, description);
}

int Create(const ChaiCudaBackendOptions* options, void** backend, char* msg, size_t cap) {
  if (options == nullptr || backend == nullptr) {
    return Report(msg, cap, CHAI_CUDA_BAD_ARG, "create: null options or result pointer");
  }
  *backend = nullptr;
  absl::StatusOr<std::unique_ptr<CudaBackend>> b = CudaBackend::Create({.device = options->device});
  if (!b.ok()) return Report(msg, cap, b.status());
  *backend = static_cast<Backend*>(new TrackedBackend(*std::move(b)));
  return Report(msg, cap, CHAI_CUDA_OK, "");
}

int MemInfo(int device, size_t* free_bytes, size_t* total_bytes, char* msg, size_t cap) {
  if (free_bytes == nullptr || total_bytes == nullptr) {
    return Report(msg, cap, CHAI_CUDA_BAD_ARG, "mem_info: null result pointer");
  }
  return Report(msg, cap, DeviceMemoryInfo(device, free_bytes, total_bytes));
}

int BackendStatus(const void* backend, char* msg, size_t cap) {
  const Backend* b = static_cast<const Backend*>(backend);
  std::lock_guard<std::mutex> lock(LiveMutex());
  if (Live().count(b) == 0) {
    return Report(msg, cap, CHAI_CUDA_BAD_ARG, "not a live backend of this CUDA module");
  }
  return Report(msg, cap, static_cast<const TrackedBackend*>(b)->impl().status());
}

constexpr ChaiCudaModule kModule = {CHAI_CUDA_MODULE_ABI, Probe, Create, MemInfo, BackendStatus};

}  // namespace
}  // namespace chai::kernels::cuda

extern "C" __attribute__((visibility("default"))) const ChaiCudaModule* chai_cuda_module(void) {
  return &chai::kernels::cuda::kModule;
}
