#include "engine/chai/model_fingerprint.h"

#include <bit>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/chai/sha256.h"
#include "kernels/cpu/dequantize.h"
#include "kernels/dtype.h"

namespace chai::engine {
namespace {

constexpr char kTag[] = "chai-model-fingerprint-v1\n";

void HashFloats(Sha256& sha, const float* v, int64_t n) {
  static_assert(std::endian::native == std::endian::little, "fingerprint assumes little-endian");
  sha.Update(v, static_cast<size_t>(n) * sizeof(float));
}

absl::Status HashRow(Sha256& sha, const kernels::WeightView& w, int64_t row, const char* what) {
  if (w.data == nullptr || row < 0 || row >= w.rows || w.cols <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("fingerprint: ", what, " has no row ", row));
  }
  const int64_t row_bytes = kernels::RowBytes(w.dtype, w.cols);
  if (row_bytes <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("fingerprint: ", what, " has a bad row size"));
  }
  std::vector<float> out(static_cast<size_t>(w.cols));
  kernels::cpu::DequantizeRow(w.dtype, static_cast<const char*>(w.data) + row * row_bytes,
                              out.data(), w.cols);
  HashFloats(sha, out.data(), w.cols);
  return absl::OkStatus();
}

absl::Status HashVector(Sha256& sha, const float* v, int64_t n, const char* what) {
  if (v == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("fingerprint: ", what, " is missing"));
  }
  HashFloats(sha, v, n);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ModelFingerprint(const ModelWeights& weights) {
  const LlamaConfig& c = weights.config;
  if (weights.layers.empty() || c.dim <= 0 || c.vocab_size <= 0) {
    return absl::InvalidArgumentError("fingerprint: the model has no layers");
  }
  if (weights.token_embd.cols != c.dim) {
    return absl::InvalidArgumentError("fingerprint: token_embd width differs from dim");
  }
  Sha256 sha;
  sha.Update(kTag);
  const int64_t v = c.vocab_size;
  for (int64_t row : {int64_t{0}, int64_t{1}, v / 2, v - 1}) {
    if (absl::Status s = HashRow(sha, weights.token_embd, row, "token_embd"); !s.ok()) return s;
  }
  if (absl::Status s = HashRow(sha, weights.output, v - 1, "output"); !s.ok()) return s;
  if (absl::Status s = HashVector(sha, weights.output_norm, c.dim, "output_norm"); !s.ok()) {
    return s;
  }
  const LayerWeights& first = weights.layers.front();
  const LayerWeights& last = weights.layers.back();
  if (absl::Status s = HashVector(sha, first.attn_norm, c.dim, "attn_norm"); !s.ok()) return s;
  if (absl::Status s = HashVector(sha, last.ffn_norm, c.dim, "ffn_norm"); !s.ok()) return s;
  if (absl::Status s = HashRow(sha, first.wv, 0, "wv"); !s.ok()) return s;
  if (absl::Status s = HashRow(sha, last.w_down, 0, "w_down"); !s.ok()) return s;
  return Sha256::ToHex(sha.Finish());
}

}  // namespace chai::engine
