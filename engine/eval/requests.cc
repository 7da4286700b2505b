#include "engine/eval/requests.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace chai::engine::eval {
namespace {

// What the harness's tok_encode gives: no special tokens, except BOS when
// the model's metadata asks for it.
std::vector<int32_t> Encode(const Tokenizer& tokenizer, absl::string_view text) {
  std::vector<int32_t> ids;
  if (tokenizer.add_bos() && tokenizer.bos_id() >= 0) ids.push_back(tokenizer.bos_id());
  std::vector<int32_t> body = tokenizer.Encode(std::string_view(text.data(), text.size()),
                                               /*add_special=*/false, /*parse_special=*/false);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

int32_t PrefixToken(const Tokenizer& tokenizer) {
  return tokenizer.bos_id() >= 0 ? tokenizer.bos_id() : tokenizer.eos_id();
}

}  // namespace

EncodedPair EncodePair(const Tokenizer& tokenizer, absl::string_view context,
                       absl::string_view continuation) {
  EncodedPair out;
  if (context.empty()) {
    out.context = {PrefixToken(tokenizer)};
    std::vector<int32_t> body =
        tokenizer.Encode(std::string_view(continuation.data(), continuation.size()),
                         /*add_special=*/false, /*parse_special=*/false);
    out.continuation = std::move(body);
    return out;
  }
  const absl::string_view stripped = absl::StripTrailingAsciiWhitespace(context);
  std::string ctx(stripped);
  std::string cont = absl::StrCat(context.substr(stripped.size()), continuation);
  std::vector<int32_t> whole = Encode(tokenizer, ctx + cont);
  out.context = Encode(tokenizer, ctx);
  if (out.context.empty()) out.context = {PrefixToken(tokenizer)};
  const size_t n = std::min(out.context.size(), whole.size());
  out.continuation.assign(whole.begin() + n, whole.end());
  return out;
}

absl::StatusOr<LoglikelihoodRequest> EncodeMcItem(const Tokenizer& tokenizer, const McItem& item) {
  LoglikelihoodRequest req;
  for (size_t c = 0; c < item.choices.size(); ++c) {
    EncodedPair pair = EncodePair(tokenizer, item.context, absl::StrCat(" ", item.choices[c]));
    if (pair.continuation.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("choice ", c, " encodes to no tokens after its context"));
    }
    if (c == 0) req.context = std::move(pair.context);
    req.continuations.push_back(std::move(pair.continuation));
  }
  if (req.continuations.empty()) return absl::InvalidArgumentError("item has no choices");
  return req;
}

std::vector<int32_t> TokenizeForPerplexity(const Tokenizer& tokenizer, absl::string_view text) {
  return Encode(tokenizer, text);
}

absl::StatusOr<std::vector<LoglikelihoodRequest>> PerplexityWindows(std::span<const int32_t> tokens,
                                                                    int32_t n_ctx, int32_t bos_id,
                                                                    bool add_bos,
                                                                    int64_t max_windows) {
  if (n_ctx < 3) return absl::InvalidArgumentError("n_ctx must be at least 3");
  if (add_bos && bos_id < 0) return absl::InvalidArgumentError("add_bos without a BOS token");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 2 * static_cast<int64_t>(n_ctx)) {
    return absl::InvalidArgumentError(absl::StrCat("the text has ", n, " tokens; perplexity with ",
                                                   "n_ctx ", n_ctx, " needs at least ", 2 * n_ctx));
  }
  int64_t n_chunk = n / n_ctx;
  if (max_windows > 0) n_chunk = std::min(n_chunk, max_windows);
  const int32_t first = n_ctx / 2;
  std::vector<LoglikelihoodRequest> out(n_chunk);
  for (int64_t w = 0; w < n_chunk; ++w) {
    const int32_t* start = tokens.data() + w * n_ctx;
    out[w].context.assign(start, start + first + 1);
    if (add_bos) out[w].context[0] = bos_id;
    out[w].continuations.emplace_back(start + first + 1, start + n_ctx);
  }
  return out;
}

}  // namespace chai::engine::eval
