#include "tests/gpu/random_model.h"

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "kernels/cpu/dequantize.h"

namespace chai::testing {
namespace {

using kernels::DType;

class Maker {
 public:
  Maker(engine::ModelWeights* w, uint32_t seed) : w_(w), rng_(seed) {}

  kernels::WeightView Matrix(int64_t rows, int64_t cols, DType t, float stddev) {
    std::normal_distribution<float> normal(0.0f, stddev);
    const size_t n = static_cast<size_t>(rows * cols);
    if (t == DType::kF16) {
      auto data = std::make_shared<std::vector<uint16_t>>(n);
      for (uint16_t& v : *data) v = kernels::cpu::Fp32ToFp16(normal(rng_));
      w_->sources.push_back(data);
      return {t, rows, cols, data->data()};
    }
    auto data = std::make_shared<std::vector<float>>(n);
    for (float& v : *data) v = normal(rng_);
    w_->owned.push_back(data);
    return {DType::kF32, rows, cols, data->data()};
  }

  const float* Norm(int64_t n) {
    std::normal_distribution<float> normal(1.0f, 0.05f);
    auto data = std::make_shared<std::vector<float>>(static_cast<size_t>(n));
    for (float& v : *data) v = normal(rng_);
    w_->owned.push_back(data);
    return data->data();
  }

 private:
  engine::ModelWeights* w_;
  std::mt19937 rng_;
};

}  // namespace

engine::LlamaConfig SmolLm2Config() {
  engine::LlamaConfig c;
  c.name = "random SmolLM2-135M shape";
  c.architecture = "llama";
  c.n_layers = 30;
  c.dim = 576;
  c.ffn_dim = 1536;
  c.n_heads = 9;
  c.n_kv_heads = 3;
  c.head_dim = 64;
  c.vocab_size = 49152;
  c.context_length = 8192;
  c.rope_theta = 100000.0;
  c.rms_eps = 1e-5;
  c.rope_interleaved = true;
  return c;
}

engine::ModelWeights MakeRandomModel(const engine::LlamaConfig& c, uint32_t seed,
                                     DType matrix_dtype) {
  engine::ModelWeights w;
  w.config = c;
  Maker m(&w, seed);
  const DType other = matrix_dtype == DType::kF16 ? DType::kF32 : DType::kF16;
  w.token_embd = m.Matrix(c.vocab_size, c.dim, DType::kF16, 1.0f);
  // Logits with a spread of a few units: top-2 near-ties (< 0.05) stay rare.
  w.output = m.Matrix(c.vocab_size, c.dim, matrix_dtype, 4.0f / std::sqrt(float(c.dim)));
  w.output_norm = m.Norm(c.dim);
  w.layers.resize(c.n_layers);
  const int64_t q_dim = c.n_heads * c.head_dim, kv_dim = c.n_kv_heads * c.head_dim;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const DType t = l % 3 == 2 ? other : matrix_dtype;
    engine::LayerWeights& L = w.layers[l];
    const float s_dim = 1.0f / std::sqrt(float(c.dim));
    L.attn_norm = m.Norm(c.dim);
    L.ffn_norm = m.Norm(c.dim);
    // Queries and keys a little larger than 1/sqrt(dim), so that attention
    // is not uniform and the softmax matters.
    L.wq = m.Matrix(q_dim, c.dim, t, 2.0f * s_dim);
    L.wk = m.Matrix(kv_dim, c.dim, t, 2.0f * s_dim);
    L.wv = m.Matrix(kv_dim, c.dim, t, s_dim);
    L.wo = m.Matrix(c.dim, q_dim, t, 1.0f / std::sqrt(float(q_dim)));
    L.w_gate = m.Matrix(c.ffn_dim, c.dim, t, s_dim);
    L.w_up = m.Matrix(c.ffn_dim, c.dim, t, s_dim);
    L.w_down = m.Matrix(c.dim, c.ffn_dim, t, 1.0f / std::sqrt(float(c.ffn_dim)));
  }
  return w;
}

}  // namespace chai::testing
