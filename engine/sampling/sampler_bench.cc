// Per-token sampling cost at SmolLM2's vocabulary (49152) for the common
// parameter mixes. Run: build/engine/sampling/chai_sampling_bench
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/sampling/sampler.h"

namespace chai::engine {
namespace {

constexpr int64_t kVocab = 49152;

void BM_Sample(benchmark::State& state, SamplingParams params) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(kVocab);
  for (float& l : logits) l = normal(rng);
  params.seed = 7;
  absl::StatusOr<Sampler> sampler = Sampler::Create(params, kVocab);
  if (!sampler.ok()) {
    state.SkipWithError(sampler.status().ToString().c_str());
    return;
  }
  PenaltyState history(kVocab);
  for (int i = 0; i < 512; ++i) (void)history.Add(static_cast<int32_t>(rng() % kVocab));
  for (auto _ : state) {
    absl::StatusOr<SampleResult> r = sampler->Sample(logits, history);
    benchmark::DoNotOptimize(r);
  }
}

SamplingParams Greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}
SamplingParams TopK40() {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  return p;
}
SamplingParams TopP095() {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.95f;
  return p;
}
SamplingParams LlamaCppDefaults() {
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
  p.min_p = 0.05f;
  p.repetition_penalty = 1.1f;
  p.top_logprobs = 5;
  return p;
}

BENCHMARK_CAPTURE(BM_Sample, plain, SamplingParams{});
BENCHMARK_CAPTURE(BM_Sample, greedy, Greedy());
BENCHMARK_CAPTURE(BM_Sample, top_k_40, TopK40());
BENCHMARK_CAPTURE(BM_Sample, top_p_095, TopP095());
BENCHMARK_CAPTURE(BM_Sample, llama_cpp_defaults_penalties_logprobs, LlamaCppDefaults());

}  // namespace
}  // namespace chai::engine
