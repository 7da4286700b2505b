#include "server/grpc/memory_budget.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace chai::server {
namespace {

namespace fs = std::filesystem;

class MemoryBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = ::testing::TempDir() + "/membudget_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_ + "/cg");
    sources_.meminfo = root_ + "/meminfo";
    sources_.cgroup_root = root_ + "/cg";
    sources_.self_cgroup = root_ + "/self_cgroup";
    Write("meminfo", "MemTotal:       16000000 kB\nMemAvailable:    8000000 kB\n");
  }
  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << text;
  }
  std::string root_;
  MemorySources sources_;
};

TEST_F(MemoryBudgetTest, MemAvailableWithoutCgroup) {
  absl::StatusOr<int64_t> a = AvailableMemoryBytes(sources_);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, int64_t{8000000} * 1024);
}

TEST_F(MemoryBudgetTest, CgroupV2LimitAtTheNamespacedRoot) {
  Write("cg/memory.max", "2147483648\n");
  Write("cg/memory.current", "1073741824\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), int64_t{1} << 30);
}

TEST_F(MemoryBudgetTest, CgroupV2UnlimitedIsIgnored) {
  Write("cg/memory.max", "max\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), int64_t{8000000} * 1024);
}

TEST_F(MemoryBudgetTest, CgroupV2OwnPathWins) {
  Write("self_cgroup", "0::/pods/p1\n");
  Write("cg/pods/p1/memory.max", "1000000\n");
  Write("cg/pods/p1/memory.current", "400000\n");
  Write("cg/memory.max", "max\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), 600000);
}

TEST_F(MemoryBudgetTest, CgroupV1Limit) {
  Write("self_cgroup", "4:memory:/job\n0::/\n");
  Write("cg/memory/job/memory.limit_in_bytes", "3000000\n");
  Write("cg/memory/job/memory.usage_in_bytes", "1000000\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), 2000000);
}

TEST_F(MemoryBudgetTest, CgroupV1UnlimitedIsIgnored) {
  Write("cg/memory/memory.limit_in_bytes", "9223372036854771712\n");
  Write("cg/memory/memory.usage_in_bytes", "1000\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), int64_t{8000000} * 1024);
}

TEST_F(MemoryBudgetTest, UsageOverLimitGivesZero) {
  Write("cg/memory.max", "1000\n");
  Write("cg/memory.current", "5000\n");
  EXPECT_EQ(*AvailableMemoryBytes(sources_), 0);
}

TEST_F(MemoryBudgetTest, MissingMeminfoIsAClearError) {
  sources_.meminfo = root_ + "/nope";
  absl::Status s = AvailableMemoryBytes(sources_).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("--kv-cache-bytes"), absl::string_view::npos);
}

TEST(KvCacheBudgetTest, FractionCapNeedAndFloor) {
  EXPECT_EQ(KvCacheBudget(1000, 0.5, 10000, 10000, 0), 500);
  EXPECT_EQ(KvCacheBudget(1000, 0.5, 300, 10000, 0), 300);   // cap
  EXPECT_EQ(KvCacheBudget(1000, 0.5, 10000, 200, 0), 200);   // no more than needed
  EXPECT_EQ(KvCacheBudget(100, 0.5, 10000, 10000, 80), 80);  // floor
}

TEST(AvailableMemoryTest, ThisMachineReportsSomething) {
  absl::StatusOr<int64_t> a = AvailableMemoryBytes();
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_GT(*a, 0);
}

}  // namespace
}  // namespace chai::server
