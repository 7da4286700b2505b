#include "engine/model/dequantized_copy.h"

#include "kernels/cpu/dequantize.h"

namespace chai::engine {
namespace {

kernels::WeightView ToF32(const kernels::WeightView& w,
                          std::vector<std::shared_ptr<std::vector<float>>>& owned) {
  std::vector<float>& dst = *owned.emplace_back(
      std::make_shared<std::vector<float>>(static_cast<size_t>(w.rows * w.cols)));
  const int64_t row_bytes = kernels::RowBytes(w.dtype, w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    kernels::cpu::DequantizeRow(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes,
                                dst.data() + r * w.cols, w.cols);
  }
  return {kernels::DType::kF32, w.rows, w.cols, dst.data()};
}

}  // namespace

std::unique_ptr<ModelWeights> DequantizedCopy(const ModelWeights& src) {
  auto m = std::make_unique<ModelWeights>(src);  // copies views, norms, sources
  m->token_embd = ToF32(src.token_embd, m->owned);
  m->output = src.config.tied_embeddings ? m->token_embd : ToF32(src.output, m->owned);
  for (LayerWeights& l : m->layers) {
    for (kernels::WeightView* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
      *w = ToF32(*w, m->owned);
    }
  }
  return m;
}

}  // namespace chai::engine
