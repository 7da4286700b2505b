#include "kernels/backend_registry.h"

#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace chai::kernels {
namespace {

TEST(BackendRegistryTest, ParsesKinds) {
  EXPECT_EQ(*ParseBackendKind("auto"), BackendKind::kAuto);
  EXPECT_EQ(*ParseBackendKind("cpu"), BackendKind::kCpu);
  EXPECT_EQ(*ParseBackendKind("cuda"), BackendKind::kCuda);
  for (const char* bad : {"", "CUDA", "gpu", "cpu "}) {
    EXPECT_EQ(ParseBackendKind(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_STREQ(BackendKindName(BackendKind::kCuda), "cuda");
}

TEST(BackendRegistryTest, RejectsBadOptions) {
  EXPECT_EQ(CreateBackend(BackendKind::kCpu, {.cpu_threads = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateBackend(BackendKind::kAuto, {.cuda_device = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BackendRegistryTest, CpuAlwaysWorks) {
  absl::StatusOr<std::unique_ptr<Backend>> b = CreateBackend(BackendKind::kCpu, {.cpu_threads = 1});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cpu");
  EXPECT_TRUE(BackendStatus(**b).ok());
}

TEST(BackendRegistryTest, MissingModuleIsNotFoundAndAutoFallsBack) {
  BackendOptions o;
  o.cuda_module_path = "/nonexistent/dir/libchai_cuda_backend.so";
  absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateBackend(BackendKind::kCuda, o);
  ASSERT_EQ(cuda.status().code(), absl::StatusCode::kNotFound) << cuda.status();
  EXPECT_NE(cuda.status().message().find(o.cuda_module_path), std::string::npos);
  EXPECT_EQ(QueryDeviceMemory(o).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::unique_ptr<Backend>> autob = CreateBackend(BackendKind::kAuto, o);
  ASSERT_TRUE(autob.ok()) << autob.status();
  EXPECT_EQ((*autob)->name(), "cpu");
}

TEST(BackendRegistryTest, NonModuleFileIsFailedPrecondition) {
  const std::string path = ::testing::TempDir() + "/not_a_module.so";
  std::ofstream(path) << "this is not an ELF file\n";
  BackendOptions o;
  o.cuda_module_path = path;
  const absl::Status s = CudaAvailability(o);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(CreateBackend(BackendKind::kAuto, o).value()->name(), "cpu");
}

// With the default search (the build tree's module when CUDA was built): auto
// agrees with CudaAvailability, and cuda fails exactly when it says so. On a
// machine without a GPU this exercises the no-driver path of the real module.
TEST(BackendRegistryTest, AutoFollowsAvailability) {
  const absl::Status avail = CudaAvailability({});
  absl::StatusOr<std::unique_ptr<Backend>> autob = CreateBackend(BackendKind::kAuto, {});
  ASSERT_TRUE(autob.ok()) << autob.status();
  EXPECT_EQ((*autob)->name(), avail.ok() ? "cuda" : "cpu") << avail;
  absl::StatusOr<std::unique_ptr<Backend>> cuda = CreateBackend(BackendKind::kCuda, {});
  EXPECT_EQ(cuda.status().code(), avail.code()) << cuda.status();
  if (avail.ok()) {
    EXPECT_TRUE(QueryDeviceMemory({}).ok());
    EXPECT_TRUE(BackendStatus(**cuda).ok());
  } else {
    EXPECT_FALSE(QueryDeviceMemory({}).ok());
    std::printf("CUDA not available here: %s\n", std::string(avail.message()).c_str());
  }
}

}  // namespace
}  // namespace chai::kernels
