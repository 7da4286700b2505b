#include "kernels/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/cuda/cuda_kernels.h"

namespace chai::kernels::cuda {
namespace {

absl::Status CudaError(cudaError_t e, const char* what) {
  const std::string msg =
      absl::StrCat("cuda: ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
  switch (e) {
    case cudaErrorMemoryAllocation:
      return absl::ResourceExhaustedError(msg);
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status CublasError(cublasStatus_t s, const char* what) {
  const std::string msg = absl::StrCat("cublas: ", what, ": ", cublasGetStatusName(s), " (",
                                       cublasGetStatusString(s), ")");
  return s == CUBLAS_STATUS_ALLOC_FAILED ? absl::ResourceExhaustedError(msg)
                                         : absl::InternalError(msg);
}

#define CHAI_CUDA_RETURN_IF_ERROR(call) \
  do {                                  \
    const cudaError_t chai_e_ = (call); \
    if (chai_e_ != cudaSuccess) {       \
      return CudaError(chai_e_, #call); \
    }                                   \
  } while (0)

class DeviceBuffer final : public Buffer {
 public:
  DeviceBuffer(void* data, size_t size) : data_(data), size_(size) {}
  // cudaFree waits for queued work, so ops still using the buffer finish first.
  ~DeviceBuffer() override { cudaFree(data_); }
  void* data() override { return data_; }
  size_t size() const override { return size_; }

 private:
  void* data_;
  size_t size_;
};

// A device buffer that only grows (op scratch: fp16 activations, attention
// partials). Growing frees the old one, which waits for the ops using it.
//
// `moves` counts reallocations across all of a backend's scratch, so a
// recorded graph can tell that an address it holds went stale.
class Scratch {
 public:
  explicit Scratch(uint64_t* moves) : moves_(moves) {}
  ~Scratch() { cudaFree(data_); }
  // True if `bytes` fit without moving.
  bool Fits(size_t bytes) const { return bytes <= size_; }
  cudaError_t Reserve(size_t bytes) {
    if (bytes <= size_) return cudaSuccess;
    ++*moves_;
    cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
    const size_t rounded = std::max<size_t>(bytes + bytes / 4, 1 << 20);
    const cudaError_t e = cudaMalloc(&data_, rounded);
    if (e == cudaSuccess) size_ = rounded;
    return e;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  uint64_t* moves_;
  void* data_ = nullptr;
  size_t size_ = 0;
};

// A CUDA graph instantiated from one capture. Replays refuse to run once the
// backend's scratch has moved since the capture (see Scratch).
class CudaOpGraph final : public OpGraph {
 public:
  CudaOpGraph(cudaGraphExec_t exec, cudaStream_t stream, const uint64_t* moves, uint64_t at)
      : exec_(exec), stream_(stream), moves_(moves), at_(at) {}
  ~CudaOpGraph() override { cudaGraphExecDestroy(exec_); }
  absl::Status Replay() override {
    if (*moves_ != at_) {
      return absl::FailedPreconditionError("cuda: graph is stale (backend scratch moved)");
    }
    const cudaError_t e = cudaGraphLaunch(exec_, stream_);
    if (e != cudaSuccess) return CudaError(e, "cudaGraphLaunch");
    return absl::OkStatus();
  }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  const uint64_t* moves_;
  uint64_t at_;
};

bool IsDeviceMemory(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // a plain host pointer is not an error worth keeping
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(int device, int sm_count, cudaStream_t stream, cublasHandle_t cublas,
                  void* cublas_workspace)
      : device_(device),
        sm_count_(sm_count),
        stream_(stream),
        cublas_(cublas),
        cublas_workspace_(cublas_workspace) {}

  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (capturing_) {
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(stream_, &g);
      if (g != nullptr) cudaGraphDestroy(g);
    }
    cudaStreamSynchronize(stream_);
    cublasDestroy(cublas_);
    cudaFree(cublas_workspace_);
    cudaStreamDestroy(stream_);
  }

  bool CanCapture() const override { return true; }
  absl::Status BeginCapture() override;
  absl::StatusOr<std::unique_ptr<OpGraph>> EndCapture() override;

  std::string_view name() const override { return "cuda"; }
  absl::Status status() const override { return status_; }
  void* stream() const override { return stream_; }
  int device() const override { return device_; }
  int sm_count() const override { return sm_count_; }

  absl::StatusOr<std::unique_ptr<Buffer>> Allocate(size_t bytes) override {
    if (!Ready()) return status_;
    if (capturing_) {
      NoteCaptureMisuse("Allocate");
      return capture_error_;
    }
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();  // out of memory is the caller's to handle, not sticky
      return CudaError(e, absl::StrCat("cudaMalloc(", bytes, " bytes)").c_str());
    }
    return std::make_unique<DeviceBuffer>(p, bytes);
  }

  void CopyToDevice(void* dst, const void* host_src, size_t bytes) override {
    if (!Ready() || bytes == 0) return;
    if (capturing_) return NoteCaptureMisuse("CopyToDevice");
    // Pageable sources are staged before this returns, so the caller may
    // reuse them at once (CUDA's documented cudaMemcpyAsync behaviour).
    Check(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyDefault, stream_), "CopyToDevice");
  }

  void CopyToHost(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    if (capturing_) {
      NoteCaptureMisuse("CopyToHost");
      return PoisonHost(host_dst, bytes);
    }
    if (Ready()) {
      Check(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDefault, stream_), "CopyToHost");
      Check(cudaStreamSynchronize(stream_), "CopyToHost: stream");
    }
    if (!status_.ok()) PoisonHost(host_dst, bytes);
  }

  void Synchronize() override {
    if (capturing_) return NoteCaptureMisuse("Synchronize");
    if (Ready()) Check(cudaStreamSynchronize(stream_), "Synchronize");
  }

  absl::StatusOr<PreparedWeight> PrepareWeight(const WeightView& host, WeightUse use) override;

  void Embed(const WeightView& table, const int32_t* ids, int32_t n, float* out) override {
    if (!Ready()) return;
    if (table.dtype != DType::kF16 && table.dtype != DType::kF32) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "cuda: Embed: table of type ", Name(table.dtype), " was not prepared by this backend")));
    }
    Check(LaunchEmbed(table.data, table.dtype == DType::kF32, table.rows, table.cols, ids, n, out,
                      stream_),
          "Embed");
  }

  void RmsNorm(const float* x, const float* w, int32_t n, int32_t dim, float eps,
               float* out) override {
    if (!Ready()) return;
    Check(LaunchRmsNorm(x, w, n, dim, eps, out, stream_), "RmsNorm");
  }

  void MatMul(const WeightView& w, const float* x, int32_t m, float* y) override;

  void Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
            const RopeParams& rope) override;

  void SwiGlu(const float* gate, const float* up, int64_t n, float* out) override {
    if (!Ready()) return;
    Check(LaunchSwiGlu(gate, up, n, out, stream_), "SwiGlu");
  }

  void Add(float* x, const float* y, int64_t n) override {
    if (!Ready()) return;
    Check(LaunchAdd(x, y, n, stream_), "Add");
  }

  void GatherRows(const float* src, const int32_t* rows, int32_t n, int32_t dim,
                  float* dst) override {
    if (!Ready()) return;
    Check(LaunchGatherRows(src, rows, n, dim, dst, stream_), "GatherRows");
  }

  void StoreKv(const float* k, const float* v, const TokenPlacement& place, KvLayer& kv) override {
    if (!Ready()) return;
    PagedKv p;
    if (!ToPagedKv(place, kv, kv.n_q_heads, "StoreKv", &p)) return;
    Check(LaunchStoreKv(k, v, p, stream_), "StoreKv");
  }

  void Attention(const float* q, int32_t n_q_heads, const TokenPlacement& place, const KvLayer& kv,
                 float* out) override;

 private:
  // Makes this backend's device current; false once an error is recorded.
  bool Ready() {
    if (!status_.ok()) return false;
    Check(cudaSetDevice(device_), "cudaSetDevice");
    return status_.ok();
  }
  void Check(cudaError_t e, const char* what) {
    if (e != cudaSuccess && status_.ok()) status_ = CudaError(e, what);
  }
  void Fail(absl::Status s) {
    if (status_.ok()) status_ = std::move(s);
  }
  // Makes `scratch` hold `bytes`. While capturing it must already: moving it
  // would free memory that queued work and earlier graphs still use.
  bool Reserve(Scratch& scratch, size_t bytes, const char* what) {
    if (capturing_ && !scratch.Fits(bytes)) {
      NoteCaptureMisuse(absl::StrCat(what, " (scratch would grow; run the batch once uncaptured)"));
      return false;
    }
    Check(scratch.Reserve(bytes), what);
    return status_.ok();
  }
  // A capture-time misuse fails the capture (EndCapture), not the backend.
  void NoteCaptureMisuse(absl::string_view what) {
    if (capture_error_.ok()) {
      capture_error_ =
          absl::FailedPreconditionError(absl::StrCat("cuda: ", what, " while capturing ops"));
    }
  }
  // All-ones bytes: NaN as float32, -1 as int32, so stale host memory is
  // never mistaken for results.
  static void PoisonHost(void* dst, size_t bytes) { std::memset(dst, 0xff, bytes); }
  bool ToPagedKv(const TokenPlacement& place, const KvLayer& kv, int32_t n_q_heads, const char* op,
                 PagedKv* p);

  const int device_;
  const int sm_count_;
  cudaStream_t stream_;
  cublasHandle_t cublas_;
  void* cublas_workspace_;  // set explicitly so cuBLAS never allocates while capturing
  absl::Status status_;
  bool capturing_ = false;
  absl::Status capture_error_;
  uint64_t scratch_moves_ = 0;
  Scratch half_x_{&scratch_moves_};     // fp16 copy of MatMul's activations
  Scratch attn_{&scratch_moves_};       // Attention's split partials
  Scratch rope_freq_{&scratch_moves_};  // device copy of rope_host_
  std::vector<float> rope_host_;
};

absl::StatusOr<PreparedWeight> CudaBackendImpl::PrepareWeight(const WeightView& host,
                                                              WeightUse /*use*/) {
  // fp16 row-major serves both MatMul (cuBLAS) and Embed.
  if (!Ready()) return status_;
  if (host.layout != WeightLayout::kRowMajor) {
    return absl::InvalidArgumentError("cuda: weight view is not row-major");
  }
  if (host.rows < 0 || host.cols < 0 || (host.data == nullptr && host.rows * host.cols > 0)) {
    return absl::InvalidArgumentError("cuda: weight view without data or with negative shape");
  }
  if (RowBytes(host.dtype, host.cols) < 0) {
    return absl::InvalidArgumentError(absl::StrCat("cuda: ", Name(host.dtype), " weight with ",
                                                   host.cols, " columns (not whole blocks)"));
  }
  if (host.rows > std::numeric_limits<int32_t>::max() ||
      host.cols > std::numeric_limits<int32_t>::max() ||
      host.rows * host.cols > std::numeric_limits<int64_t>::max() / 2) {
    return absl::InvalidArgumentError("cuda: weight too large for cuBLAS's int dimensions");
  }
  const int64_t elems = host.rows * host.cols;
  absl::StatusOr<std::unique_ptr<Buffer>> buf = Allocate(static_cast<size_t>(elems) * 2);
  if (!buf.ok()) return buf.status();
  uint16_t* dst = static_cast<uint16_t*>((*buf)->data());
  PreparedWeight out{{DType::kF16, host.rows, host.cols, dst}, *std::move(buf)};
  if (elems == 0) return out;

  if (IsDeviceMemory(host.data)) {
    if (host.dtype != DType::kF16) {
      return absl::InvalidArgumentError(
          absl::StrCat("cuda: a weight in device memory must be F16, got ", Name(host.dtype)));
    }
    CHAI_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(dst, host.data, elems * 2, cudaMemcpyDeviceToDevice, stream_));
    CHAI_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return out;
  }

  // Host conversion in chunks of whole rows (about 8 MB of fp16 each).
  const int64_t row_bytes = RowBytes(host.dtype, host.cols);
  const int64_t chunk_rows =
      std::max<int64_t>(1, (int64_t{4} << 20) / std::max<int64_t>(host.cols, 1));
  std::vector<uint16_t> staging(static_cast<size_t>(std::min(chunk_rows, host.rows) * host.cols));
  std::vector<float> row(static_cast<size_t>(host.cols));
  const char* src = static_cast<const char*>(host.data);
  for (int64_t r0 = 0; r0 < host.rows; r0 += chunk_rows) {
    const int64_t nr = std::min(chunk_rows, host.rows - r0);
    for (int64_t r = 0; r < nr; ++r) {
      const char* src_row = src + (r0 + r) * row_bytes;
      uint16_t* h = staging.data() + r * host.cols;
      if (host.dtype == DType::kF16) {
        std::memcpy(h, src_row, static_cast<size_t>(host.cols) * 2);
        continue;
      }
      cpu::DequantizeRow(host.dtype, src_row, row.data(), host.cols);
      for (int64_t c = 0; c < host.cols; ++c) {
        h[c] = cpu::Fp32ToFp16(row[c]);
        if (std::isfinite(row[c]) && !std::isfinite(cpu::Fp16ToFp32(h[c]))) {
          return absl::InvalidArgumentError(absl::StrCat(
              "cuda: weight value ", row[c], " at [", r0 + r, ", ", c, "] is beyond fp16's range"));
        }
      }
    }
    CHAI_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst + r0 * host.cols, staging.data(),
                                              static_cast<size_t>(nr * host.cols) * 2,
                                              cudaMemcpyHostToDevice, stream_));
    // The staging buffer is refilled next: wait for the copy.
    CHAI_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  }
  return out;
}

void CudaBackendImpl::MatMul(const WeightView& w, const float* x, int32_t m, float* y) {
  if (!Ready() || m <= 0 || w.rows == 0) return;
  if (w.dtype != DType::kF16) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "cuda: MatMul: weight of type ", Name(w.dtype), " was not prepared by this backend")));
  }
  if (GemvApplies(m, w.rows, w.cols, w.data, x)) {
    return Check(LaunchGemv(static_cast<const uint16_t*>(w.data), x, m,
                            static_cast<int32_t>(w.rows), static_cast<int32_t>(w.cols), y, stream_),
                 "MatMul: gemv");
  }
  const int64_t in = int64_t{m} * w.cols;
  if (!Reserve(half_x_, static_cast<size_t>(in) * 2, "MatMul: activation scratch")) return;
  Check(LaunchF32ToF16(x, half_x_.as<uint16_t>(), in, stream_), "MatMul: to fp16");
  if (!status_.ok()) return;
  // Row-major Y[m, rows] = X[m, cols] W^T is column-major Y^T = W^T X^T with
  // W (row-major [rows, cols]) read as a column-major [cols, rows] matrix:
  // op(A) = A^T with lda = cols, B = X^T (column-major [cols, m], ldb = cols).
  const float alpha = 1.0f, beta = 0.0f;
  const int n_out = static_cast<int>(w.rows), k = static_cast<int>(w.cols);
  const cublasStatus_t s =
      cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, n_out, m, k, &alpha, w.data, CUDA_R_16F, k,
                   half_x_.as<void>(), CUDA_R_16F, k, &beta, y, CUDA_R_32F, n_out,
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (s != CUBLAS_STATUS_SUCCESS) Fail(CublasError(s, "MatMul: cublasGemmEx"));
}

void CudaBackendImpl::Rope(float* x, const int32_t* pos, int32_t n, int32_t heads,
                           const RopeParams& rope) {
  if (!Ready() || n <= 0) return;
  if (rope.head_dim <= 0 || rope.head_dim % 2 != 0 || rope.inv_freq == nullptr) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("cuda: Rope: bad head_dim ", rope.head_dim, " or no inv_freq")));
  }
  const size_t half = static_cast<size_t>(rope.head_dim / 2);
  // The frequencies live in host memory (kernels/backend.h): upload them only
  // when they change, which for one model is once.
  if (rope_host_.size() != half ||
      std::memcmp(rope_host_.data(), rope.inv_freq, half * sizeof(float)) != 0) {
    if (capturing_) return NoteCaptureMisuse("Rope with new frequencies");
    rope_host_.assign(rope.inv_freq, rope.inv_freq + half);
    if (!Reserve(rope_freq_, half * sizeof(float), "Rope: frequencies")) return;
    Check(cudaMemcpyAsync(rope_freq_.as<float>(), rope_host_.data(), half * sizeof(float),
                          cudaMemcpyHostToDevice, stream_),
          "Rope: upload frequencies");
  }
  Check(LaunchRope(x, pos, n, heads, rope.head_dim, rope.rotate_half, rope_freq_.as<float>(),
                   stream_),
        "Rope");
}

bool CudaBackendImpl::ToPagedKv(const TokenPlacement& place, const KvLayer& kv, int32_t n_q_heads,
                                const char* op, PagedKv* p) {
  if (!AttentionHeadDimSupported(kv.head_dim) || kv.n_kv_heads <= 0 || kv.block_size <= 0 ||
      n_q_heads != kv.n_q_heads || n_q_heads % kv.n_kv_heads != 0) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
        "cuda: ", op, ": unsupported layout (head_dim ", kv.head_dim,
        ", must be a multiple of 32 up to 256; ", n_q_heads, " query heads, KvLayer says ",
        kv.n_q_heads, "; ", kv.n_kv_heads, " KV heads; block size ", kv.block_size, ")")));
    return false;
  }
  // This backend's cache is float32 (Backend::KvDtype()'s default).
  *p = PagedKv{place.n_tokens,
               place.seq,
               place.pos,
               place.block_tables,
               place.max_blocks,
               static_cast<float*>(kv.k),
               static_cast<float*>(kv.v),
               kv.k_pages,
               kv.k_src,
               kv.score_head,
               kv.k_slot,
               kv.n_q_heads,
               kv.n_kv_heads,
               kv.head_dim,
               kv.block_size};
  return true;
}

void CudaBackendImpl::Attention(const float* q, int32_t n_q_heads, const TokenPlacement& place,
                                const KvLayer& kv, float* out) {
  if (!Ready() || place.n_tokens <= 0) return;
  PagedKv p;
  if (!ToPagedKv(place, kv, n_q_heads, "Attention", &p)) return;
  const AttentionPlan plan = PlanAttention(place.n_tokens, n_q_heads, kv.head_dim, sm_count_);
  const int64_t floats = AttentionScratchFloats(plan, place.n_tokens, n_q_heads, kv.head_dim);
  if (floats > 0 &&
      !Reserve(attn_, static_cast<size_t>(floats) * sizeof(float), "Attention: scratch")) {
    return;
  }
  Check(LaunchAttention(q, p, plan, attn_.as<float>(), out, stream_), "Attention");
}

absl::Status CudaBackendImpl::BeginCapture() {
  if (!Ready()) return status_;
  if (capturing_) return absl::FailedPreconditionError("cuda: BeginCapture while capturing");
  // ThreadLocal: another thread's CUDA calls (a second backend) are not
  // this capture's business.
  CHAI_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  capture_error_ = absl::OkStatus();
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<OpGraph>> CudaBackendImpl::EndCapture() {
  if (!capturing_) return absl::FailedPreconditionError("cuda: EndCapture without BeginCapture");
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
  absl::Status s = status_;
  if (s.ok()) s = capture_error_;
  if (s.ok() && end != cudaSuccess) s = CudaError(end, "cudaStreamEndCapture");
  cudaGraphExec_t exec = nullptr;
  if (s.ok()) {
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    if (e != cudaSuccess) s = CudaError(e, "cudaGraphInstantiate");
  }
  if (graph != nullptr) cudaGraphDestroy(graph);
  capture_error_ = absl::OkStatus();
  if (!s.ok()) {
    // An op that failed during capture recorded a sticky error; a failed
    // capture (misuse, invalidated stream) should not end the backend.
    if (status_.ok()) cudaGetLastError();
    return s;
  }
  return std::unique_ptr<OpGraph>(
      std::make_unique<CudaOpGraph>(exec, stream_, &scratch_moves_, scratch_moves_));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    const CudaBackendOptions& options) {
  if (absl::Status s = ProbeDevice(options.device, nullptr); !s.ok()) return s;
  CHAI_CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  int sm_count = 0;
  CHAI_CUDA_RETURN_IF_ERROR(
      cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, options.device));
  CHAI_CUDA_RETURN_IF_ERROR(ConfigureAttentionKernels());
  cudaStream_t stream = nullptr;
  CHAI_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  // cuBLAS's recommended workspace for Hopper; set after SetStream, which
  // resets it. With its own workspace cuBLAS allocates nothing per call, which
  // graph capture requires.
  constexpr size_t kCublasWorkspace = size_t{32} << 20;
  void* workspace = nullptr;
  if (const cudaError_t e = cudaMalloc(&workspace, kCublasWorkspace); e != cudaSuccess) {
    cudaStreamDestroy(stream);
    return CudaError(e, "cudaMalloc(cuBLAS workspace)");
  }
  cublasHandle_t cublas = nullptr;
  cublasStatus_t s = cublasCreate(&cublas);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(cublas, stream);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetWorkspace(cublas, workspace, kCublasWorkspace);
  if (s != CUBLAS_STATUS_SUCCESS) {
    if (cublas != nullptr) cublasDestroy(cublas);
    cudaFree(workspace);
    cudaStreamDestroy(stream);
    return CublasError(s, "cublasCreate");
  }
  return std::unique_ptr<CudaBackend>(
      std::make_unique<CudaBackendImpl>(options.device, sm_count, stream, cublas, workspace));
}

absl::Status ProbeDevice(int device, std::string* description) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return absl::UnavailableError(
        absl::StrCat("no CUDA device: cudaGetDeviceCount: ", cudaGetErrorName(e), " (",
                     cudaGetErrorString(e), ")"));
  }
  if (count == 0) return absl::UnavailableError("no CUDA device: cudaGetDeviceCount = 0");
  if (device < 0 || device >= count) {
    return absl::UnavailableError(
        absl::StrCat("no CUDA device ", device, " (", count, " device(s) present)"));
  }
  if (description != nullptr) {
    cudaDeviceProp prop{};
    CHAI_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device));
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%s (cc %d.%d, %d SMs, %.1f GiB), driver %d.%d, runtime %d.%d",
                  prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                  prop.totalGlobalMem / 1073741824.0, driver / 1000, (driver % 1000) / 10,
                  runtime / 1000, (runtime % 1000) / 10);
    *description = buf;
  }
  return absl::OkStatus();
}

absl::Status DeviceMemoryInfo(int device, size_t* free_bytes, size_t* total_bytes) {
  if (absl::Status s = ProbeDevice(device, nullptr); !s.ok()) return s;
  CHAI_CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  CHAI_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(free_bytes, total_bytes));
  return absl::OkStatus();
}

}  // namespace chai::kernels::cuda
