#include "engine/tokenizer/gguf_spec.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace chai::engine {
namespace {

absl::Status WithKey(std::string_view key, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("GGUF tokenizer key ", std::string(key), ": ",
                                             std::string(s.message())));
}

absl::Status ReadId(const GgufFile& g, const char* key, int32_t* out) {
  if (!g.Has(key)) return absl::OkStatus();
  absl::StatusOr<int64_t> v = g.GetInt(key);
  if (!v.ok()) return WithKey(key, v.status());
  // Some converters write -1 (as int32) or 0xFFFFFFFF (as uint32) for "none".
  if (*v == -1 || *v == std::numeric_limits<uint32_t>::max()) {
    *out = -1;
    return absl::OkStatus();
  }
  if (*v < 0 || *v > std::numeric_limits<int32_t>::max()) {
    return WithKey(key, absl::InvalidArgumentError(absl::StrCat("id ", *v, " out of range")));
  }
  *out = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

absl::Status ReadBool(const GgufFile& g, const char* key, bool* out) {
  if (!g.Has(key)) return absl::OkStatus();
  absl::StatusOr<bool> v = g.GetBool(key);
  if (!v.ok()) return WithKey(key, v.status());
  *out = *v;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TokenizerSpec> SpecFromGguf(const GgufFile& g) {
  TokenizerSpec spec;
  auto model = g.GetString("tokenizer.ggml.model");
  if (!model.ok()) return WithKey("tokenizer.ggml.model", model.status());
  const std::string model_name(model->data(), model->size());
  if (model_name == "gpt2") {
    spec.model = TokenizerModel::kByteLevelBpe;
    spec.add_bos = false;
    spec.add_space_prefix = false;
  } else if (model_name == "llama") {
    spec.model = TokenizerModel::kSentencePieceBpe;
    spec.add_bos = true;  // llama.cpp's default for SentencePiece vocabularies
    spec.add_space_prefix = true;
  } else {
    return absl::UnimplementedError(
        absl::StrCat("GGUF tokenizer model '", model_name, "' is not supported (gpt2, llama)"));
  }

  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return WithKey("tokenizer.ggml.tokens", tokens.status());
  if (tokens->size() > TokenizerLimits::kMaxVocab) {
    return WithKey("tokenizer.ggml.tokens", absl::InvalidArgumentError("vocabulary too large"));
  }
  spec.tokens.reserve(tokens->size());
  for (const auto& t : *tokens) spec.tokens.emplace_back(t.data(), t.size());

  if (g.Has("tokenizer.ggml.token_type")) {
    absl::StatusOr<std::vector<int64_t>> types = g.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return WithKey("tokenizer.ggml.token_type", types.status());
    if (types->size() != spec.tokens.size()) {
      return WithKey("tokenizer.ggml.token_type",
                     absl::InvalidArgumentError(absl::StrCat(types->size(), " types for ",
                                                             spec.tokens.size(), " tokens")));
    }
    spec.token_types.reserve(types->size());
    for (int64_t t : *types) {
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        return WithKey("tokenizer.ggml.token_type",
                       absl::InvalidArgumentError(absl::StrCat("unknown token type ", t)));
      }
      spec.token_types.push_back(static_cast<TokenType>(t));
    }
  }
  if (g.Has("tokenizer.ggml.scores")) {
    absl::StatusOr<std::vector<float>> scores = g.GetFloatArray("tokenizer.ggml.scores");
    if (!scores.ok()) return WithKey("tokenizer.ggml.scores", scores.status());
    spec.scores = *std::move(scores);
  }
  if (g.Has("tokenizer.ggml.merges")) {
    auto merges = g.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return WithKey("tokenizer.ggml.merges", merges.status());
    if (merges->size() > TokenizerLimits::kMaxMerges) {
      return WithKey("tokenizer.ggml.merges", absl::InvalidArgumentError("too many merges"));
    }
    spec.merges.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const std::string_view m((*merges)[i].data(), (*merges)[i].size());
      // Tokens never contain a raw space (byte-level maps it to 'Ġ',
      // SentencePiece to '▁'); searching from 1 tolerates a leading one.
      const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
      if (space == std::string_view::npos) {
        return WithKey("tokenizer.ggml.merges",
                       absl::InvalidArgumentError(absl::StrCat("merge ", i, " has no separator")));
      }
      spec.merges.emplace_back(std::string(m.substr(0, space)), std::string(m.substr(space + 1)));
    }
  }
  if (g.Has("tokenizer.ggml.pre")) {
    auto pre = g.GetString("tokenizer.ggml.pre");
    if (!pre.ok()) return WithKey("tokenizer.ggml.pre", pre.status());
    spec.pre_tokenizer.assign(pre->data(), pre->size());
  }
  // llama.cpp emits a whole pre-token found in the vocabulary for Llama-3.
  spec.ignore_merges = spec.model == TokenizerModel::kByteLevelBpe &&
                       (spec.pre_tokenizer == "llama-bpe" || spec.pre_tokenizer == "llama3");

  for (auto [key, out] :
       {std::pair<const char*, int32_t*>{"tokenizer.ggml.bos_token_id", &spec.bos_id},
        {"tokenizer.ggml.eos_token_id", &spec.eos_id},
        {"tokenizer.ggml.unknown_token_id", &spec.unk_id},
        {"tokenizer.ggml.padding_token_id", &spec.pad_id}}) {
    if (absl::Status s = ReadId(g, key, out); !s.ok()) return s;
  }
  for (auto [key, out] :
       {std::pair<const char*, bool*>{"tokenizer.ggml.add_bos_token", &spec.add_bos},
        {"tokenizer.ggml.add_eos_token", &spec.add_eos},
        {"tokenizer.ggml.add_space_prefix", &spec.add_space_prefix}}) {
    if (absl::Status s = ReadBool(g, key, out); !s.ok()) return s;
  }
  if (spec.add_bos && spec.bos_id < 0) spec.add_bos = false;  // nothing to add
  if (g.Has("tokenizer.chat_template")) {
    auto tmpl = g.GetString("tokenizer.chat_template");
    if (!tmpl.ok()) return WithKey("tokenizer.chat_template", tmpl.status());
    spec.chat_template.assign(tmpl->data(), tmpl->size());
  }
  return spec;
}

}  // namespace chai::engine
