#include "engine/chai/calibration.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <numeric>
#include <span>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/chai/calibration_features.h"
#include "engine/chai/model_fingerprint.h"
#include "engine/kv_cache.h"
#include "engine/model_runner.h"

namespace chai::engine {
namespace {

// Curves of one sample in one layer, added to the running sums.
absl::Status AccumulateLayer(std::span<const float> q, std::span<const float> k,
                             const AttentionShape& shape, const KMeansOptions& kmeans,
                             std::vector<double>& head_sum, std::vector<double>& group_sum) {
  absl::StatusOr<std::vector<double>> f = CausalAttentionFeatures(q, k, shape);
  if (!f.ok()) return f.status();
  const int32_t per_head = static_cast<int32_t>(shape.features_per_head());
  absl::StatusOr<std::vector<double>> heads =
      KMeansErrorCurve(*f, shape.n_heads, per_head, shape.n_heads, kmeans);
  if (!heads.ok()) return heads.status();
  // Row-major heads of a KV group are contiguous: the same buffer is the
  // [n_kv_heads, group * per_head] matrix of concatenated group vectors.
  const int32_t group = shape.n_heads / shape.n_kv_heads;
  absl::StatusOr<std::vector<double>> groups =
      KMeansErrorCurve(*f, shape.n_kv_heads, group * per_head, shape.n_kv_heads, kmeans);
  if (!groups.ok()) return groups.status();
  for (size_t i = 0; i < heads->size(); ++i) head_sum[i] += (*heads)[i];
  for (size_t i = 0; i < groups->size(); ++i) group_sum[i] += (*groups)[i];
  return absl::OkStatus();
}

}  // namespace

absl::Status CalibrationOptions::Validate() const {
  if (samples < 1) return absl::InvalidArgumentError("calibration: samples must be >= 1");
  if (tokens < 2) return absl::InvalidArgumentError("calibration: tokens must be >= 2");
  // 4096 tokens already make 8M-number head vectors; more is a typo.
  if (tokens > 4096) return absl::InvalidArgumentError("calibration: tokens must be <= 4096");
  if (threads < 1) return absl::InvalidArgumentError("calibration: threads must be >= 1");
  KMeansOptions k = kmeans;
  k.k = 1;
  if (absl::Status s = k.Validate(); !s.ok()) return s;
  return knee.Validate();
}

std::string CalibrationMethod(const CalibrationOptions& o) {
  std::string m = absl::StrCat(
      "per head: causal attention probabilities of all ", o.tokens,
      " tokens of a sample (lower triangle); per KV group: its heads' vectors concatenated; "
      "K-means (k-means++, ",
      o.kmeans.n_init, " restarts, Lloyd + Hartigan to convergence, seed ", o.kmeans.seed,
      ") inertia for k = 1..n averaged over samples; knee: Kneedle on the normalised curve, "
      "min strength ",
      o.knee.min_strength, " (else keep all)");
  if (o.knee.max_residual < 1.0) {
    absl::StrAppend(&m, ", raised until normalised error <= ", o.knee.max_residual);
  }
  absl::StrAppend(&m, "; k_heads clamped to [ceil(k/G), min(k, n_kv)]");
  return m;
}

absl::StatusOr<LayerCalibration> ChooseLayer(std::vector<double> head_error,
                                             std::vector<double> group_error, int32_t n_heads,
                                             int32_t n_kv_heads, const KneeOptions& knee) {
  if (n_heads < 1 || n_kv_heads < 1 || n_heads % n_kv_heads != 0 ||
      head_error.size() != static_cast<size_t>(n_heads) ||
      group_error.size() != static_cast<size_t>(n_kv_heads)) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration: curves of ", head_error.size(), " and ", group_error.size(),
                     " points do not fit ", n_heads, " heads and ", n_kv_heads, " KV heads"));
  }
  LayerCalibration out;
  absl::StatusOr<KneeResult> hk = FindKnee(head_error, knee);
  if (!hk.ok()) return hk.status();
  absl::StatusOr<KneeResult> gk = FindKnee(group_error, knee);
  if (!gk.ok()) return gk.status();
  out.head_error = std::move(head_error);
  out.group_error = std::move(group_error);
  out.head_knee = *std::move(hk);
  out.group_knee = *std::move(gk);
  const int32_t group = n_heads / n_kv_heads;
  out.clusters = out.head_knee.k;
  const int32_t lo = (out.clusters + group - 1) / group;
  const int32_t hi = std::min(out.clusters, n_kv_heads);
  out.k_heads = std::clamp(out.group_knee.k, lo, hi);
  return out;
}

absl::StatusOr<CalibrationResult> Calibrate(const ModelWeights& weights, kernels::Backend& backend,
                                            const std::vector<std::vector<int32_t>>& samples,
                                            const std::string& data_name,
                                            const CalibrationOptions& options,
                                            const CalibrationProgress& progress) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  const LlamaConfig& c = weights.config;
  const int32_t t = options.tokens;
  if (static_cast<int64_t>(samples.size()) != options.samples) {
    return absl::InvalidArgumentError(absl::StrCat("calibration: got ", samples.size(),
                                                   " samples, options say ", options.samples));
  }
  if (t > c.context_length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration: ", t, " tokens exceed the model's context of ", c.context_length));
  }
  for (size_t i = 0; i < samples.size(); ++i) {
    if (static_cast<int64_t>(samples[i].size()) != t) {
      return absl::InvalidArgumentError(
          absl::StrCat("calibration: sample ", i, " has ", samples[i].size(), " tokens, want ", t));
    }
  }
  absl::StatusOr<std::string> fingerprint = ModelFingerprint(weights);
  if (!fingerprint.ok()) return fingerprint.status();

  const AttentionShape shape{t, static_cast<int32_t>(c.n_heads), static_cast<int32_t>(c.n_kv_heads),
                             static_cast<int32_t>(c.head_dim)};
  const size_t n_layers = static_cast<size_t>(c.n_layers);
  const size_t q_size = static_cast<size_t>(t) * c.n_heads * c.head_dim;
  const size_t k_size = static_cast<size_t>(t) * c.n_kv_heads * c.head_dim;

  absl::StatusOr<std::unique_ptr<ModelRunner>> runner = ModelRunner::Create(&weights, &backend, t);
  if (!runner.ok()) return runner.status();
  KvCacheOptions kv;
  kv.block_size = 16;
  kv.max_seqs = 1;
  kv.max_seq_len = t;
  kv.num_blocks = (t + kv.block_size - 1) / kv.block_size;
  absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(&backend, c, kv);
  if (!cache.ok()) return cache.status();

  // The tap copies each layer's q and k; the work happens after Forward so
  // the layers can be spread over threads.
  std::vector<std::vector<float>> q_buf(n_layers), k_buf(n_layers);
  absl::Status tap_status;
  (*runner)->SetQkTap([&](int64_t layer, std::span<const float> q, std::span<const float> k) {
    if (layer < 0 || static_cast<size_t>(layer) >= n_layers || q.size() != q_size ||
        k.size() != k_size) {
      tap_status = absl::InternalError(absl::StrCat("calibration: unexpected q/k of layer ", layer,
                                                    " (", q.size(), " and ", k.size(), " values)"));
      return;
    }
    q_buf[static_cast<size_t>(layer)].assign(q.begin(), q.end());
    k_buf[static_cast<size_t>(layer)].assign(k.begin(), k.end());
  });

  std::vector<std::vector<double>> head_sum(n_layers, std::vector<double>(c.n_heads, 0.0));
  std::vector<std::vector<double>> group_sum(n_layers, std::vector<double>(c.n_kv_heads, 0.0));
  std::vector<int32_t> slots(static_cast<size_t>(t)), positions(static_cast<size_t>(t));
  std::iota(positions.begin(), positions.end(), 0);
  const int32_t workers = std::min<int32_t>(options.threads, static_cast<int32_t>(n_layers));

  for (int32_t s = 0; s < options.samples; ++s) {
    for (std::vector<float>& b : q_buf) b.clear();
    absl::StatusOr<int32_t> slot = (*cache)->AddSequence();
    if (!slot.ok()) return slot.status();
    std::fill(slots.begin(), slots.end(), *slot);
    absl::Status st = (*cache)->Reserve(*slot, t);
    if (st.ok()) {
      st = (*runner)->Forward({samples[static_cast<size_t>(s)], slots, positions, {}}, **cache,
                              std::span<float>());
    }
    (*cache)->RemoveSequence(*slot);
    if (!st.ok()) return st;
    if (!tap_status.ok()) return tap_status;
    for (size_t l = 0; l < n_layers; ++l) {
      if (q_buf[l].empty()) {
        return absl::InternalError(absl::StrCat("calibration: no q/k from layer ", l));
      }
    }

    std::vector<absl::Status> layer_status(n_layers);
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t l; (l = next.fetch_add(1)) < n_layers;) {
        layer_status[l] =
            AccumulateLayer(q_buf[l], k_buf[l], shape, options.kmeans, head_sum[l], group_sum[l]);
      }
    };
    std::vector<std::thread> pool;
    for (int32_t w = 1; w < workers; ++w) pool.emplace_back(work);
    work();
    for (std::thread& th : pool) th.join();
    for (const absl::Status& ls : layer_status) {
      if (!ls.ok()) return ls;
    }
    if (progress) progress(s + 1, options.samples);
  }
  (*runner)->SetQkTap(nullptr);

  CalibrationResult result;
  ChaiConfig& config = result.config;
  config.model = ChaiModelIdentity::Of(c, *fingerprint);
  config.calibration = ChaiCalibrationInfo{data_name, options.samples, t,
                                           CalibrationMethod(options), kCalibrationTool};
  for (size_t l = 0; l < n_layers; ++l) {
    for (double& e : head_sum[l]) e /= options.samples;
    for (double& e : group_sum[l]) e /= options.samples;
    absl::StatusOr<LayerCalibration> layer = ChooseLayer(
        std::move(head_sum[l]), std::move(group_sum[l]), static_cast<int32_t>(c.n_heads),
        static_cast<int32_t>(c.n_kv_heads), options.knee);
    if (!layer.ok()) return layer.status();
    config.layers.push_back({layer->clusters, layer->k_heads});
    result.layers.push_back(*std::move(layer));
  }
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return result;
}

}  // namespace chai::engine
