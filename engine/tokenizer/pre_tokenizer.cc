#include "engine/tokenizer/pre_tokenizer.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/unicode.h"

namespace chai::engine {
namespace {

// Text decoded once into code points with their byte offsets; offsets has
// one extra entry (text.size()) so piece [i, j) is bytes [offsets[i], offsets[j]).
struct CodePoints {
  std::vector<uint32_t> cps;
  std::vector<uint8_t> flags;
  std::vector<size_t> offsets;

  explicit CodePoints(std::string_view text) {
    cps.reserve(text.size());
    flags.reserve(text.size());
    offsets.reserve(text.size() + 1);
    size_t pos = 0;
    while (pos < text.size()) {
      size_t len = 0;
      const uint32_t cp = DecodeUtf8(text, pos, &len);
      cps.push_back(cp);
      flags.push_back(CodePointFlags(cp));
      offsets.push_back(pos);
      pos += len;
    }
    offsets.push_back(text.size());
  }
  size_t size() const { return cps.size(); }
  bool L(size_t i) const { return flags[i] & kCpLetter; }
  bool N(size_t i) const { return flags[i] & kCpNumber; }
  bool S(size_t i) const { return flags[i] & kCpSpace; }
  // [^\s\p{L}\p{N}]
  bool Other(size_t i) const { return flags[i] == 0; }
  bool Newline(size_t i) const { return cps[i] == '\r' || cps[i] == '\n'; }
};

uint32_t AsciiLower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length (in code points) of a contraction at i, or 0.
// Matches 's 't 're 've 'm 'll 'd, ASCII case-insensitively when `icase`.
size_t MatchContraction(const CodePoints& c, size_t i, size_t end, bool icase) {
  if (c.cps[i] != '\'' || i + 1 >= end) return 0;
  auto at = [&](size_t k) { return icase ? AsciiLower(c.cps[k]) : c.cps[k]; };
  const uint32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < end) {
    const uint32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// \s+(?!\S) then \s+ at i (REQUIRES: c.S(i)); returns the end of the match.
size_t MatchTrailingSpace(const CodePoints& c, size_t i, size_t end) {
  size_t k = i;
  while (k < end && c.S(k)) ++k;
  // Followed by a non-space: give the last space to the next piece (so
  // " word" stays together), unless that would leave nothing (then \s+).
  if (k < end && k - i >= 2) return k - 1;
  return k;
}

// One match of the GPT-2 regex at i within [i, end); returns its end (> i).
size_t MatchGpt2(const CodePoints& c, size_t i, size_t end) {
  if (size_t n = MatchContraction(c, i, end, /*icase=*/false)) return i + n;
  size_t j = i;
  if (c.cps[j] == ' ' && j + 1 < end) ++j;
  if (c.L(j)) {
    while (j < end && c.L(j)) ++j;
    return j;
  }
  if (c.N(j)) {
    while (j < end && c.N(j)) ++j;
    return j;
  }
  if (c.Other(j)) {
    while (j < end && c.Other(j)) ++j;
    return j;
  }
  // Only whitespace is left: c.S(i) holds here (a lone ' ' before a space or
  // the end, or another whitespace character).
  return MatchTrailingSpace(c, i, end);
}

// One match of the Llama-3 regex at i within [i, end); returns its end (> i).
size_t MatchLlama3(const CodePoints& c, size_t i, size_t end) {
  if (size_t n = MatchContraction(c, i, end, /*icase=*/true)) return i + n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  {
    size_t j = i;
    if (!c.L(j) && !c.N(j) && !c.Newline(j) && j + 1 < end && c.L(j + 1)) ++j;
    if (c.L(j)) {
      while (j < end && c.L(j)) ++j;
      return j;
    }
  }
  // \p{N}{1,3}
  if (c.N(i)) {
    size_t j = i;
    while (j < end && j - i < 3 && c.N(j)) ++j;
    return j;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  {
    size_t j = i;
    if (c.cps[j] == ' ' && j + 1 < end) ++j;
    if (c.Other(j)) {
      while (j < end && c.Other(j)) ++j;
      while (j < end && c.Newline(j)) ++j;
      return j;
    }
  }
  // Whitespace: \s*[\r\n]+ ends after the run's last newline, if it has one.
  size_t k = i;
  size_t last_newline_end = i;
  while (k < end && c.S(k)) {
    if (c.Newline(k)) last_newline_end = k + 1;
    ++k;
  }
  if (last_newline_end > i) return last_newline_end;
  return MatchTrailingSpace(c, i, end);
}

template <typename Matcher>
void SplitRange(const CodePoints& c, std::string_view text, size_t begin, size_t end, Matcher match,
                std::vector<std::string_view>* pieces) {
  size_t i = begin;
  while (i < end) {
    const size_t j = match(c, i, end);
    pieces->push_back(text.substr(c.offsets[i], c.offsets[j] - c.offsets[i]));
    i = j;
  }
}

}  // namespace

absl::StatusOr<PreTokenizerKind> PreTokenizerFromName(std::string_view name) {
  if (name.empty() || name == "default" || name == "gpt2" || name == "gpt-2") {
    return PreTokenizerKind::kGpt2;
  }
  // llama.cpp groups these: digits split one by one, then the GPT-2 regex.
  if (name == "smollm" || name == "starcoder" || name == "refact" || name == "codeshell") {
    return PreTokenizerKind::kSmollm;
  }
  if (name == "llama-bpe" || name == "llama3" || name == "llama-v3") {
    return PreTokenizerKind::kLlama3;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported byte-level BPE pre-tokenizer '", std::string(name),
                   "' (supported: default/gpt2, smollm/starcoder/refact/codeshell, llama-bpe)"));
}

void PreTokenize(PreTokenizerKind kind, std::string_view text,
                 std::vector<std::string_view>* pieces) {
  if (text.empty()) return;
  const CodePoints c(text);
  switch (kind) {
    case PreTokenizerKind::kGpt2:
      SplitRange(c, text, 0, c.size(), MatchGpt2, pieces);
      return;
    case PreTokenizerKind::kLlama3:
      SplitRange(c, text, 0, c.size(), MatchLlama3, pieces);
      return;
    case PreTokenizerKind::kSmollm: {
      size_t start = 0;
      for (size_t i = 0; i < c.size(); ++i) {
        if (!c.N(i)) continue;
        SplitRange(c, text, start, i, MatchGpt2, pieces);
        pieces->push_back(text.substr(c.offsets[i], c.offsets[i + 1] - c.offsets[i]));
        start = i + 1;
      }
      SplitRange(c, text, start, c.size(), MatchGpt2, pieces);
      return;
    }
  }
}

}  // namespace chai::engine
