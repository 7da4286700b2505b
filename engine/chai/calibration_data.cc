#include "engine/chai/calibration_data.h"

#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chai::engine {

absl::StatusOr<CalibrationData> LoadCalibrationData(const std::string& path,
                                                    const Tokenizer& tokenizer, int32_t samples,
                                                    int32_t tokens) {
  if (samples < 1 || tokens < 1) {
    return absl::InvalidArgumentError(absl::StrCat("calibration data: samples (", samples,
                                                   ") and tokens (", tokens, ") must be >= 1"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open calibration data ", path));
  CalibrationData data;
  std::string line;
  int64_t line_no = 0;
  while (static_cast<int32_t>(data.samples.size()) < samples) {
    line.clear();
    // getline with a cap: read in chunks so a hostile file cannot make us
    // hold an arbitrarily long line.
    bool got_any = false;
    for (char c; in.get(c);) {
      got_any = true;
      if (c == '\n') break;
      if (static_cast<int64_t>(line.size()) >= kMaxCalibrationLineBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":", line_no + 1, ": line longer than ", kMaxCalibrationLineBytes, " bytes"));
      }
      line.push_back(c);
    }
    if (!got_any) break;  // end of file
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_no, ": not a JSON object with a string \"text\" (JSON Lines expected)"));
    }
    ++data.records_read;
    const std::string& text = j["text"].get_ref<const std::string&>();
    std::vector<int32_t> ids;
    if (tokenizer.add_bos() && tokenizer.bos_id() >= 0) ids.push_back(tokenizer.bos_id());
    std::vector<int32_t> body =
        tokenizer.Encode(text, /*add_special=*/false, /*parse_special=*/false);
    ids.insert(ids.end(), body.begin(), body.end());
    if (static_cast<int64_t>(ids.size()) < tokens) {
      ++data.records_skipped;
      continue;
    }
    ids.resize(static_cast<size_t>(tokens));
    data.samples.push_back(std::move(ids));
  }
  if (static_cast<int32_t>(data.samples.size()) < samples) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " has only ", data.samples.size(), " records of at least ", tokens,
                     " tokens (", data.records_read, " read); asked for ", samples, " samples"));
  }
  return data;
}

}  // namespace chai::engine
