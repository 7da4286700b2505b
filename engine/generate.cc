#include "engine/generate.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "engine/chai/clustering.h"
#include "engine/sampling/penalty_state.h"
#include "engine/sampling/sampler.h"
#include "engine/text_stream.h"

namespace chai::engine {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

absl::StatusOr<GenerateResult> Generate(
    ModelRunner& runner, kernels::Backend& backend, const Tokenizer& tokenizer,
    std::span<const int32_t> prompt, const GenerateOptions& options,
    const std::function<void(const GeneratedToken&)>& on_token) {
  const LlamaConfig& config = runner.config();
  if (prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  if (options.max_tokens < 0) return absl::InvalidArgumentError("max_tokens must be >= 0");
  const int64_t total = static_cast<int64_t>(prompt.size()) + options.max_tokens;
  if (total > config.context_length) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt (", prompt.size(), " tokens) + max_tokens (", options.max_tokens,
                     ") exceeds the model's context of ", config.context_length));
  }
  absl::StatusOr<Sampler> sampler = Sampler::Create(options.sampling, config.vocab_size);
  if (!sampler.ok()) return sampler.status();
  PenaltyState history(config.vocab_size);
  if (absl::Status s = history.AddPrompt(prompt); !s.ok()) return s;

  KvCacheOptions kv;
  kv.block_size = 16;
  kv.max_seqs = 1;
  kv.max_seq_len = std::max<int64_t>(total, 1);
  kv.num_blocks = (kv.max_seq_len + kv.block_size - 1) / kv.block_size;
  const bool chai = options.chai.enabled() && prompt.size() >= kChaiFeatureTokens;
  if (chai) kv.chai = options.chai;
  absl::StatusOr<std::unique_ptr<KvCache>> cache = KvCache::Create(&backend, config, kv);
  if (!cache.ok()) return cache.status();
  absl::StatusOr<int32_t> slot = (*cache)->AddSequence(chai);
  if (!slot.ok()) return slot.status();
  if (absl::Status s = (*cache)->Reserve(*slot, total); !s.ok()) return s;

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.seed = sampler->seed();
  std::vector<float> logits(config.vocab_size);
  auto t0 = std::chrono::steady_clock::now();

  // Prefill in chunks the runner accepts; logits only for the last token.
  // (A CHAI sequence's first chunk must hold its first 5 tokens.)
  const int64_t chunk = runner.max_batch_tokens();
  if (chai && chunk < kChaiFeatureTokens) {
    return absl::InvalidArgumentError("CHAI needs max_batch_tokens >= 5");
  }
  for (int64_t start = 0; start < static_cast<int64_t>(prompt.size()); start += chunk) {
    const int64_t n = std::min<int64_t>(chunk, static_cast<int64_t>(prompt.size()) - start);
    std::vector<int32_t> slots(n, *slot), pos(n);
    std::iota(pos.begin(), pos.end(), static_cast<int32_t>(start));
    const bool last = start + n == static_cast<int64_t>(prompt.size());
    std::vector<int32_t> rows;
    if (last) rows.push_back(static_cast<int32_t>(n - 1));
    if (absl::Status s =
            runner.Forward({prompt.subspan(start, n), slots, pos, rows}, **cache, logits);
        !s.ok()) {
      return s;
    }
    result.clustering_s += runner.last_forward_stats().clustering_s;
  }
  auto t1 = std::chrono::steady_clock::now();
  result.prefill_s = Seconds(t0, t1);

  TextStream stream(&tokenizer);
  int32_t position = static_cast<int32_t>(prompt.size());
  result.finish_reason = "length";
  for (int32_t step = 0; step < options.max_tokens; ++step) {
    absl::StatusOr<SampleResult> r = sampler->Sample(logits, history);
    if (!r.ok()) return r.status();
    const bool eog = tokenizer.IsEog(r->token) && !options.ignore_eos;
    GeneratedToken tok{r->token, eog ? "" : stream.Push(r->token), r->logprob};
    if (eog) {
      tok.text = stream.Flush();
      on_token(tok);
      ++result.completion_tokens;
      result.finish_reason = "eos";
      break;
    }
    ++result.completion_tokens;
    if (absl::Status s = history.Add(r->token); !s.ok()) return s;
    if (step + 1 == options.max_tokens) {
      tok.text += stream.Flush();
      on_token(tok);
      break;
    }
    on_token(tok);
    const int32_t t[1] = {r->token}, sl[1] = {*slot}, p[1] = {position}, row[1] = {0};
    if (absl::Status s = runner.Forward({t, sl, p, row}, **cache, logits); !s.ok()) return s;
    ++position;
  }
  result.decode_s = Seconds(t1, std::chrono::steady_clock::now());
  // The sequence's cache: the last sampled token is never written back.
  const int64_t cached = std::min<int64_t>(position, total);
  result.chai = chai;
  result.k_cache_bytes = cached * (*cache)->k_bytes_per_token(*slot);
  result.k_cache_bytes_full = cached * KvCache::KBytesPerToken(config, {}, (*cache)->kv_dtype());
  result.v_cache_bytes = cached * KvCache::VBytesPerToken(config, (*cache)->kv_dtype());
  return result;
}

}  // namespace chai::engine
