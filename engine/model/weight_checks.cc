#include "engine/model/weight_checks.h"

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::Status CheckMatrix(absl::string_view name, const kernels::WeightView& w, int64_t rows,
                         int64_t cols) {
  if (w.data == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("model is missing tensor ", name));
  }
  if (w.rows != rows || w.cols != cols) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, " has shape [", w.rows, ", ",
                                                   w.cols, "], the model config implies [", rows,
                                                   ", ", cols, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckModelShapes(const ModelWeights& m) {
  const LlamaConfig& c = m.config;
  const int64_t q_dim = c.n_heads * c.head_dim;
  const int64_t kv_dim = c.n_kv_heads * c.head_dim;
  if (static_cast<int64_t>(m.layers.size()) != c.n_layers) {
    return absl::InvalidArgumentError(absl::StrCat("model has ", m.layers.size(),
                                                   " layers of weights, config says ", c.n_layers));
  }
  if (absl::Status s = CheckMatrix("token_embd", m.token_embd, c.vocab_size, c.dim); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckMatrix("output", m.output, c.vocab_size, c.dim); !s.ok()) return s;
  if (m.output_norm == nullptr) return absl::InvalidArgumentError("model is missing output_norm");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const LayerWeights& l = m.layers[i];
    const std::string p = absl::StrCat("layer ", i, " ");
    if (l.attn_norm == nullptr || l.ffn_norm == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(p, "is missing a norm weight"));
    }
    for (auto [name, w, rows, cols] :
         {std::tuple<const char*, const kernels::WeightView*, int64_t, int64_t>{"attn_q", &l.wq,
                                                                                q_dim, c.dim},
          {"attn_k", &l.wk, kv_dim, c.dim},
          {"attn_v", &l.wv, kv_dim, c.dim},
          {"attn_output", &l.wo, c.dim, q_dim},
          {"ffn_gate", &l.w_gate, c.ffn_dim, c.dim},
          {"ffn_up", &l.w_up, c.ffn_dim, c.dim},
          {"ffn_down", &l.w_down, c.dim, c.ffn_dim}}) {
      if (absl::Status s = CheckMatrix(absl::StrCat(p, name), *w, rows, cols); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace chai::engine
