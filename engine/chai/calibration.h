// CHAI offline calibration (`chai calibrate`, DESIGN.md sections 3-4): run
// the model on calibration samples, measure per layer how well the heads'
// attention-score vectors cluster, and choose each layer's cluster count k_l
// and key-head budget s_l (chai_config.h) at the knee of the error curves.
//
// Per sample (one document's first T tokens, calibration_data.h) and layer:
//   1. the model runs the sample as one prefill batch with plain attention;
//      ModelRunner's Q/K tap hands over the rotated q [T, H, D] and k
//      [T, KV, D];
//   2. head vectors: each head's causal attention probabilities over the
//      sample (calibration_features.h), [H, T (T + 1) / 2];
//   3. K-means (kmeans.h: k-means++, n_init restarts, Lloyd to convergence)
//      for k = 1..H gives the sample's error curve; likewise over the KV
//      groups' vectors (member heads concatenated) for k = 1..KV.
// The curves are averaged over samples (the reference sums them; the mean
// only rescales), then per layer:
//   k_l = FindKnee(head curve) (knee.h: Kneedle; no clear knee keeps all H);
//   s_l = FindKnee(group curve), clamped to [ceil(k_l / G), min(k_l, KV)]
//         with G = H / KV: at least enough KV heads to host k_l
//         representatives, never more than there are clusters to serve.
//         For multi-head attention (G = 1) this gives s_l = k_l.
// Defaults: 64 samples of 128 tokens. 128 tokens give each head a
// 8,256-number vector: long enough that local, positional and
// attention-sink patterns all show, short enough that most documents of the
// C4 sample are that long (the first 64 come from the first 80 records).
// Cost is dominated by the 64 forward passes: the default model took 2 min
// 9 s wall (55 s CPU) on the 2-core build machine under heavy load.
//
// Ownership: borrows weights and backend for the call.
// Thread-safety: one call at a time per backend; the feature and K-means
// work of a sample is spread over `threads` worker threads (one layer each).
#ifndef CHAI_ENGINE_CHAI_CALIBRATION_H_
#define CHAI_ENGINE_CHAI_CALIBRATION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/chai/chai_config.h"
#include "engine/chai/kmeans.h"
#include "engine/chai/knee.h"
#include "engine/model/model_weights.h"
#include "kernels/backend.h"

namespace chai::engine {

// Recorded in configs as calibration.tool.
inline constexpr char kCalibrationTool[] = "chai calibrate 1";

struct CalibrationOptions {
  int32_t samples = 64;  // must equal the samples passed to Calibrate
  int32_t tokens = 128;  // T, tokens per sample
  int32_t threads = 1;   // workers for features + K-means (one layer each)
  // k is ignored; n_init, max_iter, seed are used. 100 restarts rather
  // than sklearn's 10, because they are cheap here (kmeans.h works on the
  // small distance matrix) and they matter: on 2,700 random 9-point
  // problems 10 restarts missed the brute-force optimum 16 times, 30 once,
  // 100 never; on the 32-point golden sets 10 restarts were sometimes up to
  // 4% worse than sklearn's 10, 100 never (kmeans_golden_test).
  KMeansOptions kmeans{.n_init = 100};
  KneeOptions knee;

  absl::Status Validate() const;
};

// One layer's measurements and choice.
struct LayerCalibration {
  std::vector<double> head_error;   // [H] mean K-means inertia, k = 1..H
  std::vector<double> group_error;  // [KV] the same over KV groups, k = 1..KV
  KneeResult head_knee;
  KneeResult group_knee;
  int32_t clusters = 0;  // k_l
  int32_t k_heads = 0;   // s_l
};

struct CalibrationResult {
  ChaiConfig config;
  std::vector<LayerCalibration> layers;  // [n_layers]
};

// The per-layer rule above, from already averaged curves.
// Errors: InvalidArgument if curve sizes are not n_heads / n_kv_heads, or
// FindKnee rejects a curve.
absl::StatusOr<LayerCalibration> ChooseLayer(std::vector<double> head_error,
                                             std::vector<double> group_error, int32_t n_heads,
                                             int32_t n_kv_heads, const KneeOptions& knee);

// The method string a config records for these options.
std::string CalibrationMethod(const CalibrationOptions& options);

// Called after each sample with (samples done, total).
using CalibrationProgress = std::function<void(int32_t done, int32_t total)>;

// Runs the calibration on `samples` (each exactly options.tokens ids in the
// vocabulary). data_name is recorded as calibration.data. The config's model
// identity comes from weights.config and ModelFingerprint(weights).
// Errors: InvalidArgument for bad options, sample counts or lengths, T over
// the model's context; errors of the runner and K-means otherwise.
absl::StatusOr<CalibrationResult> Calibrate(const ModelWeights& weights, kernels::Backend& backend,
                                            const std::vector<std::vector<int32_t>>& samples,
                                            const std::string& data_name,
                                            const CalibrationOptions& options,
                                            const CalibrationProgress& progress = nullptr);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_CALIBRATION_H_
