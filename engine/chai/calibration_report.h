// The files `chai calibrate` writes beside the config (DESIGN.md section 3):
//   FILE.csv  the per-layer K-means error curves, one row per point:
//             layer,curve,k,error,normalized,chosen
//             curve is "heads" (k = 1..n_heads query-head clusters) or
//             "kv_groups" (k = 1..n_kv_heads KV groups); error is the mean
//             inertia over samples; normalized is FindKnee's y(k) in [0, 1];
//             chosen is 1 on the row of the layer's clusters (heads) or
//             k_heads (kv_groups), else 0.
//   FILE.svg  one small panel per layer: the normalised heads curve, the
//             Kneedle chord (dashed), the chosen k marked with a red dot,
//             and "L<l>: k=<k_l> s=<s_l>" as the panel title. Hand-written,
//             self-contained SVG 1.1.
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_CHAI_CALIBRATION_REPORT_H_
#define CHAI_ENGINE_CHAI_CALIBRATION_REPORT_H_

#include <string>

#include "absl/status/status.h"
#include "engine/chai/calibration.h"

namespace chai::engine {

std::string CalibrationCsv(const CalibrationResult& result);
std::string CalibrationSvg(const CalibrationResult& result);

// Writes `contents` to `path`. Errors: the errno's canonical code with the
// path.
absl::Status WriteTextFile(const std::string& path, const std::string& contents);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CALIBRATION_REPORT_H_
