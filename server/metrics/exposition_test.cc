#include "server/metrics/exposition.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chai::server::metrics {
namespace {

TEST(FormatValueTest, IntegersPrintWithoutFraction) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(2560), "2560");
  EXPECT_EQ(FormatValue(-42), "-42");
  EXPECT_EQ(FormatValue(123456789), "123456789");
  EXPECT_EQ(FormatValue(9007199254740991.0), "9007199254740991");  // 2^53 - 1
}

TEST(FormatValueTest, FractionsUseShortestRoundTrip) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-3.25), "-3.25");
  EXPECT_EQ(FormatValue(0.001), "0.001");
  EXPECT_EQ(FormatValue(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(0.0005), "0.0005");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");
  EXPECT_EQ(FormatValue(0.00025), "0.00025");
  EXPECT_EQ(FormatValue(2.5e-5), "2.5e-05");
  EXPECT_EQ(FormatValue(123456.5), "123456.5");
  EXPECT_EQ(FormatValue(-0.075), "-0.075");
  // Every value reads back exactly.
  for (double v : {1.0 / 3, 2.0 / 3e9, 6.02214076e23, 1e-300, 0.75}) {
    EXPECT_EQ(std::stod(FormatValue(v)), v) << FormatValue(v);
  }
}

TEST(FormatValueTest, SpecialValues) {
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(EscapeTest, HelpEscapesBackslashAndNewlineOnly) {
  EXPECT_EQ(EscapeHelp("plain"), "plain");
  EXPECT_EQ(EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
}

TEST(EscapeTest, LabelValueEscapesBackslashQuoteAndNewline) {
  EXPECT_EQ(EscapeLabelValue("plain /path"), "plain /path");
  EXPECT_EQ(EscapeLabelValue("a\\b\nc\"d"), "a\\\\b\\nc\\\"d");
  EXPECT_EQ(EscapeLabelValue("\xc3\xa9t\xc3\xa9"), "\xc3\xa9t\xc3\xa9");  // UTF-8 passes through
}

TEST(NameTest, MetricNames) {
  EXPECT_TRUE(IsValidMetricName("chai_time_to_first_token_seconds"));
  EXPECT_TRUE(IsValidMetricName("vllm:num_requests_running"));
  EXPECT_TRUE(IsValidMetricName("_x9"));
  EXPECT_FALSE(IsValidMetricName(""));
  EXPECT_FALSE(IsValidMetricName("9lives"));
  EXPECT_FALSE(IsValidMetricName("has-dash"));
  EXPECT_FALSE(IsValidMetricName("has space"));
  EXPECT_FALSE(IsValidMetricName("caf\xc3\xa9"));
}

TEST(NameTest, LabelNames) {
  EXPECT_TRUE(IsValidLabelName("finished_reason"));
  EXPECT_TRUE(IsValidLabelName("_private"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
  EXPECT_FALSE(IsValidLabelName("1a"));
  EXPECT_FALSE(IsValidLabelName(""));
}

TEST(RenderTextTest, ExactTextForCounterGaugeAndHistogram) {
  std::vector<FamilySnapshot> families(3);
  families[0].name = "req_total";
  families[0].help = "Requests.\nSecond \\ line.";
  families[0].type = MetricType::kCounter;
  families[0].points.resize(2);
  families[0].points[0].labels = {{"code", "ok"}, {"path", "/a\"b"}};
  families[0].points[0].value = 3;
  families[0].points[1].labels = {{"code", "bad"}, {"path", "x\ny"}};
  families[0].points[1].value = 0.5;

  families[1].name = "temp";
  families[1].help = "A gauge.";
  families[1].type = MetricType::kGauge;
  families[1].points.resize(1);
  families[1].points[0].value = -1.5;

  families[2].name = "lat_seconds";
  families[2].help = "A histogram.";
  families[2].type = MetricType::kHistogram;
  families[2].points.resize(1);
  families[2].points[0].labels = {{"op", "r"}};
  families[2].points[0].histogram.upper_bounds = {0.1, 1, 10};
  families[2].points[0].histogram.bucket_counts = {1, 1, 4};
  families[2].points[0].histogram.count = 5;
  families[2].points[0].histogram.sum = 31.25;

  EXPECT_EQ(RenderText(families),
            "# HELP req_total Requests.\\nSecond \\\\ line.\n"
            "# TYPE req_total counter\n"
            "req_total{code=\"ok\",path=\"/a\\\"b\"} 3\n"
            "req_total{code=\"bad\",path=\"x\\ny\"} 0.5\n"
            "# HELP temp A gauge.\n"
            "# TYPE temp gauge\n"
            "temp -1.5\n"
            "# HELP lat_seconds A histogram.\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{op=\"r\",le=\"0.1\"} 1\n"
            "lat_seconds_bucket{op=\"r\",le=\"1\"} 1\n"
            "lat_seconds_bucket{op=\"r\",le=\"10\"} 4\n"
            "lat_seconds_bucket{op=\"r\",le=\"+Inf\"} 5\n"
            "lat_seconds_sum{op=\"r\"} 31.25\n"
            "lat_seconds_count{op=\"r\"} 5\n");
}

TEST(RenderTextTest, FamilyWithoutPointsKeepsMetadata) {
  std::vector<FamilySnapshot> families(1);
  families[0].name = "layers";
  families[0].help = "Per layer.";
  families[0].type = MetricType::kGauge;
  EXPECT_EQ(RenderText(families), "# HELP layers Per layer.\n# TYPE layers gauge\n");
  EXPECT_EQ(RenderText({}), "");
}

}  // namespace
}  // namespace chai::server::metrics
