#include "engine/model/hf_config.h"

#include <algorithm>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using Json = nlohmann::json;

constexpr std::streamoff kMaxConfigBytes = 1 << 20;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", what));
}

// Looks up `key`; a JSON null counts as absent (transformers writes nulls for
// unset optional fields such as head_dim or rope_scaling).
const Json* Get(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// An integer field. JSON floats and strings are rejected: "32" or 32.5 heads
// is a broken file, not something to guess about.
absl::Status ReadInt(const Json& obj, const char* key, bool required, int64_t* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) {
    return required ? Invalid(absl::StrCat("missing required field ", key)) : absl::OkStatus();
  }
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return Invalid(absl::StrCat(key, " is too large"));
    *out = static_cast<int64_t>(u);
    return absl::OkStatus();
  }
  if (v->is_number_integer()) {
    *out = v->get<int64_t>();
    return absl::OkStatus();
  }
  return Invalid(absl::StrCat(key, " must be an integer"));
}

absl::Status ReadNumber(const Json& obj, const char* key, bool required, double* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) {
    return required ? Invalid(absl::StrCat("missing required field ", key)) : absl::OkStatus();
  }
  if (!v->is_number()) return Invalid(absl::StrCat(key, " must be a number"));
  *out = v->get<double>();
  return absl::OkStatus();
}

absl::Status ReadBool(const Json& obj, const char* key, bool* out) {
  const Json* v = Get(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return Invalid(absl::StrCat(key, " must be true or false"));
  *out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status CheckArchitecture(const Json& root) {
  static constexpr const char* kSupported[] = {"LlamaForCausalLM", "MistralForCausalLM"};
  if (const Json* arch = Get(root, "architectures"); arch != nullptr) {
    if (!arch->is_array()) return Invalid("architectures must be a list of strings");
    for (const Json& a : *arch) {
      if (!a.is_string()) return Invalid("architectures must be a list of strings");
      for (const char* s : kSupported) {
        if (a.get_ref<const std::string&>() == s) return absl::OkStatus();
      }
    }
    return absl::UnimplementedError(
        absl::StrCat("config.json: architectures ", arch->dump().substr(0, 200),
                     " are not supported (LlamaForCausalLM, MistralForCausalLM)"));
  }
  // Older configs may name only model_type.
  const Json* type = Get(root, "model_type");
  if (type == nullptr) return Invalid("names neither architectures nor model_type");
  if (!type->is_string()) return Invalid("model_type must be a string");
  const std::string& t = type->get_ref<const std::string&>();
  if (t != "llama" && t != "mistral") {
    return absl::UnimplementedError(
        absl::StrCat("config.json: model_type '", t.substr(0, 100), "' is not supported"));
  }
  return absl::OkStatus();
}

absl::Status ReadRopeScaling(const Json& rs, LlamaConfig* c) {
  if (!rs.is_object()) return Invalid("rope_scaling must be an object or null");
  const Json* type = Get(rs, "rope_type");
  if (type == nullptr) type = Get(rs, "type");
  if (type == nullptr) return Invalid("rope_scaling has no rope_type");
  if (!type->is_string()) return Invalid("rope_scaling rope_type must be a string");
  const std::string& t = type->get_ref<const std::string&>();
  if (t == "default") return absl::OkStatus();
  double factor = 0;
  if (absl::Status s = ReadNumber(rs, "factor", /*required=*/true, &factor); !s.ok()) return s;
  if (!(factor >= 1.0)) return Invalid("rope_scaling factor must be >= 1");
  if (t == "linear") {
    c->rope_linear_factor = factor;
    return absl::OkStatus();
  }
  if (t != "llama3") {
    return absl::UnimplementedError(
        absl::StrCat("config.json: rope_scaling type '", t.substr(0, 100), "' is not supported"));
  }
  RopeScaling& r = c->rope_scaling;
  r.factor = factor;
  absl::Status s = ReadNumber(rs, "low_freq_factor", true, &r.low_freq_factor);
  s.Update(ReadNumber(rs, "high_freq_factor", true, &r.high_freq_factor));
  s.Update(ReadInt(rs, "original_max_position_embeddings", true, &r.original_max_position));
  return s;
}

}  // namespace

absl::StatusOr<LlamaConfig> LlamaConfigFromHfJson(absl::string_view config_json) {
  const Json root = Json::parse(config_json.begin(), config_json.end(), nullptr,
                                /*allow_exceptions=*/false);
  if (root.is_discarded()) return Invalid("not valid JSON");
  if (!root.is_object()) return Invalid("not a JSON object");
  if (absl::Status s = CheckArchitecture(root); !s.ok()) return s;

  LlamaConfig c;
  c.architecture = "llama";
  c.rope_interleaved = false;
  c.rms_eps = 1e-6;
  c.context_length = 2048;
  if (const Json* name = Get(root, "_name_or_path"); name != nullptr && name->is_string()) {
    c.name = name->get<std::string>();
  }
  absl::Status s;
  s.Update(ReadInt(root, "hidden_size", true, &c.dim));
  s.Update(ReadInt(root, "intermediate_size", true, &c.ffn_dim));
  s.Update(ReadInt(root, "num_hidden_layers", true, &c.n_layers));
  s.Update(ReadInt(root, "num_attention_heads", true, &c.n_heads));
  s.Update(ReadInt(root, "vocab_size", true, &c.vocab_size));
  if (!s.ok()) return s;
  c.n_kv_heads = c.n_heads;
  s.Update(ReadInt(root, "num_key_value_heads", false, &c.n_kv_heads));
  s.Update(ReadNumber(root, "rms_norm_eps", false, &c.rms_eps));
  s.Update(ReadNumber(root, "rope_theta", false, &c.rope_theta));
  s.Update(ReadInt(root, "max_position_embeddings", false, &c.context_length));
  s.Update(ReadBool(root, "tie_word_embeddings", &c.tied_embeddings));
  if (!s.ok()) return s;
  if (c.n_heads <= 0) return Invalid("num_attention_heads must be positive");
  if (Get(root, "head_dim") != nullptr) {
    if (s = ReadInt(root, "head_dim", false, &c.head_dim); !s.ok()) return s;
  } else {
    if (c.dim % c.n_heads != 0) {
      return Invalid(absl::StrCat("hidden_size ", c.dim, " is not a multiple of ",
                                  "num_attention_heads ", c.n_heads, " and head_dim is not given"));
    }
    c.head_dim = c.dim / c.n_heads;
  }
  if (const Json* rs = Get(root, "rope_scaling"); rs != nullptr) {
    if (s = ReadRopeScaling(*rs, &c); !s.ok()) return s;
  }
  if (const Json* rp = Get(root, "rope_parameters"); rp != nullptr) {
    if (!rp->is_object()) return Invalid("rope_parameters must be an object");
    if (s = ReadNumber(*rp, "rope_theta", false, &c.rope_theta); !s.ok()) return s;
    if (Get(root, "rope_scaling") == nullptr && (Get(*rp, "rope_type") || Get(*rp, "type"))) {
      if (s = ReadRopeScaling(*rp, &c); !s.ok()) return s;
    }
  }
  if (const Json* sw = Get(root, "sliding_window"); sw != nullptr) {
    int64_t window = 0;
    if (s = ReadInt(root, "sliding_window", false, &window); !s.ok()) return s;
    if (window <= 0) return Invalid("sliding_window must be positive");
    c.context_length = std::min(c.context_length, window);
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    bool on = false;
    if (s = ReadBool(root, bias, &on); !s.ok()) return s;
    if (on) {
      return absl::UnimplementedError(absl::StrCat("config.json: ", bias, " is not supported"));
    }
  }
  if (const Json* act = Get(root, "hidden_act"); act != nullptr) {
    if (!act->is_string()) return Invalid("hidden_act must be a string");
    if (act->get_ref<const std::string&>() != "silu") {
      return absl::UnimplementedError(absl::StrCat("config.json: hidden_act '",
                                                   act->get_ref<const std::string&>().substr(0, 50),
                                                   "' is not supported (silu only)"));
    }
  }
  if (s = c.Validate(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("config.json: ", s.message()));
  }
  return c;
}

absl::StatusOr<LlamaConfig> LlamaConfigFromHfFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is larger than 1 MiB"));
  }
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) return absl::DataLossError(absl::StrCat("cannot read ", path));
  absl::StatusOr<LlamaConfig> c = LlamaConfigFromHfJson(text);
  if (!c.ok())
    return absl::Status(c.status().code(), absl::StrCat(path, ": ", c.status().message()));
  return c;
}

}  // namespace chai::engine
