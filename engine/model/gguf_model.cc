#include "engine/model/gguf_model.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "engine/model/weight_checks.h"
#include "kernels/cpu/dequantize.h"

namespace chai::engine {
namespace {

// Metadata key under the architecture prefix, e.g. "llama.block_count".
std::string Key(absl::string_view arch, absl::string_view suffix) {
  return absl::StrCat(arch, ".", suffix);
}

absl::StatusOr<int64_t> RequiredInt(const GgufFile& g, const std::string& key) {
  absl::StatusOr<int64_t> v = g.GetInt(key);
  if (!v.ok()) return absl::InvalidArgumentError(absl::StrCat("GGUF: ", v.status().message()));
  return v;
}

int64_t OptionalInt(const GgufFile& g, const std::string& key, int64_t fallback,
                    absl::Status* err) {
  if (!g.Has(key)) return fallback;
  absl::StatusOr<int64_t> v = g.GetInt(key);
  if (!v.ok()) {
    *err = v.status();
    return fallback;
  }
  return *v;
}

double OptionalFloat(const GgufFile& g, const std::string& key, double fallback,
                     absl::Status* err) {
  if (!g.Has(key)) return fallback;
  absl::StatusOr<double> v = g.GetFloat(key);
  if (!v.ok()) {
    *err = v.status();
    return fallback;
  }
  return *v;
}

// A 2-D GGUF tensor as a matrix view: GGUF dims are [cols, rows].
absl::StatusOr<kernels::WeightView> Matrix(const GgufFile& g, const std::string& name) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("GGUF is missing tensor ", name));
  if (t->dims.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tensor ", name, " has ", t->dims.size(), " dims, expected 2"));
  }
  return kernels::WeightView{t->dtype, t->dims[1], t->dims[0], t->data};
}

// A 1-D norm vector as float32 of length `n` (converted into `owned` when the
// file stores another type).
absl::StatusOr<const float*> Vector(const GgufFile& g, const std::string& name, int64_t n,
                                    std::vector<std::shared_ptr<std::vector<float>>>& owned) {
  const GgufTensorInfo* t = g.FindTensor(name);
  if (t == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("GGUF is missing tensor ", name));
  if (t->dims.size() != 1 || t->dims[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tensor ", name, " should be a vector of ", n, " values"));
  }
  if (t->dtype == kernels::DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % 4 == 0) {
    return reinterpret_cast<const float*>(t->data);
  }
  if (t->dtype != kernels::DType::kF32 && t->dtype != kernels::DType::kF16 &&
      t->dtype != kernels::DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF tensor ", name, " must be F32, F16 or BF16, not ", Name(t->dtype)));
  }
  std::vector<float>& v = *owned.emplace_back(std::make_shared<std::vector<float>>(n));
  kernels::cpu::DequantizeRow(t->dtype, t->data, v.data(), n);
  return v.data();
}

}  // namespace

absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& g) {
  LlamaConfig c;
  absl::StatusOr<absl::string_view> arch = g.GetString("general.architecture");
  if (!arch.ok()) return absl::InvalidArgumentError("GGUF has no general.architecture");
  if (*arch != "llama") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported architecture '", *arch, "' (only llama is supported)"));
  }
  c.architecture = std::string(*arch);
  if (absl::StatusOr<absl::string_view> name = g.GetString("general.name"); name.ok()) {
    c.name = std::string(*name);
  }
  absl::Status err;
  absl::StatusOr<int64_t> v;
  if (v = RequiredInt(g, Key(*arch, "block_count")); !v.ok()) return v.status();
  c.n_layers = *v;
  if (v = RequiredInt(g, Key(*arch, "embedding_length")); !v.ok()) return v.status();
  c.dim = *v;
  if (v = RequiredInt(g, Key(*arch, "feed_forward_length")); !v.ok()) return v.status();
  c.ffn_dim = *v;
  if (v = RequiredInt(g, Key(*arch, "attention.head_count")); !v.ok()) return v.status();
  c.n_heads = *v;
  c.n_kv_heads = OptionalInt(g, Key(*arch, "attention.head_count_kv"), c.n_heads, &err);
  const int64_t default_head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.head_dim = OptionalInt(g, Key(*arch, "attention.key_length"), default_head_dim, &err);
  if (OptionalInt(g, Key(*arch, "attention.value_length"), c.head_dim, &err) != c.head_dim) {
    return absl::InvalidArgumentError("GGUF key_length != value_length is not supported");
  }
  if (OptionalInt(g, Key(*arch, "rope.dimension_count"), c.head_dim, &err) != c.head_dim) {
    return absl::InvalidArgumentError("GGUF partial rotary dimensions are not supported");
  }
  c.context_length = OptionalInt(g, Key(*arch, "context_length"), 2048, &err);
  c.rope_theta = OptionalFloat(g, Key(*arch, "rope.freq_base"), 10000.0, &err);
  c.rms_eps = OptionalFloat(g, Key(*arch, "attention.layer_norm_rms_epsilon"), 1e-5, &err);
  if (g.Has(Key(*arch, "rope.scaling.type"))) {
    absl::StatusOr<absl::string_view> type = g.GetString(Key(*arch, "rope.scaling.type"));
    if (!type.ok()) return type.status();
    const double factor = OptionalFloat(g, Key(*arch, "rope.scaling.factor"), 0.0, &err);
    if (*type == "linear") {
      c.rope_linear_factor = factor;
    } else if (*type != "none" && *type != "") {
      return absl::InvalidArgumentError(absl::StrCat("unsupported rope scaling '", *type, "'"));
    }
  }
  if (!err.ok()) return absl::InvalidArgumentError(absl::StrCat("GGUF: ", err.message()));

  const GgufTensorInfo* embd = g.FindTensor("token_embd.weight");
  if (embd == nullptr || embd->dims.size() != 2) {
    return absl::InvalidArgumentError("GGUF is missing a 2-D token_embd.weight");
  }
  c.vocab_size = embd->dims[1];
  if (g.Has(Key(*arch, "vocab_size"))) {
    absl::StatusOr<int64_t> vs = g.GetInt(Key(*arch, "vocab_size"));
    if (!vs.ok() || *vs != c.vocab_size) {
      return absl::InvalidArgumentError("GGUF vocab_size contradicts token_embd.weight");
    }
  }
  c.tied_embeddings = g.FindTensor("output.weight") == nullptr;
  c.rope_interleaved = true;  // llama.cpp's converter permutes Q/K for it.
  if (const GgufTensorInfo* rf = g.FindTensor("rope_freqs.weight"); rf != nullptr) {
    if (rf->dtype != kernels::DType::kF32 || rf->dims.size() != 1 ||
        (c.head_dim > 0 && rf->dims[0] != c.head_dim / 2)) {
      return absl::InvalidArgumentError("GGUF rope_freqs.weight must be F32 [head_dim/2]");
    }
    c.rope_freq_factors.resize(rf->dims[0]);
    std::memcpy(c.rope_freq_factors.data(), rf->data, rf->n_bytes);
  }
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  return c;
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromGguf(std::shared_ptr<const GgufFile> gguf) {
  const GgufFile& g = *gguf;
  absl::StatusOr<LlamaConfig> config = LlamaConfigFromGguf(g);
  if (!config.ok()) return config.status();
  auto m = std::make_unique<ModelWeights>();
  m->config = *std::move(config);
  m->sources.push_back(gguf);
  const int64_t dim = m->config.dim;

#define CHAI_ASSIGN(lhs, expr)        \
  do {                                \
    auto _r = (expr);                 \
    if (!_r.ok()) return _r.status(); \
    lhs = *_r;                        \
  } while (0)

  CHAI_ASSIGN(m->token_embd, Matrix(g, "token_embd.weight"));
  if (m->config.tied_embeddings) {
    m->output = m->token_embd;
  } else {
    CHAI_ASSIGN(m->output, Matrix(g, "output.weight"));
  }
  CHAI_ASSIGN(m->output_norm, Vector(g, "output_norm.weight", dim, m->owned));
  m->layers.resize(m->config.n_layers);
  for (int64_t i = 0; i < m->config.n_layers; ++i) {
    LayerWeights& l = m->layers[i];
    auto name = [i](const char* t) { return absl::StrCat("blk.", i, ".", t, ".weight"); };
    CHAI_ASSIGN(l.attn_norm, Vector(g, name("attn_norm"), dim, m->owned));
    CHAI_ASSIGN(l.ffn_norm, Vector(g, name("ffn_norm"), dim, m->owned));
    CHAI_ASSIGN(l.wq, Matrix(g, name("attn_q")));
    CHAI_ASSIGN(l.wk, Matrix(g, name("attn_k")));
    CHAI_ASSIGN(l.wv, Matrix(g, name("attn_v")));
    CHAI_ASSIGN(l.wo, Matrix(g, name("attn_output")));
    CHAI_ASSIGN(l.w_gate, Matrix(g, name("ffn_gate")));
    CHAI_ASSIGN(l.w_up, Matrix(g, name("ffn_up")));
    CHAI_ASSIGN(l.w_down, Matrix(g, name("ffn_down")));
  }
#undef CHAI_ASSIGN
  if (absl::Status s = CheckModelShapes(*m); !s.ok()) return s;
  return m;
}

}  // namespace chai::engine
