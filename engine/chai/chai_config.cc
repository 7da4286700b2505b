#include "engine/chai/chai_config.h"

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using json = nlohmann::json;

constexpr char kFormat[] = "chai-cluster-config";
constexpr int kVersion = 1;
// Sane caps: far above any LLaMA-family model, far below what could overflow
// or exhaust memory when a hostile file asks for it.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeads = 1024;
constexpr int64_t kMaxHeadDim = 4096;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxSamples = int64_t{1} << 24;
constexpr int64_t kMaxTokensPerSample = int64_t{1} << 24;
constexpr size_t kMaxStringBytes = 4096;

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("CHAI config: ", field, ": ", why));
}

// The keys of `obj` must be exactly `required` plus any of `optional`.
absl::Status CheckKeys(const json& obj, absl::string_view where,
                       std::initializer_list<const char*> required,
                       std::initializer_list<const char*> optional = {}) {
  if (!obj.is_object()) return Bad(where, "must be a JSON object");
  std::set<std::string> allowed;
  for (const char* k : required) {
    allowed.insert(k);
    if (!obj.contains(k)) return Bad(absl::StrCat(where, ".", k), "missing");
  }
  for (const char* k : optional) allowed.insert(k);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (allowed.count(it.key()) == 0) {
      return Bad(absl::StrCat(where, ".", it.key()), "unknown key");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> GetInt(const json& obj, const char* key, absl::string_view where,
                               int64_t lo, int64_t hi) {
  const std::string field = absl::StrCat(where, ".", key);
  const json& v = obj.at(key);
  if (!v.is_number_integer()) return Bad(field, "must be an integer");
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "]"));
    }
    x = static_cast<int64_t>(u);
  } else {
    x = v.get<int64_t>();
  }
  if (x < lo || x > hi) {
    return Bad(field, absl::StrCat("is ", x, ", must be in [", lo, ", ", hi, "]"));
  }
  return static_cast<int32_t>(x);
}

absl::StatusOr<std::string> GetString(const json& obj, const char* key, absl::string_view where,
                                      bool allow_empty) {
  const std::string field = absl::StrCat(where, ".", key);
  const json& v = obj.at(key);
  if (!v.is_string()) return Bad(field, "must be a string");
  std::string s = v.get<std::string>();
  if (s.size() > kMaxStringBytes) return Bad(field, "is too long");
  if (!allow_empty && s.empty()) return Bad(field, "must not be empty");
  return s;
}

bool IsHex64(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

// nlohmann keeps the last of duplicate keys silently; a config with two
// "clusters" is ambiguous, so the parse callback rejects it.
class DuplicateKeyCheck {
 public:
  bool operator()(int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys_.resize(static_cast<size_t>(depth) + 1);
        keys_[static_cast<size_t>(depth)].clear();
        break;
      case json::parse_event_t::key: {
        // Keys of an object at depth d are reported at depth d + 1.
        const size_t d = static_cast<size_t>(depth) - 1;
        if (d < keys_.size() && !keys_[d].insert(parsed.get<std::string>()).second) {
          duplicate_ = parsed.get<std::string>();
        }
        break;
      }
      default:
        break;
    }
    return true;
  }
  const std::string& duplicate() const { return duplicate_; }

 private:
  std::vector<std::set<std::string>> keys_;
  std::string duplicate_;
};

absl::StatusOr<ChaiModelIdentity> ParseModel(const json& m) {
  if (absl::Status s = CheckKeys(m, "model",
                                 {"name", "architecture", "n_layers", "n_heads", "n_kv_heads",
                                  "head_dim", "vocab_size", "fingerprint"});
      !s.ok()) {
    return s;
  }
  ChaiModelIdentity id;
  absl::StatusOr<std::string> name = GetString(m, "name", "model", /*allow_empty=*/true);
  if (!name.ok()) return name.status();
  id.name = *std::move(name);
  absl::StatusOr<std::string> arch = GetString(m, "architecture", "model", false);
  if (!arch.ok()) return arch.status();
  id.architecture = *std::move(arch);
  struct IntField {
    const char* key;
    int32_t* dst;
    int64_t hi;
  };
  for (const IntField& f :
       {IntField{"n_layers", &id.n_layers, kMaxLayers}, IntField{"n_heads", &id.n_heads, kMaxHeads},
        IntField{"n_kv_heads", &id.n_kv_heads, kMaxHeads},
        IntField{"head_dim", &id.head_dim, kMaxHeadDim},
        IntField{"vocab_size", &id.vocab_size, kMaxVocab}}) {
    absl::StatusOr<int32_t> v = GetInt(m, f.key, "model", 1, f.hi);
    if (!v.ok()) return v.status();
    *f.dst = *v;
  }
  absl::StatusOr<std::string> fp = GetString(m, "fingerprint", "model", false);
  if (!fp.ok()) return fp.status();
  id.fingerprint = *std::move(fp);
  return id;
}

absl::StatusOr<ChaiCalibrationInfo> ParseCalibration(const json& c) {
  if (absl::Status s =
          CheckKeys(c, "calibration", {"data", "samples", "tokens_per_sample", "method", "tool"});
      !s.ok()) {
    return s;
  }
  ChaiCalibrationInfo info;
  for (auto [key, dst] : {std::pair{"data", &info.data}, std::pair{"method", &info.method},
                          std::pair{"tool", &info.tool}}) {
    absl::StatusOr<std::string> v = GetString(c, key, "calibration", false);
    if (!v.ok()) return v.status();
    *dst = *std::move(v);
  }
  absl::StatusOr<int32_t> samples = GetInt(c, "samples", "calibration", 1, kMaxSamples);
  if (!samples.ok()) return samples.status();
  info.samples = *samples;
  absl::StatusOr<int32_t> tokens =
      GetInt(c, "tokens_per_sample", "calibration", 1, kMaxTokensPerSample);
  if (!tokens.ok()) return tokens.status();
  info.tokens_per_sample = *tokens;
  return info;
}

}  // namespace

ChaiModelIdentity ChaiModelIdentity::Of(const LlamaConfig& config, absl::string_view fingerprint) {
  ChaiModelIdentity id;
  id.name = config.name;
  id.architecture = config.architecture;
  id.n_layers = static_cast<int32_t>(config.n_layers);
  id.n_heads = static_cast<int32_t>(config.n_heads);
  id.n_kv_heads = static_cast<int32_t>(config.n_kv_heads);
  id.head_dim = static_cast<int32_t>(config.head_dim);
  id.vocab_size = static_cast<int32_t>(config.vocab_size);
  id.fingerprint = std::string(fingerprint);
  return id;
}

absl::Status ChaiConfig::Validate() const {
  const ChaiModelIdentity& m = model;
  if (m.architecture.empty()) return Bad("model.architecture", "must not be empty");
  if (m.n_layers < 1 || m.n_layers > kMaxLayers) return Bad("model.n_layers", "out of range");
  if (m.n_heads < 1 || m.n_heads > kMaxHeads) return Bad("model.n_heads", "out of range");
  if (m.n_kv_heads < 1 || m.n_kv_heads > m.n_heads) {
    return Bad("model.n_kv_heads",
               absl::StrCat("is ", m.n_kv_heads, ", must be in [1, n_heads = ", m.n_heads, "]"));
  }
  if (m.n_heads % m.n_kv_heads != 0) {
    return Bad("model.n_kv_heads",
               absl::StrCat(m.n_kv_heads, " does not divide n_heads ", m.n_heads));
  }
  if (m.head_dim < 1 || m.head_dim > kMaxHeadDim) return Bad("model.head_dim", "out of range");
  if (m.vocab_size < 1 || m.vocab_size > kMaxVocab) return Bad("model.vocab_size", "out of range");
  if (!IsHex64(m.fingerprint)) {
    return Bad("model.fingerprint", "must be 64 lower-case hex digits (SHA-256)");
  }
  if (calibration.has_value()) {
    const ChaiCalibrationInfo& c = *calibration;
    if (c.data.empty() || c.method.empty() || c.tool.empty()) {
      return Bad("calibration", "data, method and tool must not be empty");
    }
    if (c.samples < 1) return Bad("calibration.samples", "must be >= 1");
    if (c.tokens_per_sample < 1) return Bad("calibration.tokens_per_sample", "must be >= 1");
  }
  if (layers.size() != static_cast<size_t>(m.n_layers)) {
    return Bad("layers", absl::StrCat("has ", layers.size(), " entries, the model has ", m.n_layers,
                                      " layers"));
  }
  const int32_t group = m.n_heads / m.n_kv_heads;
  for (size_t l = 0; l < layers.size(); ++l) {
    const ChaiLayerConfig& c = layers[l];
    const std::string where = absl::StrCat("layers[", l, "]");
    if (c.clusters < 1 || c.clusters > m.n_heads) {
      return Bad(absl::StrCat(where, ".clusters"),
                 absl::StrCat("is ", c.clusters, ", must be in [1, n_heads = ", m.n_heads, "]"));
    }
    if (c.k_heads < 1 || c.k_heads > m.n_kv_heads) {
      return Bad(
          absl::StrCat(where, ".k_heads"),
          absl::StrCat("is ", c.k_heads, ", must be in [1, n_kv_heads = ", m.n_kv_heads, "]"));
    }
    if (int64_t{c.clusters} > int64_t{c.k_heads} * group) {
      return Bad(where, absl::StrCat(c.clusters, " clusters need representatives from at least ",
                                     (c.clusters + group - 1) / group, " KV heads, k_heads is ",
                                     c.k_heads));
    }
  }
  return absl::OkStatus();
}

ChaiPlan ChaiConfig::plan() const {
  ChaiPlan p;
  p.clusters.reserve(layers.size());
  p.k_heads.reserve(layers.size());
  for (const ChaiLayerConfig& l : layers) {
    p.clusters.push_back(l.clusters);
    p.k_heads.push_back(l.k_heads);
  }
  return p;
}

absl::Status ChaiConfig::CheckShape(const LlamaConfig& c) const {
  std::vector<std::string> diffs;
  auto cmp = [&](const char* what, int64_t mine, int64_t theirs) {
    if (mine != theirs) diffs.push_back(absl::StrCat(what, " ", mine, " vs ", theirs));
  };
  if (model.architecture != c.architecture) {
    diffs.push_back(absl::StrCat("architecture ", model.architecture, " vs ", c.architecture));
  }
  cmp("n_layers", model.n_layers, c.n_layers);
  cmp("n_heads", model.n_heads, c.n_heads);
  cmp("n_kv_heads", model.n_kv_heads, c.n_kv_heads);
  cmp("head_dim", model.head_dim, c.head_dim);
  cmp("vocab_size", model.vocab_size, c.vocab_size);
  if (diffs.empty()) return absl::OkStatus();
  std::string msg =
      absl::StrCat("CHAI config for '", model.name, "' does not fit the model (config vs model):");
  for (const std::string& d : diffs) absl::StrAppend(&msg, " ", d, ";");
  msg.pop_back();
  return absl::InvalidArgumentError(msg);
}

bool ChaiConfig::Matches(const LlamaConfig& config, absl::string_view fingerprint) const {
  return CheckShape(config).ok() && model.fingerprint == fingerprint;
}

absl::StatusOr<ChaiConfig> ChaiConfig::FromJson(absl::string_view text) {
  if (static_cast<int64_t>(text.size()) > kMaxChaiConfigBytes) {
    return Bad("file",
               absl::StrCat("is ", text.size(), " bytes, the limit is ", kMaxChaiConfigBytes));
  }
  DuplicateKeyCheck dup;
  json root = json::parse(text.begin(), text.end(), std::ref(dup), /*allow_exceptions=*/false);
  if (root.is_discarded()) return Bad("file", "is not valid JSON");
  if (!dup.duplicate().empty()) return Bad(dup.duplicate(), "duplicate key");
  if (absl::Status s =
          CheckKeys(root, "config", {"format", "version", "model", "layers"}, {"calibration"});
      !s.ok()) {
    return s;
  }
  if (!root["format"].is_string() || root["format"].get<std::string>() != kFormat) {
    return Bad("config.format", absl::StrCat("must be \"", kFormat, "\""));
  }
  absl::StatusOr<int32_t> version = GetInt(root, "version", "config", 0, 1 << 30);
  if (!version.ok()) return version.status();
  if (*version != kVersion) {
    return Bad("config.version", absl::StrCat(*version, " is not supported (only ", kVersion, ")"));
  }
  ChaiConfig config;
  absl::StatusOr<ChaiModelIdentity> model = ParseModel(root["model"]);
  if (!model.ok()) return model.status();
  config.model = *std::move(model);
  if (root.contains("calibration")) {
    absl::StatusOr<ChaiCalibrationInfo> cal = ParseCalibration(root["calibration"]);
    if (!cal.ok()) return cal.status();
    config.calibration = *std::move(cal);
  }
  const json& layers = root["layers"];
  if (!layers.is_array()) return Bad("layers", "must be an array");
  if (layers.size() != static_cast<size_t>(config.model.n_layers)) {
    return Bad("layers", absl::StrCat("has ", layers.size(), " entries, model.n_layers is ",
                                      config.model.n_layers));
  }
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string where = absl::StrCat("layers[", l, "]");
    if (absl::Status s = CheckKeys(layers[l], where, {"layer", "clusters", "k_heads"}); !s.ok()) {
      return s;
    }
    absl::StatusOr<int32_t> index = GetInt(layers[l], "layer", where, 0, kMaxLayers);
    if (!index.ok()) return index.status();
    if (static_cast<size_t>(*index) != l) {
      return Bad(absl::StrCat(where, ".layer"), absl::StrCat("is ", *index, ", expected ", l));
    }
    ChaiLayerConfig lc;
    absl::StatusOr<int32_t> clusters = GetInt(layers[l], "clusters", where, 1, kMaxHeads);
    if (!clusters.ok()) return clusters.status();
    absl::StatusOr<int32_t> k_heads = GetInt(layers[l], "k_heads", where, 1, kMaxHeads);
    if (!k_heads.ok()) return k_heads.status();
    lc.clusters = *clusters;
    lc.k_heads = *k_heads;
    config.layers.push_back(lc);
  }
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return config;
}

absl::StatusOr<ChaiConfig> ChaiConfig::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open CHAI config ", path));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  if (size > kMaxChaiConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": CHAI config is ", size,
                                                   " bytes, the limit is ", kMaxChaiConfigBytes));
  }
  in.seekg(0, std::ios::beg);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  absl::StatusOr<ChaiConfig> config = FromJson(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

std::string ChaiConfig::ToJson() const {
  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  root["format"] = kFormat;
  root["version"] = kVersion;
  root["model"] = {{"name", model.name},
                   {"architecture", model.architecture},
                   {"n_layers", model.n_layers},
                   {"n_heads", model.n_heads},
                   {"n_kv_heads", model.n_kv_heads},
                   {"head_dim", model.head_dim},
                   {"vocab_size", model.vocab_size},
                   {"fingerprint", model.fingerprint}};
  if (calibration.has_value()) {
    root["calibration"] = {{"data", calibration->data},
                           {"samples", calibration->samples},
                           {"tokens_per_sample", calibration->tokens_per_sample},
                           {"method", calibration->method},
                           {"tool", calibration->tool}};
  }
  // One layer per line keeps the file readable and diffs small.
  std::string out = root.dump(2);
  out.resize(out.size() - 2);  // drop "\n}"
  absl::StrAppend(&out, ",\n  \"layers\": [");
  for (size_t l = 0; l < layers.size(); ++l) {
    absl::StrAppend(&out, l == 0 ? "\n" : ",\n", "    {\"layer\": ", l,
                    ", \"clusters\": ", layers[l].clusters, ", \"k_heads\": ", layers[l].k_heads,
                    "}");
  }
  absl::StrAppend(&out, "\n  ]\n}\n");
  return out;
}

absl::Status ChaiConfig::Save(const std::string& path) const {
  if (absl::Status s = Validate(); !s.ok()) return s;
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", tmp));
    out << ToJson();
    out.flush();
    if (!out) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return absl::ErrnoToStatus(err, absl::StrCat("cannot rename ", tmp, " to ", path));
  }
  return absl::OkStatus();
}

bool operator==(const ChaiModelIdentity& a, const ChaiModelIdentity& b) {
  return a.name == b.name && a.architecture == b.architecture && a.n_layers == b.n_layers &&
         a.n_heads == b.n_heads && a.n_kv_heads == b.n_kv_heads && a.head_dim == b.head_dim &&
         a.vocab_size == b.vocab_size && a.fingerprint == b.fingerprint;
}
bool operator==(const ChaiCalibrationInfo& a, const ChaiCalibrationInfo& b) {
  return a.data == b.data && a.samples == b.samples && a.tokens_per_sample == b.tokens_per_sample &&
         a.method == b.method && a.tool == b.tool;
}
bool operator==(const ChaiLayerConfig& a, const ChaiLayerConfig& b) {
  return a.clusters == b.clusters && a.k_heads == b.k_heads;
}
bool operator==(const ChaiConfig& a, const ChaiConfig& b) {
  return a.model == b.model && a.calibration == b.calibration && a.layers == b.layers;
}

}  // namespace chai::engine
