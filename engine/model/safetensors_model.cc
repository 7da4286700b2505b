#include "engine/model/safetensors_model.h"

#include <sys/stat.h>

#include <cstdint>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/model/hf_config.h"
#include "engine/model/weight_checks.h"
#include "kernels/cpu/dequantize.h"

namespace chai::engine {
namespace {

using Owned = std::vector<std::shared_ptr<std::vector<float>>>;

bool Aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

absl::StatusOr<const SafetensorsTensor*> FindFloat(const SafetensorsCheckpoint& ckpt,
                                                   const std::string& name) {
  const SafetensorsTensor* t = ckpt.Find(name);
  if (t == nullptr)
    return absl::InvalidArgumentError(absl::StrCat("model is missing tensor ", name));
  if (!t->kernel_dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, " has dtype ", t->dtype, "; only F32, F16 and BF16 load"));
  }
  return t;
}

// Converts n elements of `t` to a new float32 buffer kept in `owned`. The
// source may be misaligned, so elements are copied out bytewise first.
const float* ToF32(const SafetensorsTensor& t, int64_t n, Owned& owned) {
  std::vector<float>& out = *owned.emplace_back(std::make_shared<std::vector<float>>(n));
  if (*t.kernel_dtype == kernels::DType::kF32) {
    std::memcpy(out.data(), t.data, n * sizeof(float));
  } else {
    std::vector<uint16_t> raw(n);
    std::memcpy(raw.data(), t.data, n * sizeof(uint16_t));
    kernels::cpu::DequantizeRow(*t.kernel_dtype, raw.data(), out.data(), n);
  }
  return out.data();
}

// A 2-D weight as a matrix view (safetensors shape [rows, cols] = [out, in]).
absl::StatusOr<kernels::WeightView> Matrix(const SafetensorsCheckpoint& ckpt,
                                           const std::string& name, Owned& owned) {
  absl::StatusOr<const SafetensorsTensor*> t = FindFloat(ckpt, name);
  if (!t.ok()) return t.status();
  const SafetensorsTensor& x = **t;
  if (x.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, " has ", x.shape.size(), " dims, expected 2"));
  }
  kernels::WeightView w{*x.kernel_dtype, x.shape[0], x.shape[1], x.data};
  if (!Aligned(x.data, x.dtype_bytes)) {
    w.dtype = kernels::DType::kF32;
    w.data = ToF32(x, x.n_elements, owned);
  }
  return w;
}

// A 1-D norm vector of n values as float32.
absl::StatusOr<const float*> Vector(const SafetensorsCheckpoint& ckpt, const std::string& name,
                                    int64_t n, Owned& owned) {
  absl::StatusOr<const SafetensorsTensor*> t = FindFloat(ckpt, name);
  if (!t.ok()) return t.status();
  const SafetensorsTensor& x = **t;
  if (x.shape.size() != 1 || x.shape[0] != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, " should be a vector of ", n, " values"));
  }
  if (*x.kernel_dtype == kernels::DType::kF32 && Aligned(x.data, sizeof(float))) {
    return reinterpret_cast<const float*>(x.data);
  }
  return ToF32(x, n, owned);
}

// Tensors of layers the config does not have mean config and weights disagree.
absl::Status CheckLayerNames(const SafetensorsCheckpoint& ckpt, int64_t n_layers) {
  constexpr absl::string_view kPrefix = "model.layers.";
  for (absl::string_view name : ckpt.Names()) {
    if (!absl::ConsumePrefix(&name, kPrefix)) continue;
    const absl::string_view index = name.substr(0, name.find('.'));
    int64_t layer;
    if (!absl::SimpleAtoi(index, &layer) || layer < 0 || layer >= n_layers) {
      return absl::InvalidArgumentError(absl::StrCat("tensor model.layers.", name.substr(0, 200),
                                                     " does not belong to any of the config's ",
                                                     n_layers, " layers"));
    }
  }
  return absl::OkStatus();
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromSafetensorsCheckpoint(
    const LlamaConfig& config, std::shared_ptr<const SafetensorsCheckpoint> checkpoint) {
  const SafetensorsCheckpoint& ckpt = *checkpoint;
  if (absl::Status s = CheckLayerNames(ckpt, config.n_layers); !s.ok()) return s;
  auto m = std::make_unique<ModelWeights>();
  m->config = config;
  m->sources.push_back(checkpoint);
  const int64_t dim = config.dim;

#define CHAI_ASSIGN(lhs, expr)        \
  do {                                \
    auto _r = (expr);                 \
    if (!_r.ok()) return _r.status(); \
    lhs = *_r;                        \
  } while (0)

  CHAI_ASSIGN(m->token_embd, Matrix(ckpt, "model.embed_tokens.weight", m->owned));
  if (config.tied_embeddings) {
    // transformers ties lm_head to the embedding and ignores a stored copy.
    m->output = m->token_embd;
  } else {
    CHAI_ASSIGN(m->output, Matrix(ckpt, "lm_head.weight", m->owned));
  }
  CHAI_ASSIGN(m->output_norm, Vector(ckpt, "model.norm.weight", dim, m->owned));
  m->layers.resize(config.n_layers);
  for (int64_t i = 0; i < config.n_layers; ++i) {
    LayerWeights& l = m->layers[i];
    auto name = [i](const char* t) { return absl::StrCat("model.layers.", i, ".", t, ".weight"); };
    CHAI_ASSIGN(l.attn_norm, Vector(ckpt, name("input_layernorm"), dim, m->owned));
    CHAI_ASSIGN(l.ffn_norm, Vector(ckpt, name("post_attention_layernorm"), dim, m->owned));
    CHAI_ASSIGN(l.wq, Matrix(ckpt, name("self_attn.q_proj"), m->owned));
    CHAI_ASSIGN(l.wk, Matrix(ckpt, name("self_attn.k_proj"), m->owned));
    CHAI_ASSIGN(l.wv, Matrix(ckpt, name("self_attn.v_proj"), m->owned));
    CHAI_ASSIGN(l.wo, Matrix(ckpt, name("self_attn.o_proj"), m->owned));
    CHAI_ASSIGN(l.w_gate, Matrix(ckpt, name("mlp.gate_proj"), m->owned));
    CHAI_ASSIGN(l.w_up, Matrix(ckpt, name("mlp.up_proj"), m->owned));
    CHAI_ASSIGN(l.w_down, Matrix(ckpt, name("mlp.down_proj"), m->owned));
  }
#undef CHAI_ASSIGN
  if (absl::Status s = CheckModelShapes(*m); !s.ok()) return s;
  return m;
}

absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromSafetensors(const std::string& path) {
  std::string dir = path;
  if (!IsDirectory(path)) {
    const size_t slash = path.rfind('/');
    dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  }
  absl::StatusOr<LlamaConfig> config = LlamaConfigFromHfFile(dir + "/config.json");
  if (!config.ok()) return config.status();
  if (config->name.empty()) {
    // Display name: the checkpoint directory's base name.
    std::string base = dir;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    const size_t slash = base.rfind('/');
    config->name = slash == std::string::npos ? base : base.substr(slash + 1);
  }
  absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> ckpt = SafetensorsCheckpoint::Open(path);
  if (!ckpt.ok()) return ckpt.status();
  absl::StatusOr<std::unique_ptr<ModelWeights>> m = ModelFromSafetensorsCheckpoint(
      *config, std::shared_ptr<const SafetensorsCheckpoint>(*std::move(ckpt)));
  if (!m.ok())
    return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
  return m;
}

}  // namespace chai::engine
