// Calibration samples for `chai calibrate`: token sequences cut from a JSON
// Lines text corpus such as the C4 sample in ../shared/data/calib/c4/
// (one object per line with a string field "text"; other fields ignored).
//
// Selection, deterministic: records are read in file order; each record's
// text is tokenized whole (BOS first when the tokenizer's metadata adds one,
// no EOS, control-token text not parsed), and a record with at least
// `tokens` tokens contributes its first `tokens` tokens as one sample;
// shorter records are skipped (never padded or joined, so every sample is
// one document from its start, as a prompt is). Reading stops at `samples`
// samples.
//
// Thread-safety: pure function; the tokenizer is only read.
#ifndef CHAI_ENGINE_CHAI_CALIBRATION_DATA_H_
#define CHAI_ENGINE_CHAI_CALIBRATION_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::engine {

// A line longer than this is rejected rather than read into memory.
inline constexpr int64_t kMaxCalibrationLineBytes = int64_t{16} << 20;

struct CalibrationData {
  std::vector<std::vector<int32_t>> samples;  // [samples][tokens]
  int64_t records_read = 0;                   // JSON lines consumed
  int64_t records_skipped = 0;                // too short
};

// Errors: NotFound (cannot open), InvalidArgument naming path:line for a
// line that is not a JSON object with a string "text" or is too long, and
// InvalidArgument when the file holds fewer than `samples` long-enough
// records (saying how many it has). REQUIRES-checked: samples >= 1,
// tokens >= 1 (InvalidArgument otherwise).
absl::StatusOr<CalibrationData> LoadCalibrationData(const std::string& path,
                                                    const Tokenizer& tokenizer, int32_t samples,
                                                    int32_t tokens);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CALIBRATION_DATA_H_
