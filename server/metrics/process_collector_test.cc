#include "server/metrics/process_collector.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "server/metrics/registry.h"
#include "server/metrics/testing/scrape.h"

namespace chai::server::metrics {
namespace {

// Taken during static initialisation, moments after the process started.
const double kSeenAt = static_cast<double>(std::time(nullptr));

TEST(ParseProcStatTest, CountsFieldsFromTheLastParenthesis) {
  // A command name with spaces and parentheses must not shift the fields.
  // Fields 14/15 (utime/stime) = 250/50 ticks, 22 (starttime) = 1000 ticks,
  // 23 (vsize) = 8192000 bytes, 24 (rss) = 300 pages.
  const std::string stat =
      "4242 (we(ird) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 "
      "8192000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  absl::StatusOr<ProcStat> parsed = ParseProcStat(stat, 100, 4096);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_DOUBLE_EQ(parsed->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(parsed->start_seconds_after_boot, 10.0);
  EXPECT_DOUBLE_EQ(parsed->virtual_bytes, 8192000);
  EXPECT_DOUBLE_EQ(parsed->resident_bytes, 300.0 * 4096);
}

TEST(ParseProcStatTest, RejectsMalformedText) {
  EXPECT_EQ(ParseProcStat("", 100, 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProcStat("1 cmd S 1 2 3", 100, 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProcStat("1 (cmd) S 1 2 3", 100, 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseProcStat("1 (cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 x 50 0 0 20 0 3 0 1000 "
                          "8192000 300",
                          100, 4096)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseBootTimeTest, FindsTheBtimeLine) {
  absl::StatusOr<double> btime =
      ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n");
  ASSERT_TRUE(btime.ok());
  EXPECT_EQ(*btime, 1700000000);
  EXPECT_EQ(ParseBootTime("cpu 1\n").status().code(), absl::StatusCode::kInvalidArgument);
}

class LiveProcessMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RegisterProcessMetrics(&registry_).ok()); }

  double Sample(const std::string& name) {
    absl::StatusOr<testing::ParsedText> parsed = testing::ParseText(registry_.Render());
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    if (!parsed.ok() || !parsed->samples.contains(name)) {
      ADD_FAILURE() << "no sample " << name;
      return std::nan("");
    }
    return parsed->samples.at(name);
  }

  Registry registry_;
};

TEST_F(LiveProcessMetricsTest, OpenFdsFollowsOpenAndClose) {
  const double before = Sample("process_open_fds");
  const int fd = open("/proc/self/stat", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(Sample("process_open_fds"), before + 1);
  close(fd);
  EXPECT_EQ(Sample("process_open_fds"), before);
}

TEST_F(LiveProcessMetricsTest, MatchesTheKernelsOtherViews) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(Sample("process_max_fds"), static_cast<double>(limit.rlim_cur));

  rusage usage{};
  ASSERT_EQ(getrusage(RUSAGE_SELF, &usage), 0);
  const double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + usage.ru_stime.tv_sec +
                     usage.ru_stime.tv_usec * 1e-6;
  // /proc counts whole clock ticks (10 ms); allow a few plus the time since.
  EXPECT_NEAR(Sample("process_cpu_seconds_total"), cpu, 0.1);

  // ru_maxrss (KiB) is the peak resident size; the current one is below it.
  const double rss = Sample("process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_LE(rss, usage.ru_maxrss * 1024.0 + (1 << 20));
  EXPECT_GT(Sample("process_virtual_memory_bytes"), rss);

  // btime is whole seconds, starttime is in ticks: +-1 s, plus start-up time.
  const double start = Sample("process_start_time_seconds");
  EXPECT_LE(start, kSeenAt + 1);
  EXPECT_GE(start, kSeenAt - 120);
}

TEST_F(LiveProcessMetricsTest, RegisteringTwiceFails) {
  EXPECT_EQ(RegisterProcessMetrics(&registry_).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace chai::server::metrics
