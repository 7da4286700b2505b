// cuda_probe: proves the CUDA build path of chai-serve (nvcc 13, sm_90, static
// cudart, dynamic cuBLAS) on a real GPU. Standalone; not part of the CMake build.
// See docs/GPU.md. Built by tests/gpu/build_probe.sh, run by tests/gpu/probe.sh.
//
// Exit codes: 0 all checks passed; 1 a CUDA/cuBLAS call or a numeric check
// failed; 2 bad arguments; 3 no usable CUDA device (DESIGN.md §8: any error or
// 0 from cudaGetDeviceCount means "use the CPU backend").
//
// Every line a summary needs starts with "RESULT <name> <PASS|FAIL|INFO> ...".

#include <cublas_api.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "rmsnorm_probe.cuh"

namespace {

using chai::cuda_probe::kRmsThreads;

[[noreturn]] void die(const char* what, const char* file, int line, const char* detail) {
  std::fprintf(stderr, "FAIL: %s:%d: %s -> %s\n", file, line, what, detail);
  std::printf("RESULT probe FAIL %s\n", what);
  std::fflush(stdout);
  std::exit(1);
}

#define CK(call)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (call);                                                              \
    if (e_ != cudaSuccess) {                                                              \
      std::string d_ = std::string(cudaGetErrorName(e_)) + ": " + cudaGetErrorString(e_); \
      die(#call, __FILE__, __LINE__, d_.c_str());                                         \
    }                                                                                     \
  } while (0)

// After every kernel launch: launch-configuration errors show up here.
#define CK_LAUNCH(name) CK(cudaGetLastError())

#define CKB(call)                                                                               \
  do {                                                                                          \
    cublasStatus_t s_ = (call);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::string d_ = std::string(cublasGetStatusName(s_)) + ": " + cublasGetStatusString(s_); \
      die(#call, __FILE__, __LINE__, d_.c_str());                                               \
    }                                                                                           \
  } while (0)

int g_failures = 0;

void result(const char* name, bool ok, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void result(const char* name, bool ok, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::printf("RESULT %s %s %s\n", name, ok ? "PASS" : "FAIL", buf);
  std::fflush(stdout);
  if (!ok) ++g_failures;
}

// ---- host RNG (splitmix64): fresh seed per run unless --seed is given -------
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform(float lo, float hi) {  // [lo, hi)
    return lo + (hi - lo) * static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }
};

// Device fill with the same kind of hash, for matrices too large to make on the host.
__global__ void fill_uniform_f16(__half* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
    p[i] = __float2half_rn(2.f * u - 1.f);
  }
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// ---- device info + the "no device" rule -------------------------------------
cudaDeviceProp print_device_info() {
  int driver = 0, runtime = 0;
  // Neither needs a device; cudaDriverGetVersion gives 0 when no driver is installed.
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  std::printf("build: nvcc %d.%d, cuBLAS headers %d.%d.%d, cudart static\n", __CUDACC_VER_MAJOR__,
              __CUDACC_VER_MINOR__, CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH);
  std::printf("driver API version %d.%d, runtime version %d.%d\n", driver / 1000,
              (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10);

  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();  // clear the sticky-free error so nothing later trips on it
    if (e != cudaSuccess)
      std::printf(
          "no CUDA device: cudaGetDeviceCount returned %s (%s); the CPU backend "
          "would be used\n",
          cudaGetErrorName(e), cudaGetErrorString(e));
    else
      std::printf(
          "no CUDA device: cudaGetDeviceCount returned 0 devices; the CPU backend "
          "would be used\n");
    std::printf("RESULT device INFO none\n");
    std::fflush(stdout);
    std::exit(3);
  }

  CK(cudaSetDevice(0));
  cudaDeviceProp p{};
  CK(cudaGetDeviceProperties(&p, 0));
  int clock_khz = 0, mem_clock_khz = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);  // informational only
  cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, 0);
  cudaGetLastError();
  size_t free_b = 0, total_b = 0;
  CK(cudaMemGetInfo(&free_b, &total_b));
  std::printf("devices: %d; using 0: %s\n", count, p.name);
  std::printf(
      "  compute capability %d.%d, %d SMs, L2 %d KiB, smem/block opt-in %zu KiB, "
      "bus %d bits\n",
      p.major, p.minor, p.multiProcessorCount, p.l2CacheSize / 1024,
      p.sharedMemPerBlockOptin / 1024, p.memoryBusWidth);
  std::printf("  memory total %.2f GiB, free %.2f GiB; SM clock %d MHz, mem clock %d MHz\n",
              total_b / 1073741824.0, free_b / 1073741824.0, clock_khz / 1000,
              mem_clock_khz / 1000);
  std::printf(
      "RESULT device INFO name=\"%s\" cc=%d.%d sms=%d mem_gib=%.1f driver=%d.%d "
      "runtime=%d.%d\n",
      p.name, p.major, p.minor, p.multiProcessorCount, total_b / 1073741824.0, driver / 1000,
      (driver % 1000) / 10, runtime / 1000, (runtime % 1000) / 10);
  if (p.major != 9)
    std::printf(
        "note: built for sm_90 (SASS) + compute_90 (PTX); on cc %d.%d the kernels "
        "%s\n",
        p.major, p.minor,
        p.major < 9 ? "cannot run (expect cudaErrorNoKernelImageForDevice)"
                    : "are JIT-compiled from PTX at first launch");
  return p;
}

// ---- 1. custom kernel: RMSNorm vs a double-precision CPU reference ----------
void check_rmsnorm(Rng& rng, int rows, int cols, cudaStream_t st) {
  const size_t n = static_cast<size_t>(rows) * cols;
  std::vector<float> x(n), w(cols), y(n);
  for (auto& v : x) v = rng.uniform(-2.f, 2.f);
  for (auto& v : w) v = rng.uniform(0.5f, 1.5f);
  float *dx = nullptr, *dw = nullptr, *dy = nullptr;
  CK(cudaMalloc(&dx, n * sizeof(float)));
  CK(cudaMalloc(&dw, cols * sizeof(float)));
  CK(cudaMalloc(&dy, n * sizeof(float)));
  CK(cudaMemcpyAsync(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice, st));
  CK(cudaMemcpyAsync(dw, w.data(), cols * sizeof(float), cudaMemcpyHostToDevice, st));
  CK(cudaMemsetAsync(dy, 0xFF, n * sizeof(float), st));  // poison: all-ones bits = NaN
  const float eps = 1e-6f;
  chai::cuda_probe::rmsnorm_f32_kernel<<<rows, kRmsThreads, 0, st>>>(dx, dw, dy, cols, eps);
  CK_LAUNCH("rmsnorm_f32_kernel");
  CK(cudaMemcpyAsync(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  std::vector<double> ref(n);
  chai::cuda_probe::rmsnorm_ref(x.data(), w.data(), ref.data(), rows, cols, eps);
  const double err = chai::cuda_probe::rel_err_l2(y.data(), ref.data(), n);
  char name[64];
  std::snprintf(name, sizeof name, "rmsnorm_%dx%d", rows, cols);
  result(name, err <= chai::cuda_probe::kRmsTol, "rel_err_l2=%.3e bound=%.0e", err,
         chai::cuda_probe::kRmsTol);
  CK(cudaFree(dx));
  CK(cudaFree(dw));
  CK(cudaFree(dy));
}

// ---- 2. cuBLAS GEMM: Y[M,N] = X[M,K] * W[N,K]^T, fp16 in, fp32 compute -------
// Row-major X and W (W stored [N,K], GGUF/llama layout: the product is X·Wᵀ,
// i.e. the [M,K]x[K,N] product with B = Wᵀ). In cuBLAS's column-major view that
// is Yᵀ(N×M) = op_T(W as K×N) · X as K×M: the "TN" call below, ldc = N.
void gemm(cublasHandle_t h, int M, int N, int K, const __half* dX, const __half* dW, void* dY,
          cudaDataType_t ytype) {
  const float alpha = 1.f, beta = 0.f;
  CKB(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, dW, CUDA_R_16F, K, dX, CUDA_R_16F,
                   K, &beta, dY, ytype, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// Per-element bound for fp32 accumulation of K exact fp16×fp16 products in any
// order: |y - ref| <= K·u·Σ|x·w| with u = 2^-24; we allow 4·K·u·Σ|x·w| (2× for
// tensor cores' truncating adds, 2× margin). Plus, for fp16 output, 2^-11·|ref|.
// The norm-wise relative error must also stay <= rel_bound (fp32 accumulation
// lands ~1e-6; fp16 accumulation would land ~3e-3..1e-2 and fail).
struct GemmCheck {
  double max_ratio = 0;  // max |err| / per-element bound (must be <= 1)
  double num = 0, den = 0;
  bool nonfinite = false;
  void add(double got, double ref, double abs_sum, int K, bool f16_out) {
    if (!std::isfinite(got)) {
      nonfinite = true;
      return;
    }
    const double bound = 4.0 * K * std::ldexp(1.0, -24) * abs_sum +
                         (f16_out ? std::ldexp(1.0, -11) * std::fabs(ref) : 0.0) + 1e-30;
    max_ratio = std::max(max_ratio, std::fabs(got - ref) / bound);
    num += (got - ref) * (got - ref);
    den += ref * ref;
  }
  double rel() const { return den > 0 ? std::sqrt(num / den) : std::sqrt(num); }
  bool ok(double rel_bound) const { return !nonfinite && max_ratio <= 1.0 && rel() <= rel_bound; }
};

void ref_entry(const __half* xrow, const __half* wrow, int K, double* ref, double* abs_sum) {
  double s = 0, a = 0;
  for (int k = 0; k < K; ++k) {
    const double p = static_cast<double>(__half2float(xrow[k])) * __half2float(wrow[k]);
    s += p;
    a += std::fabs(p);
  }
  *ref = s;
  *abs_sum = a;
}

struct Gemm {
  int M, N, K;
  __half *dX = nullptr, *dW = nullptr;
  float* dY = nullptr;
  std::vector<__half> X, W;
};

Gemm make_gemm(Rng& rng, int M, int N, int K, cudaStream_t st) {
  Gemm g;
  g.M = M, g.N = N, g.K = K;
  g.X.resize(static_cast<size_t>(M) * K);
  g.W.resize(static_cast<size_t>(N) * K);
  for (auto& v : g.X) v = __float2half_rn(rng.uniform(-1.f, 1.f));
  for (auto& v : g.W) v = __float2half_rn(rng.uniform(-1.f, 1.f));
  CK(cudaMalloc(&g.dX, g.X.size() * sizeof(__half)));
  CK(cudaMalloc(&g.dW, g.W.size() * sizeof(__half)));
  CK(cudaMalloc(&g.dY, static_cast<size_t>(M) * N * sizeof(float)));
  CK(cudaMemcpyAsync(g.dX, g.X.data(), g.X.size() * sizeof(__half), cudaMemcpyHostToDevice, st));
  CK(cudaMemcpyAsync(g.dW, g.W.data(), g.W.size() * sizeof(__half), cudaMemcpyHostToDevice, st));
  return g;
}

void free_gemm(Gemm& g) {
  CK(cudaFree(g.dX));
  CK(cudaFree(g.dW));
  CK(cudaFree(g.dY));
}

// Runs the product once on a NaN-poisoned output and checks `samples` entries
// (all entries if samples <= 0) against the CPU.
void check_gemm(cublasHandle_t h, Gemm& g, Rng& rng, int samples, cudaStream_t st) {
  const size_t ny = static_cast<size_t>(g.M) * g.N;
  CK(cudaMemsetAsync(g.dY, 0xFF, ny * sizeof(float), st));
  gemm(h, g.M, g.N, g.K, g.dX, g.dW, g.dY, CUDA_R_32F);
  std::vector<float> Y(ny);
  CK(cudaMemcpyAsync(Y.data(), g.dY, ny * sizeof(float), cudaMemcpyDeviceToHost, st));
  CK(cudaStreamSynchronize(st));
  GemmCheck c;
  auto one = [&](int i, int j) {
    double ref, as;
    ref_entry(&g.X[static_cast<size_t>(i) * g.K], &g.W[static_cast<size_t>(j) * g.K], g.K, &ref,
              &as);
    c.add(Y[static_cast<size_t>(i) * g.N + j], ref, as, g.K, false);
  };
  int checked = 0;
  if (samples <= 0) {
    for (int i = 0; i < g.M; ++i)
      for (int j = 0; j < g.N; ++j) one(i, j), ++checked;
  } else {
    one(0, 0), one(g.M - 1, g.N - 1), one(0, g.N - 1), one(g.M - 1, 0);
    checked = 4;
    for (; checked < samples; ++checked)
      one(static_cast<int>(rng.next() % g.M), static_cast<int>(rng.next() % g.N));
  }
  // Every output must have been written (no NaN poison left), sampled or not.
  size_t unwritten = 0;
  for (float v : Y) unwritten += !std::isfinite(v);
  char name[64];
  std::snprintf(name, sizeof name, "gemm_f16_f32_%dx%dx%d", g.M, g.K, g.N);
  const double rel_bound = 1e-4;
  result(name, c.ok(rel_bound) && unwritten == 0,
         "checked=%d%s rel_err_l2=%.3e (bound %.0e) max_err/elem_bound=%.3f nonfinite=%zu", checked,
         samples <= 0 ? "(all)" : "(sampled)", c.rel(), rel_bound, c.max_ratio, unwritten);
}

// ---- 3. timings ---------------------------------------------------------------
struct Timer {
  cudaEvent_t a, b;
  Timer() {
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
  template <class F>
  std::vector<float> run(cudaStream_t st, int warmup, int iters, F&& f) {
    for (int i = 0; i < warmup; ++i) f();
    CK(cudaStreamSynchronize(st));
    std::vector<float> ms;
    for (int i = 0; i < iters; ++i) {
      CK(cudaEventRecord(a, st));
      f();
      CK(cudaEventRecord(b, st));
      CK(cudaEventSynchronize(b));
      float t = 0;
      CK(cudaEventElapsedTime(&t, a, b));
      ms.push_back(t);
    }
    return ms;
  }
};

void time_memcpy(cudaStream_t st) {
  const size_t bytes = size_t{1} << 30;
  unsigned char *src = nullptr, *dst = nullptr;
  CK(cudaMalloc(&src, bytes));
  CK(cudaMalloc(&dst, bytes));
  CK(cudaMemsetAsync(src, 0xA5, bytes, st));
  CK(cudaMemsetAsync(dst, 0x00, bytes, st));
  Timer t;
  auto ms =
      t.run(st, 2, 10, [&] { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st)); });
  // The copy really happened: first and last 64 KiB.
  std::vector<unsigned char> head(65536), tail(65536);
  CK(cudaMemcpy(head.data(), dst, head.size(), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(tail.data(), dst + bytes - tail.size(), tail.size(), cudaMemcpyDeviceToHost));
  bool ok = true;
  for (size_t i = 0; i < head.size(); ++i) ok &= head[i] == 0xA5 && tail[i] == 0xA5;
  const double med = median(ms), best = *std::min_element(ms.begin(), ms.end());
  result("memcpy_d2d_1GiB", ok,
         "median_ms=%.3f rw_GBps=%.0f (read+write, median) one_way_GBps=%.0f best_rw_GBps=%.0f "
         "iters=%zu",
         med, 2.0 * bytes / (med * 1e6), bytes / (med * 1e6), 2.0 * bytes / (best * 1e6),
         ms.size());
  CK(cudaFree(src));
  CK(cudaFree(dst));
}

void time_gemm(cublasHandle_t h, Gemm& g, cudaStream_t st) {
  Timer t;
  auto ms = t.run(st, 5, 30, [&] { gemm(h, g.M, g.N, g.K, g.dX, g.dW, g.dY, CUDA_R_32F); });
  const double med = median(ms);
  const double flop = 2.0 * g.M * g.N * g.K;
  char name[64];
  std::snprintf(name, sizeof name, "gemm_time_%dx%dx%d", g.M, g.K, g.N);
  result(name, true, "median_ms=%.4f TFLOPs=%.1f best_TFLOPs=%.1f iters=%zu", med,
         flop / (med * 1e9), flop / (*std::min_element(ms.begin(), ms.end()) * 1e9), ms.size());
}

// The machine's matrix ceiling (DESIGN.md §9 wants shares of it): 8192³ fp16 in,
// fp32 compute, fp16 out, data filled on the device, 16 sampled entries checked.
void ceiling_gemm(cublasHandle_t h, Rng& rng, cudaStream_t st) {
  const int M = 8192, N = 8192, K = 8192;
  const size_t n = static_cast<size_t>(M) * K;
  __half *dX = nullptr, *dW = nullptr, *dY = nullptr;
  CK(cudaMalloc(&dX, n * sizeof(__half)));
  CK(cudaMalloc(&dW, n * sizeof(__half)));
  CK(cudaMalloc(&dY, n * sizeof(__half)));
  const uint64_t s1 = rng.next(), s2 = rng.next();
  fill_uniform_f16<<<1024, 256, 0, st>>>(dX, n, s1);
  CK_LAUNCH("fill_uniform_f16");
  fill_uniform_f16<<<1024, 256, 0, st>>>(dW, n, s2);
  CK_LAUNCH("fill_uniform_f16");
  CK(cudaMemsetAsync(dY, 0xFF, n * sizeof(__half), st));
  Timer t;
  auto ms = t.run(st, 3, 10, [&] { gemm(h, M, N, K, dX, dW, dY, CUDA_R_16F); });
  GemmCheck c;
  std::vector<__half> xr(K), wr(K);
  __half y;
  for (int s = 0; s < 16; ++s) {
    const int i = s == 0 ? 0 : static_cast<int>(rng.next() % M);
    const int j = s == 0 ? 0 : static_cast<int>(rng.next() % N);
    CK(cudaMemcpy(xr.data(), dX + static_cast<size_t>(i) * K, K * sizeof(__half),
                  cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(wr.data(), dW + static_cast<size_t>(j) * K, K * sizeof(__half),
                  cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(&y, dY + static_cast<size_t>(i) * N + j, sizeof(__half), cudaMemcpyDeviceToHost));
    double ref, as;
    ref_entry(xr.data(), wr.data(), K, &ref, &as);
    c.add(__half2float(y), ref, as, K, true);
  }
  const double med = median(ms), flop = 2.0 * M * N * K;
  result("gemm_ceiling_8192cubed_f16out", c.ok(1e-3),
         "median_ms=%.3f TFLOPs=%.1f best_TFLOPs=%.1f sampled=16 rel_err_l2=%.3e (bound 1e-03) "
         "max_err/elem_bound=%.3f",
         med, flop / (med * 1e9), flop / (*std::min_element(ms.begin(), ms.end()) * 1e9), c.rel(),
         c.max_ratio);
  CK(cudaFree(dX));
  CK(cudaFree(dW));
  CK(cudaFree(dY));
}

void usage() {
  std::printf(
      "usage: cuda_probe [--quick] [--seed N]\n"
      "  --quick   device info, RMSNorm and GEMM checks only (no 1 GiB copy, no timings);\n"
      "            the mode to run under compute-sanitizer\n"
      "  --seed N  input seed (default: fresh from the clock; printed either way)\n"
      "exit: 0 ok, 1 failure, 2 usage, 3 no CUDA device\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  uint64_t seed =
      static_cast<uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count());
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage();
      return 0;
    } else {
      usage();
      return 2;
    }
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::printf("cuda_probe: seed=%" PRIu64 " mode=%s\n", seed, quick ? "quick" : "full");
  print_device_info();  // exits 3 when there is no usable device
  Rng rng{seed};

  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));

  check_rmsnorm(rng, 64, 576, st);
  check_rmsnorm(rng, 5, 4097, st);  // cols > threads, not a multiple of 32

  cublasHandle_t h;
  CKB(cublasCreate(&h));
  CKB(cublasSetStream(h, st));
  int cublas_ver = 0;
  CKB(cublasGetVersion(h, &cublas_ver));
  std::printf("cuBLAS runtime version %d (headers %d)\n", cublas_ver, CUBLAS_VERSION);
  result("cublas_init", true, "version=%d", cublas_ver);

  Gemm small = make_gemm(rng, 1, 1536, 576, st);
  check_gemm(h, small, rng, 0, st);  // all 1536 entries
  Gemm big = make_gemm(rng, 512, 4096, 4096, st);
  check_gemm(h, big, rng, 512, st);  // 512 sampled entries

  if (!quick) {
    time_gemm(h, big, st);
    time_memcpy(st);
    ceiling_gemm(h, rng, st);
  }
  free_gemm(small);
  free_gemm(big);
  CKB(cublasDestroy(h));
  CK(cudaStreamDestroy(st));
  CK(cudaDeviceSynchronize());
  CK(cudaGetLastError());

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (g_failures) {
    std::printf("RESULT probe FAIL %d check(s) failed, %.1f s\n", g_failures, secs);
    return 1;
  }
  std::printf("RESULT probe PASS all checks, %.1f s\n", secs);
  return 0;
}
