#include "engine/chai/calibration_report.h"

#include <cerrno>
#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace chai::engine {
namespace {

constexpr int kColumns = 6;
constexpr double kPanelW = 170, kPanelH = 120;
constexpr double kLeft = 28, kRight = 8, kTop = 20, kBottom = 18;  // plot margins
constexpr double kHeader = 30;

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        // Control characters are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

void AppendCurve(std::string& out, size_t layer, const char* name, const std::vector<double>& error,
                 const KneeResult& knee, int32_t chosen) {
  for (size_t i = 0; i < error.size(); ++i) {
    const double norm = i < knee.normalized.size() ? knee.normalized[i] : 0.0;
    absl::StrAppendFormat(&out, "%d,%s,%d,%.9g,%.6f,%d\n", layer, name, i + 1, error[i], norm,
                          static_cast<int32_t>(i + 1) == chosen ? 1 : 0);
  }
}

}  // namespace

std::string CalibrationCsv(const CalibrationResult& result) {
  std::string out = "layer,curve,k,error,normalized,chosen\n";
  for (size_t l = 0; l < result.layers.size(); ++l) {
    const LayerCalibration& lc = result.layers[l];
    AppendCurve(out, l, "heads", lc.head_error, lc.head_knee, lc.clusters);
    AppendCurve(out, l, "kv_groups", lc.group_error, lc.group_knee, lc.k_heads);
  }
  return out;
}

std::string CalibrationSvg(const CalibrationResult& result) {
  const size_t n = result.layers.size();
  const size_t rows = (n + kColumns - 1) / kColumns;
  const double width = kColumns * kPanelW;
  const double height = kHeader + static_cast<double>(rows) * kPanelH;
  std::string out = absl::StrFormat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" "
      "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"10\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
  const ChaiConfig& cfg = result.config;
  absl::StrAppendFormat(
      &out,
      "<text x=\"8\" y=\"18\" font-size=\"13\">CHAI calibration: %s "
      "(normalised K-means error vs k; red: chosen k)</text>\n",
      XmlEscape(cfg.model.name.empty() ? cfg.model.architecture : cfg.model.name));
  for (size_t l = 0; l < n; ++l) {
    const LayerCalibration& lc = result.layers[l];
    const double x0 = static_cast<double>(l % kColumns) * kPanelW;
    const double y0 = kHeader + static_cast<double>(l / kColumns) * kPanelH;
    const double pw = kPanelW - kLeft - kRight, ph = kPanelH - kTop - kBottom;
    const double px = x0 + kLeft, py = y0 + kTop;
    const size_t points = lc.head_knee.normalized.size();
    auto x_of = [&](size_t i) {
      return points > 1 ? px + pw * static_cast<double>(i) / static_cast<double>(points - 1)
                        : px + pw / 2;
    };
    auto y_of = [&](double v) { return py + ph * (1.0 - v); };
    absl::StrAppendFormat(&out, "<g class=\"layer\" id=\"layer%d\">\n", l);
    absl::StrAppendFormat(&out, "<text x=\"%.1f\" y=\"%.1f\">L%d: k=%d s=%d</text>\n", px, y0 + 13,
                          l, lc.clusters, lc.k_heads);
    absl::StrAppendFormat(&out,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"none\" stroke=\"#999\"/>\n",
                          px, py, pw, ph);
    absl::StrAppendFormat(&out,
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">1</text>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">0</text>\n",
                          px - 3, py + 4, px - 3, py + ph);
    absl::StrAppendFormat(&out,
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">1</text>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
                          px, py + ph + 12, px + pw, py + ph + 12, points);
    // Kneedle's reference chord from (1, 1) to (K, 0).
    absl::StrAppendFormat(&out,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#bbb\" "
                          "stroke-dasharray=\"3,3\"/>\n",
                          px, py, px + pw, py + ph);
    out += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
    for (size_t i = 0; i < points; ++i) {
      absl::StrAppendFormat(&out, "%s%.1f,%.1f", i == 0 ? "" : " ", x_of(i),
                            y_of(lc.head_knee.normalized[i]));
    }
    out += "\"/>\n";
    if (lc.clusters >= 1 && static_cast<size_t>(lc.clusters) <= points) {
      const size_t i = static_cast<size_t>(lc.clusters - 1);
      absl::StrAppendFormat(&out,
                            "<circle class=\"knee\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
                            "fill=\"#d62728\"><title>layer %d: k=%d (raw error %.4g)</title>"
                            "</circle>\n",
                            x_of(i), y_of(lc.head_knee.normalized[i]), l, lc.clusters,
                            lc.head_error[i]);
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

absl::Status WriteTextFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  out << contents;
  out.flush();
  if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace chai::engine
