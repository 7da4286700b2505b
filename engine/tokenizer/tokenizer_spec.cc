#include "engine/tokenizer/tokenizer_spec.h"

#include <cmath>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/tokenizer/pre_tokenizer.h"

namespace chai::engine {
namespace {

absl::Status CheckId(const char* what, int32_t id, size_t vocab) {
  if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= vocab)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", what, " id ", id, " outside vocabulary of size ", vocab));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TokenizerSpec::Validate() const {
  const size_t n = tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer: empty vocabulary");
  if (n > TokenizerLimits::kMaxVocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: vocabulary of ", n, " tokens exceeds the cap of ", TokenizerLimits::kMaxVocab));
  }
  if (!token_types.empty() && token_types.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", token_types.size(), " token types for ", n, " tokens"));
  }
  if (!scores.empty() && scores.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokenizer: ", scores.size(), " scores for ", n, " tokens"));
  }
  if (merges.size() > TokenizerLimits::kMaxMerges) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tokenizer: ", merges.size(), " merges exceed the cap of ", TokenizerLimits::kMaxMerges));
  }
  if (chat_template.size() > TokenizerLimits::kMaxChatTemplateBytes) {
    return absl::InvalidArgumentError("tokenizer: chat template too large");
  }
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i].size() > TokenizerLimits::kMaxTokenBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: token ", i, " is ", tokens[i].size(), " bytes long"));
    }
  }
  for (size_t i = 0; i < token_types.size(); ++i) {
    const auto t = static_cast<int32_t>(token_types[i]);
    if (t < 0 || t > static_cast<int32_t>(TokenType::kByte)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer: token ", i, " has unknown type ", t));
    }
  }
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer: token ", i, " has NaN score"));
    }
  }
  for (auto [what, id] : {std::pair<const char*, int32_t>{"bos", bos_id},
                          {"eos", eos_id},
                          {"unk", unk_id},
                          {"pad", pad_id}}) {
    if (absl::Status s = CheckId(what, id, n); !s.ok()) return s;
  }
  if (add_bos && bos_id < 0) return absl::InvalidArgumentError("tokenizer: add_bos without bos id");
  if (add_eos && eos_id < 0) return absl::InvalidArgumentError("tokenizer: add_eos without eos id");
  if (model == TokenizerModel::kByteLevelBpe) {
    if (absl::StatusOr<PreTokenizerKind> k = PreTokenizerFromName(pre_tokenizer); !k.ok()) {
      return k.status();
    }
    if (merges.empty() && n > 256) {
      return absl::InvalidArgumentError("tokenizer: byte-level BPE vocabulary without merges");
    }
  }
  if (!merges.empty()) {
    absl::flat_hash_set<absl::string_view> vocab;
    vocab.reserve(n);
    for (const std::string& t : tokens) vocab.insert(t);
    std::string joined;
    for (size_t i = 0; i < merges.size(); ++i) {
      const auto& [left, right] = merges[i];
      if (!vocab.contains(left) || !vocab.contains(right)) {
        return absl::InvalidArgumentError(absl::StrCat("tokenizer: merge ", i, " ('", left, "' '",
                                                       right, "') references an unknown token"));
      }
      joined.assign(left).append(right);
      if (!vocab.contains(joined)) {
        return absl::InvalidArgumentError(
            absl::StrCat("tokenizer: merge ", i, " ('", left, "' '", right,
                         "') produces a token not in the vocabulary"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace chai::engine
