#include "server/metrics/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace chai::server::metrics {
namespace {

// Doubles this large still hold every integer exactly; past it the shortest
// round-trip form is both exact and shorter.
constexpr double kExactIntegerLimit = 9007199254740992.0;  // 2^53

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

void AppendLabels(const LabelPairs& labels, const std::string* le, std::string* out) {
  if (labels.empty() && le == nullptr) return;
  out->push_back('{');
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out->push_back(',');
    first = false;
    absl::StrAppend(out, name, "=\"", EscapeLabelValue(value), "\"");
  }
  if (le != nullptr) {
    if (!first) out->push_back(',');
    absl::StrAppend(out, "le=\"", *le, "\"");
  }
  out->push_back('}');
}

void AppendSample(absl::string_view name, const LabelPairs& labels, const std::string* le,
                  const std::string& value, std::string* out) {
  out->append(name.data(), name.size());
  AppendLabels(labels, le, out);
  absl::StrAppend(out, " ", value, "\n");
}

void AppendHistogram(absl::string_view name, const MetricPoint& point, std::string* out) {
  const HistogramPoint& h = point.histogram;
  const std::string bucket = absl::StrCat(name, "_bucket");
  for (size_t i = 0; i < h.upper_bounds.size() && i < h.bucket_counts.size(); ++i) {
    const std::string le = FormatValue(h.upper_bounds[i]);
    AppendSample(bucket, point.labels, &le, FormatValue(static_cast<double>(h.bucket_counts[i])),
                 out);
  }
  const std::string inf = "+Inf";
  const std::string count = FormatValue(static_cast<double>(h.count));
  AppendSample(bucket, point.labels, &inf, count, out);
  AppendSample(absl::StrCat(name, "_sum"), point.labels, nullptr, FormatValue(h.sum), out);
  AppendSample(absl::StrCat(name, "_count"), point.labels, nullptr, count, out);
}

}  // namespace

const char* MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::fabs(value) < kExactIntegerLimit && value == std::trunc(value)) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // Shortest round-trip digits, spelled like Go's strconv 'g' (which
  // client_golang uses): exponent form only for very small or very large
  // magnitudes, so bucket bounds read "0.0005", not "5e-04".
  char buf[64];
  const std::to_chars_result sci =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  const std::string scientific(buf, sci.ptr);
  const size_t e = scientific.find('e');
  int exponent = 0;
  if (e == std::string::npos || !absl::SimpleAtoi(scientific.substr(e + 1), &exponent) ||
      exponent < -4 || std::fabs(value) >= kExactIntegerLimit) {
    return scientific;
  }
  const std::to_chars_result fixed =
      std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  return std::string(buf, fixed.ptr);
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeLabelValue(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c) || c == ':')) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  for (char c : name) {
    if (!(IsNameStart(c) || IsDigit(c))) return false;
  }
  return true;
}

std::string RenderText(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    absl::StrAppend(&out, "# HELP ", family.name, " ", EscapeHelp(family.help), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name, " ", MetricTypeName(family.type), "\n");
    for (const MetricPoint& point : family.points) {
      if (family.type == MetricType::kHistogram) {
        AppendHistogram(family.name, point, &out);
      } else {
        AppendSample(family.name, point.labels, nullptr, FormatValue(point.value), &out);
      }
    }
  }
  return out;
}

}  // namespace chai::server::metrics
