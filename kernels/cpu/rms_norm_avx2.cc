#include <immintrin.h>

#include <cmath>

#include "kernels/cpu/rms_norm.h"

namespace chai::kernels::cpu::internal {

__attribute__((target("avx2,fma"))) void RmsNormRowAvx2(const float* x, const float* w, int32_t dim,
                                                        float eps, float* out) {
  __m256 acc = _mm256_setzero_ps();
  int32_t i = 0;
  for (; i + 8 <= dim; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    acc = _mm256_fmadd_ps(v, v, acc);
  }
  float tail = 0.0f;
  for (; i < dim; ++i) tail = std::fma(x[i], x[i], tail);
  alignas(32) float a[8];
  _mm256_store_ps(a, acc);
  // ops.cc's Reduce8, in its order.
  const float sum = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])) + tail;
  const float mean = sum / static_cast<float>(dim);
  const float scale = 1.0f / std::sqrt(mean + eps);
  const __m256 s = _mm256_set1_ps(scale);
  int32_t j = 0;
  for (; j + 8 <= dim; j += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), s);
    _mm256_storeu_ps(out + j, _mm256_mul_ps(v, _mm256_loadu_ps(w + j)));
  }
  for (; j < dim; ++j) out[j] = (x[j] * scale) * w[j];
}

}  // namespace chai::kernels::cpu::internal
