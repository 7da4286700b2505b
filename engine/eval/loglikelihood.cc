#include "engine/eval/loglikelihood.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace chai::engine::eval {
namespace {

// CHAI clusters from a sequence's first 5 positions (the paper's window).
constexpr int64_t kChaiWindow = 5;

// A request being fed. Phase 0 is context + continuation 0 from position 0;
// phase c > 0 is continuation c from position len(context).
struct Active {
  int64_t req = 0;
  SeqSlots seq;
  int32_t phase = 0;
  int64_t fed = 0;  // tokens of the current phase already fed
};

int64_t Len(const std::vector<int32_t>& v) { return static_cast<int64_t>(v.size()); }

int64_t PhaseLen(const LoglikelihoodRequest& r, int32_t phase) {
  return phase == 0 ? Len(r.context) + Len(r.continuations[0]) : Len(r.continuations[phase]);
}

int32_t PhaseToken(const LoglikelihoodRequest& r, int32_t phase, int64_t i) {
  if (phase > 0) return r.continuations[phase][i];
  return i < Len(r.context) ? r.context[i] : r.continuations[0][i - Len(r.context)];
}

int32_t PhasePosition(const LoglikelihoodRequest& r, int32_t phase, int64_t i) {
  return static_cast<int32_t>(phase == 0 ? i : Len(r.context) + i);
}

// Whether index i of a phase predicts a scored token (needs a logit row).
bool NeedsLogits(const LoglikelihoodRequest& r, int32_t phase, int64_t i) {
  if (phase > 0) return i < Len(r.continuations[phase]) - 1;
  return i >= Len(r.context) - 1 && i < PhaseLen(r, 0) - 1;
}

struct RowUse {
  int64_t req;
  int32_t phase;
  int64_t i;
};

absl::Status ValidateRequests(std::span<const LoglikelihoodRequest> requests, int64_t vocab,
                              int64_t max_seq_len) {
  for (size_t q = 0; q < requests.size(); ++q) {
    const LoglikelihoodRequest& r = requests[q];
    if (r.context.empty())
      return absl::InvalidArgumentError(absl::StrCat("request ", q, ": empty context"));
    if (r.continuations.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("request ", q, ": no continuations"));
    }
    int64_t longest = 0;
    auto check = [&](const std::vector<int32_t>& toks) -> absl::Status {
      for (int32_t t : toks) {
        if (t < 0 || t >= vocab) {
          return absl::InvalidArgumentError(
              absl::StrCat("request ", q, ": token id ", t, " outside the vocabulary"));
        }
      }
      return absl::OkStatus();
    };
    if (absl::Status s = check(r.context); !s.ok()) return s;
    for (const std::vector<int32_t>& c : r.continuations) {
      if (c.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("request ", q, ": empty continuation"));
      }
      if (absl::Status s = check(c); !s.ok()) return s;
      longest = std::max(longest, Len(c));
    }
    if (Len(r.context) + longest > max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("request ", q, " needs ", Len(r.context) + longest,
                       " positions, more than the maximum of ", max_seq_len));
    }
  }
  return absl::OkStatus();
}

void InitScores(std::span<const LoglikelihoodRequest> requests, bool keep_tokens,
                LoglikelihoodScores* s) {
  s->sums.resize(requests.size());
  if (keep_tokens) s->token_logprobs.resize(requests.size());
  for (size_t q = 0; q < requests.size(); ++q) {
    s->sums[q].assign(requests[q].continuations.size(), 0.0);
    if (keep_tokens) {
      for (const std::vector<int32_t>& c : requests[q].continuations) {
        s->token_logprobs[q].emplace_back(c.size(), 0.0);
      }
    }
  }
}

// Adds the log-probabilities one logit row gives to `scores`.
void ScoreRow(const LoglikelihoodRequest& r, const RowUse& use, std::span<const float> logits,
              LoglikelihoodScores* scores) {
  const LogSoftmaxNorm norm = LogSoftmaxNorm::Of(logits);
  auto add = [&](size_t c, size_t j) {
    const double lp = norm.LogProb(logits[r.continuations[c][j]]);
    scores->sums[use.req][c] += lp;
    if (!scores->token_logprobs.empty()) scores->token_logprobs[use.req][c][j] = lp;
  };
  if (use.phase == 0 && use.i == Len(r.context) - 1) {
    // The context's last row predicts every continuation's first token.
    for (size_t c = 0; c < r.continuations.size(); ++c) add(c, 0);
  } else if (use.phase == 0) {
    add(0, use.i - Len(r.context) + 1);
  } else {
    add(use.phase, use.i + 1);
  }
}

}  // namespace

absl::StatusOr<LoglikelihoodResult> ScoreLoglikelihoods(
    EvalEngine& engine, std::span<const LoglikelihoodRequest> requests,
    const LoglikelihoodOptions& options, const ProgressFn& progress) {
  const EvalEngineOptions& eo = engine.options();
  if (absl::Status s = ValidateRequests(requests, engine.config().vocab_size, eo.max_seq_len);
      !s.ok()) {
    return s;
  }
  LoglikelihoodResult result;
  InitScores(requests, options.keep_token_logprobs, &result.plain);
  if (engine.has_chai()) InitScores(requests, options.keep_token_logprobs, &result.chai);

  const int64_t budget = eo.max_batch_tokens;
  const int64_t total = static_cast<int64_t>(requests.size());
  std::vector<Active> active;
  int64_t next = 0, done = 0;
  std::vector<int32_t> tokens, positions, rows;
  std::vector<SeqSlots> seqs;
  std::vector<RowUse> uses;
  std::vector<int64_t> fed_now;  // per active entry, tokens fed this step

  // On an error the engine stays usable: every claimed slot goes back.
  auto release_all = [&] {
    for (const Active& a : active) engine.RemoveSequence(a.seq);
    active.clear();
  };
  auto feed = [&](size_t a, int64_t n) {
    const Active& act = active[a];
    const LoglikelihoodRequest& r = requests[act.req];
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = act.fed + k;
      if (NeedsLogits(r, act.phase, i)) {
        rows.push_back(static_cast<int32_t>(tokens.size()));
        uses.push_back({act.req, act.phase, i});
      }
      tokens.push_back(PhaseToken(r, act.phase, i));
      positions.push_back(PhasePosition(r, act.phase, i));
      seqs.push_back(act.seq);
    }
    fed_now[a] = n;
  };

  while (done < total) {
    tokens.clear();
    positions.clear();
    rows.clear();
    seqs.clear();
    uses.clear();
    fed_now.assign(active.size(), 0);
    // Requests already in flight first, then new ones while room remains.
    for (size_t a = 0; a < active.size(); ++a) {
      const int64_t room = budget - static_cast<int64_t>(tokens.size());
      if (room <= 0) break;
      const int64_t left = PhaseLen(requests[active[a].req], active[a].phase) - active[a].fed;
      feed(a, std::min(left, room));
    }
    while (next < total) {
      const LoglikelihoodRequest& r = requests[next];
      const int64_t room = budget - static_cast<int64_t>(tokens.size());
      const bool chai = engine.has_chai() && Len(r.context) >= kChaiWindow;
      // A CHAI sequence's first piece must hold its whole clustering window.
      if (room < (chai ? kChaiWindow : 1)) break;
      int64_t longest = 0;
      for (const std::vector<int32_t>& c : r.continuations) longest = std::max(longest, Len(c));
      absl::StatusOr<SeqSlots> seq = engine.AddSequence(Len(r.context) + longest, chai);
      if (!seq.ok()) {
        if (seq.status().code() != absl::StatusCode::kResourceExhausted || active.empty()) {
          release_all();
          return absl::Status(seq.status().code(),
                              absl::StrCat("request ", next, " (", Len(r.context) + longest,
                                           " positions): ", seq.status().message()));
        }
        break;
      }
      active.push_back({next, *seq, 0, 0});
      fed_now.push_back(0);
      feed(active.size() - 1, std::min(PhaseLen(r, 0), room));
      ++next;
    }

    if (absl::Status s = engine.Step({tokens, positions, seqs, rows}); !s.ok()) {
      release_all();
      return s;
    }
    result.tokens_fed += static_cast<int64_t>(tokens.size());
    for (size_t k = 0; k < uses.size(); ++k) {
      const LoglikelihoodRequest& r = requests[uses[k].req];
      const int32_t row = static_cast<int32_t>(k);
      ScoreRow(r, uses[k], engine.plain_logits(row), &result.plain);
      if (engine.has_chai()) {
        ScoreRow(r, uses[k], engine.chai_logits(row), &result.chai);
        result.kl.Add(engine.plain_logits(row), engine.chai_logits(row));
      }
    }
    // Advance phases; retire finished requests, keeping admission order.
    size_t keep = 0;
    for (size_t a = 0; a < active.size(); ++a) {
      Active& act = active[a];
      const LoglikelihoodRequest& r = requests[act.req];
      act.fed += fed_now[a];
      if (act.fed == PhaseLen(r, act.phase)) {
        ++act.phase;
        act.fed = 0;
      }
      if (act.phase == static_cast<int32_t>(r.continuations.size())) {
        engine.RemoveSequence(act.seq);
        ++done;
        continue;
      }
      active[keep++] = act;
    }
    active.resize(keep);
    if (progress) progress(done, total, result.tokens_fed);
  }
  return result;
}

}  // namespace chai::engine::eval
