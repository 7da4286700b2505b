// Shared helpers of the CUDA backend tests (tests/gpu/): a fixture holding a
// CUDA and a CPU backend, copies between them and the host, and the error
// measures the tests state their bounds in.
//
// The fixture skips (GTEST_SKIP) when no CUDA backend can be created, saying
// why; with CHAI_REQUIRE_GPU=1 in the environment (tests/gpu/check.sh sets it
// on the GPU machine) that is a failure instead, so a broken module or driver
// cannot pass as "skipped".
#ifndef CHAI_TESTS_GPU_GPU_TEST_UTIL_H_
#define CHAI_TESTS_GPU_GPU_TEST_UTIL_H_

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/backend_registry.h"

namespace chai::testing {

inline bool RequireGpu() {
  const char* v = std::getenv("CHAI_REQUIRE_GPU");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

class CudaVsCpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<kernels::Backend>> gpu =
        kernels::CreateBackend(kernels::BackendKind::kCuda, {});
    if (!gpu.ok()) {
      if (RequireGpu()) {
        FAIL() << "CHAI_REQUIRE_GPU=1 but the CUDA backend is unavailable: " << gpu.status();
      }
      GTEST_SKIP() << "no CUDA backend on this machine (" << gpu.status() << ")";
    }
    gpu_ = *std::move(gpu);
    // The reference caches keys and values in the GPU backend's element type
    // (float32), so stored bytes and attention compare like for like.
    absl::StatusOr<std::unique_ptr<kernels::Backend>> cpu =
        kernels::CreateBackend(kernels::BackendKind::kCpu, {.cpu_kv_dtype = gpu_->KvDtype()});
    ASSERT_TRUE(cpu.ok()) << cpu.status();
    cpu_ = *std::move(cpu);
  }

  void TearDown() override {
    if (gpu_ != nullptr && expect_clean_) {
      gpu_->Synchronize();
      EXPECT_TRUE(kernels::BackendStatus(*gpu_).ok()) << kernels::BackendStatus(*gpu_);
    }
  }

  // A buffer of `be` holding `host`.
  template <typename T>
  std::unique_ptr<kernels::Buffer> Put(kernels::Backend& be, const std::vector<T>& host) {
    absl::StatusOr<std::unique_ptr<kernels::Buffer>> b =
        be.Allocate(std::max<size_t>(host.size(), 1) * sizeof(T));
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) return nullptr;
    be.CopyToDevice((*b)->data(), host.data(), host.size() * sizeof(T));
    return *std::move(b);
  }
  template <typename T>
  std::vector<T> Get(kernels::Backend& be, const kernels::Buffer& b, size_t n) {
    std::vector<T> host(n);
    be.CopyToHost(host.data(), const_cast<kernels::Buffer&>(b).data(), n * sizeof(T));
    return host;
  }
  static float* F(const std::unique_ptr<kernels::Buffer>& b) {
    return static_cast<float*>(b->data());
  }
  static int32_t* I(const std::unique_ptr<kernels::Buffer>& b) {
    return static_cast<int32_t*>(b->data());
  }

  std::unique_ptr<kernels::Backend> gpu_, cpu_;
  bool expect_clean_ = true;  // TearDown checks the CUDA backend met no error
};

// Norm-wise relative error ||got - want|| / ||want||; +inf when got has a
// non-finite value where want is finite (an unwritten or poisoned output).
inline double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i]) && std::isfinite(want[i])) return INFINITY;
    const double d = double(got[i]) - want[i];
    num += d * d;
    den += double(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

inline double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - b[i]);
    if (!(d <= m)) m = d;  // NaN propagates as the max
  }
  return m;
}

}  // namespace chai::testing

#endif  // CHAI_TESTS_GPU_GPU_TEST_UTIL_H_
