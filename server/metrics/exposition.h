// The Prometheus text exposition format, version 0.0.4: the data a scrape
// collects (one FamilySnapshot per metric family) and its rendering.
//
// Format rules followed (https://prometheus.io/docs/instrumenting/exposition_formats/):
//   # HELP <name> <help, with \ and newline escaped>
//   # TYPE <name> counter|gauge|histogram
//   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
// Histograms expand to <name>_bucket{...,le="<bound>"} (cumulative counts,
// ending with le="+Inf"), <name>_sum and <name>_count. Values print as
// integers when integral, else as the shortest decimal that reads back to the
// same double, in exponent form only below 1e-4 or from 2^53 up (as Go's
// client does: "0.0005", "1e-05", "1e+20"); infinities as +Inf/-Inf, NaN as
// NaN.
//
// Thread-safety: pure functions over values the caller owns.
#ifndef CHAI_SERVER_METRICS_EXPOSITION_H_
#define CHAI_SERVER_METRICS_EXPOSITION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace chai::server::metrics {

// The exposition Content-Type for this format.
inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kCounter, kGauge, kHistogram };

// "counter", "gauge", "histogram".
const char* MetricTypeName(MetricType type);

// Label name/value pairs in the family's label-name order.
using LabelPairs = std::vector<std::pair<std::string, std::string>>;

// One histogram's state at scrape time. bucket_counts[i] counts observations
// <= upper_bounds[i] (cumulative); the +Inf bucket is `count`.
struct HistogramPoint {
  std::vector<double> upper_bounds;     // finite, strictly increasing
  std::vector<uint64_t> bucket_counts;  // cumulative, same size as upper_bounds
  uint64_t count = 0;
  double sum = 0;
};

// One labelled child of a family.
struct MetricPoint {
  LabelPairs labels;
  double value = 0;          // counter and gauge
  HistogramPoint histogram;  // histogram only
};

struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kGauge;
  std::vector<MetricPoint> points;
};

// Renders families in the given order. A family without points still gets
// its HELP and TYPE lines (a labelled family with no children yet).
std::string RenderText(const std::vector<FamilySnapshot>& families);

// Number formatting of sample values and of the histogram `le` label.
std::string FormatValue(double value);

// Escaping: HELP text (\ and newline) and label values (\, " and newline).
std::string EscapeHelp(absl::string_view help);
std::string EscapeLabelValue(absl::string_view value);

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool IsValidMetricName(absl::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__" (reserved by Prometheus).
bool IsValidLabelName(absl::string_view name);

}  // namespace chai::server::metrics

#endif  // CHAI_SERVER_METRICS_EXPOSITION_H_
