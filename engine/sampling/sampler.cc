#include "engine/sampling/sampler.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

struct Candidate {
  int32_t token;
  float logit;   // after penalties, before temperature
  float weight;  // exp((logit - max_logit) / temperature): unnormalised probability
};

// Rank order used everywhere: higher logit first, then lower id. A strict
// total order, so sorts and selections give one answer on every platform.
bool Ranks(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
}

// Scratch reused across calls on one thread so a decode step allocates
// nothing once warm (the engine thread samples every sequence in turn).
struct Workspace {
  std::vector<float> penalized;
  std::vector<Candidate> candidates;
  std::vector<Candidate> boundary;  // top-p's crossing bin
};

Workspace& ThreadWorkspace() {
  thread_local Workspace workspace;
  return workspace;
}

// Max of the raw logits, and log(sum(exp(l - max))) for the log-softmax.
struct LogSoftmaxStats {
  float max_logit;
  float log_sum;
};

// One pass to find the max and reject logits no distribution can come from.
absl::StatusOr<LogSoftmaxStats> ComputeLogSoftmaxStats(std::span<const float> logits) {
  float max_logit = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      return absl::InternalError(
          absl::StrCat("model produced a non-finite logit (", l, ") for token ", i));
    }
    max_logit = std::max(max_logit, l);
  }
  if (max_logit == -std::numeric_limits<float>::infinity()) {
    return absl::InternalError("every logit is -inf; no token can be sampled");
  }
  // Accumulate in double: 49152 float terms would lose ~4 digits otherwise.
  double sum = 0.0;
  for (float l : logits) sum += std::exp(l - max_logit);
  return LogSoftmaxStats{max_logit, static_cast<float>(std::log(sum))};
}

float LogProb(const LogSoftmaxStats& stats, float logit) {
  return (logit - stats.max_logit) - stats.log_sum;
}

// The n best tokens of the raw logits by (logit desc, id asc), as logprobs.
// Insertion into a small sorted buffer: n <= kMaxTopLogprobs and almost every
// token fails the first comparison, so this is one cheap O(V) scan.
std::vector<TokenLogprob> TopN(std::span<const float> logits, const LogSoftmaxStats& stats,
                               int32_t n) {
  std::vector<Candidate> best;
  if (n <= 0) return {};
  best.reserve(n + 1);
  for (size_t i = 0; i < logits.size(); ++i) {
    const Candidate c{static_cast<int32_t>(i), logits[i], 0.0f};
    if (static_cast<int32_t>(best.size()) == n && !Ranks(c, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), c, Ranks), c);
    if (static_cast<int32_t>(best.size()) > n) best.pop_back();
  }
  std::vector<TokenLogprob> out;
  out.reserve(best.size());
  for (const Candidate& c : best) out.push_back({c.token, LogProb(stats, c.logit)});
  return out;
}

// Lowest id among the maximal logits.
int32_t ArgMax(std::span<const float> logits) {
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

absl::Status CheckSize(std::span<const float> logits, int64_t vocab_size) {
  if (static_cast<int64_t>(logits.size()) != vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("logits have ", logits.size(),
                                                   " entries but the vocabulary has ", vocab_size));
  }
  return absl::OkStatus();
}

// Logits after penalties: the input itself when no penalty is on, otherwise a
// penalised copy in the workspace.
absl::StatusOr<std::span<const float>> Penalized(std::span<const float> logits,
                                                 const SamplingParams& params,
                                                 const PenaltyState& history, Workspace& ws) {
  if (!params.HasPenalties()) return logits;
  ws.penalized.assign(logits.begin(), logits.end());
  if (absl::Status s = ApplyPenalties(ws.penalized, params, history); !s.ok()) return s;
  return std::span<const float>(ws.penalized);
}

// Top-k up to this size uses the heap scan; beyond it nth_element wins.
constexpr size_t kHeapTopKMax = 512;

void FillAll(std::span<const float> logits, std::vector<Candidate>& cand) {
  cand.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    cand[i] = Candidate{static_cast<int32_t>(i), logits[i], 0.0f};
  }
}

// cand is in rank order: keeps cand[i] while the mass ranked above it is < target.
void KeepNucleusPrefix(double target, std::vector<Candidate>& cand) {
  double mass_above = 0.0;
  size_t i = 0;
  for (; i < cand.size() && mass_above < target; ++i) mass_above += cand[i].weight;
  cand.resize(i);
}

// Top-p over an unsorted (id-ordered) list without sorting it. Buckets tokens
// by log-weight (kBinsPerUnit bins per nat; monotone in rank) and sums each
// bin's mass in one pass. Every token in a bin above the one where the running
// mass crosses `target` is in the nucleus, every token below it is not; only
// the crossing bin is sorted to place the exact cut. The result keeps the
// upper bins in their original order followed by the crossing bin's survivors
// in rank order -- deterministic, independent of the library's sort.
void KeepNucleusByHistogram(double target, float max_logit, float inv_t,
                            std::vector<Candidate>& cand, std::vector<Candidate>& boundary) {
  constexpr int kBinsPerUnit = 8;
  constexpr int kBins = 48 * kBinsPerUnit;  // below e^-48 everything shares the last bin
  auto bin_of = [&](const Candidate& c) {
    const float depth = (max_logit - c.logit) * inv_t;  // >= 0, -log of the weight
    return depth >= static_cast<float>(kBins - 1) / kBinsPerUnit
               ? kBins - 1
               : static_cast<int>(depth * kBinsPerUnit);
  };
  std::array<double, kBins> mass{};
  for (const Candidate& c : cand) mass[bin_of(c)] += c.weight;
  int crossing = 0;
  double mass_above = 0.0;
  for (; crossing < kBins; ++crossing) {
    if (mass_above + mass[crossing] >= target) break;
    mass_above += mass[crossing];
  }
  if (crossing == kBins) return;  // rounding left target unreached: keep all
  boundary.clear();
  size_t out = 0;
  for (const Candidate& c : cand) {
    const int b = bin_of(c);
    if (b < crossing) {
      cand[out++] = c;
    } else if (b == crossing) {
      boundary.push_back(c);
    }
  }
  cand.resize(out);
  std::sort(boundary.begin(), boundary.end(), Ranks);
  for (const Candidate& c : boundary) {
    if (mass_above >= target) break;
    cand.push_back(c);
    mass_above += c.weight;
  }
}

// Fills ws.candidates with the tokens that survive temperature, top-k, top-p
// and min-p applied to `logits` (already penalised), with unnormalised
// weights; returns the weights' sum. The order is deterministic: rank order
// after top-k, otherwise id order (top-p appends its boundary bin in rank
// order).
absl::StatusOr<double> FilterCandidates(std::span<const float> logits, const SamplingParams& params,
                                        Workspace& ws) {
  std::vector<Candidate>& cand = ws.candidates;
  cand.clear();
  if (params.IsGreedy()) {
    const int32_t t = ArgMax(logits);
    cand.push_back({t, logits[t], 1.0f});
    return 1.0;
  }

  float max_logit = -std::numeric_limits<float>::infinity();
  for (float l : logits) max_logit = std::max(max_logit, l);
  if (!(max_logit > -std::numeric_limits<float>::infinity())) {
    return absl::InternalError("no token has a finite logit after penalties");
  }
  // Top-k: the ranking is the same before and after temperature (T > 0), so
  // select on raw logits. Small k: one scan keeping a heap of the k best (most
  // tokens cost one comparison); large k: nth_element, O(V). Either way only
  // the k survivors are sorted.
  const size_t vocab = logits.size();
  bool ranked = false;  // whether cand is in rank order (else in id order)
  if (params.top_k > 0 && static_cast<size_t>(params.top_k) < vocab) {
    const size_t k = params.top_k;
    if (k <= kHeapTopKMax) {
      cand.resize(k);
      for (size_t i = 0; i < k; ++i) cand[i] = Candidate{static_cast<int32_t>(i), logits[i], 0.0f};
      // Max-heap under Ranks: the front is the worst of the k kept so far.
      std::make_heap(cand.begin(), cand.end(), Ranks);
      for (size_t i = k; i < vocab; ++i) {
        const Candidate c{static_cast<int32_t>(i), logits[i], 0.0f};
        if (!Ranks(c, cand.front())) continue;
        std::pop_heap(cand.begin(), cand.end(), Ranks);
        cand.back() = c;
        std::push_heap(cand.begin(), cand.end(), Ranks);
      }
    } else {
      FillAll(logits, cand);
      std::nth_element(cand.begin(), cand.begin() + (k - 1), cand.end(), Ranks);
      cand.resize(k);
    }
    std::sort(cand.begin(), cand.end(), Ranks);
    ranked = true;
  } else {
    FillAll(logits, cand);
  }

  // Temperature. Subtracting the max before dividing keeps tiny temperatures
  // from overflowing: every exponent is <= 0 and the top token weighs exactly 1.
  const float inv_t = 1.0f / params.temperature;
  for (Candidate& c : cand) c.weight = std::exp((c.logit - max_logit) * inv_t);
  // Underflowed tokens can never be drawn; dropping them (order-preserving)
  // keeps the reported distribution free of zero entries.
  cand.erase(
      std::remove_if(cand.begin(), cand.end(), [](const Candidate& c) { return c.weight <= 0.0f; }),
      cand.end());
  double total = 0.0;
  for (const Candidate& c : cand) total += c.weight;

  // Min-p comes after top-p in the pipeline, but its threshold is relative to
  // the top token, which top-p always keeps, and renormalising does not change
  // ratios; both filters keep a prefix of the ranking, so the result is the
  // shorter prefix either way. Applying it first shrinks what top-p must scan.
  // Top-p below still measures mass against the pre-min-p total.
  if (params.min_p > 0.0f) {
    const float min_p = params.min_p;
    cand.erase(std::remove_if(cand.begin(), cand.end(),
                              [min_p](const Candidate& c) { return c.weight < min_p; }),
               cand.end());
  }

  // Top-p: keep token j iff the mass ranked strictly above it is < top_p (the
  // smallest prefix reaching top_p; HF's and vLLM's rule).
  if (params.top_p < 1.0f) {
    const double target = static_cast<double>(params.top_p) * total;
    if (ranked) {
      KeepNucleusPrefix(target, cand);
    } else {
      KeepNucleusByHistogram(target, max_logit, inv_t, cand, ws.boundary);
    }
  }

  double kept_total = 0.0;
  for (const Candidate& c : cand) kept_total += c.weight;
  return kept_total;
}

}  // namespace

absl::Status ApplyPenalties(std::span<float> logits, const SamplingParams& params,
                            const PenaltyState& history) {
  if (static_cast<int64_t>(logits.size()) != history.vocab_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("logits have ", logits.size(),
                     " entries but the penalty history's vocabulary has ", history.vocab_size()));
  }
  const float rep = params.repetition_penalty;
  for (const PenaltyState::Entry& e : history.entries()) {
    float& l = logits[e.token];
    if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
    if (e.output_count > 0) {
      l -= params.frequency_penalty * static_cast<float>(e.output_count) + params.presence_penalty;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenProb>> CandidateDistribution(std::span<const float> logits,
                                                             const SamplingParams& params,
                                                             const PenaltyState& history) {
  if (absl::Status s = CheckSize(logits, history.vocab_size()); !s.ok()) return s;
  if (absl::StatusOr<LogSoftmaxStats> stats = ComputeLogSoftmaxStats(logits); !stats.ok()) {
    return stats.status();
  }
  Workspace& ws = ThreadWorkspace();
  absl::StatusOr<std::span<const float>> penalized = Penalized(logits, params, history, ws);
  if (!penalized.ok()) return penalized.status();
  absl::StatusOr<double> total = FilterCandidates(*penalized, params, ws);
  if (!total.ok()) return total.status();
  std::vector<TokenProb> out;
  out.reserve(ws.candidates.size());
  for (const Candidate& c : ws.candidates) out.push_back({c.token, c.weight / *total});
  return out;
}

absl::StatusOr<Sampler> Sampler::Create(const SamplingParams& params, int64_t vocab_size) {
  if (absl::Status s = params.Validate(vocab_size); !s.ok()) return s;
  uint64_t seed;
  if (params.seed.has_value()) {
    seed = *params.seed;
  } else {
    std::random_device rd;  // 32 bits per call
    seed = (static_cast<uint64_t>(rd()) << 32) | rd();
  }
  return Sampler(params, vocab_size, seed);
}

double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

absl::StatusOr<SampleResult> Sampler::Sample(std::span<const float> logits,
                                             const PenaltyState& history) {
  if (absl::Status s = CheckSize(logits, vocab_size_); !s.ok()) return s;
  if (absl::Status s = CheckSize(logits, history.vocab_size()); !s.ok()) return s;
  absl::StatusOr<LogSoftmaxStats> stats = ComputeLogSoftmaxStats(logits);
  if (!stats.ok()) return stats.status();

  Workspace& ws = ThreadWorkspace();
  absl::StatusOr<std::span<const float>> penalized = Penalized(logits, params_, history, ws);
  if (!penalized.ok()) return penalized.status();
  absl::StatusOr<double> total = FilterCandidates(*penalized, params_, ws);
  if (!total.ok()) return total.status();

  const std::vector<Candidate>& cand = ws.candidates;
  int32_t token = cand.front().token;
  if (!params_.IsGreedy()) {
    // Inverse CDF over the candidate list (whose order is deterministic).
    // Every weight is > 0, so a token is picked with probability weight/total;
    // rounding can leave target >= the final sum, hence the last-token default.
    const double target = NextUniform() * *total;
    double cum = 0.0;
    token = cand.back().token;
    for (const Candidate& c : cand) {
      cum += c.weight;
      if (target < cum) {
        token = c.token;
        break;
      }
    }
  }

  SampleResult result;
  result.token = token;
  result.logprob = LogProb(*stats, logits[token]);
  result.top_logprobs = TopN(logits, *stats, params_.top_logprobs);
  return result;
}

}  // namespace chai::engine
