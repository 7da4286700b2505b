#include "server/grpc/access_log.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"

namespace chai::server {
namespace {

TEST(AccessLogTest, FormatsOneLineWithAllFields) {
  AccessRecord r;
  r.method = "Generate";
  r.request_id = "req-1";
  r.peer = "ipv4:127.0.0.1:5000";
  r.finish_reason = "length";
  r.prompt_tokens = 9;
  r.completion_tokens = 16;
  r.queue_s = 0.00125;
  r.ttft_s = 0.05;
  r.total_s = 0.3;
  EXPECT_EQ(FormatAccessRecord(r),
            "access method=Generate id=req-1 peer=ipv4:127.0.0.1:5000 status=OK finish=length "
            "prompt_tokens=9 completion_tokens=16 queue_s=0.0013 ttft_s=0.0500 total_s=0.3000");
}

TEST(AccessLogTest, ErrorsAreQuotedAndClientTextCannotBreakTheLine) {
  AccessRecord r;
  r.method = "Generate";
  r.request_id = "evil id\nstatus=OK";
  r.code = absl::StatusCode::kInvalidArgument;
  r.error = "top_p \"2\" is\noutside (0, 1]";
  const std::string line = FormatAccessRecord(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("id=evil_id_status=OK "), std::string::npos) << line;
  EXPECT_NE(line.find("status=INVALID_ARGUMENT"), std::string::npos) << line;
  EXPECT_NE(line.find("finish=- "), std::string::npos) << line;
  EXPECT_NE(line.find("error=\"top_p \\\"2\\\" is outside (0, 1]\""), std::string::npos) << line;
}

TEST(AccessLogTest, WritesWholeLines) {
  const std::string path = ::testing::TempDir() + "/access.log";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    AccessLog log(f);
    AccessRecord r;
    r.method = "Tokenize";
    log.Write(r);
    log.Write(r);
  }
  std::fclose(f);
  std::ifstream in(path);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(line.rfind("access method=Tokenize id=- ", 0), 0u) << line;
    ++n;
  }
  EXPECT_EQ(n, 2);
}

}  // namespace
}  // namespace chai::server
