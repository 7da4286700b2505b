#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tokenizer/unicode.h"

namespace chai::engine {
namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581 '▁'

// End-of-turn markers of the common chat formats, besides the model's EOS.
constexpr std::string_view kEogTexts[] = {"<|im_end|>",    "<|eot_id|>",      "<|eom_id|>",
                                          "<|endoftext|>", "<|end_of_text|>", "</s>",
                                          "<end_of_turn>", "<|end|>"};

// "<0x0A>" -> 0x0A; -1 if `text` is not a byte-fallback token.
int ParseByteToken(std::string_view text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return -1;
  int v = 0;
  for (char ch : text.substr(3, 2)) {
    v <<= 4;
    if (ch >= '0' && ch <= '9')
      v |= ch - '0';
    else if (ch >= 'A' && ch <= 'F')
      v |= ch - 'A' + 10;
    else if (ch >= 'a' && ch <= 'f')
      v |= ch - 'a' + 10;
    else
      return -1;
  }
  return v;
}

// Debian's Abseil has its own string_view type: hash lookups need one.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsMatchedInText(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined;
}

// Raw bytes of a byte-level vocabulary entry: map each code point back
// through the GPT-2 alphabet; an entry outside the alphabet is kept as UTF-8
// (as Hugging Face's ByteLevel decoder does).
std::string ByteLevelTokenBytes(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    const uint32_t cp = DecodeUtf8(text, pos, &len);
    const int b = cp == kInvalidCodePoint ? -1 : UnicodeToByte(cp);
    if (b < 0) return std::string(text);
    out.push_back(static_cast<char>(b));
    pos += len;
  }
  return out;
}

std::string SpmTokenBytes(std::string_view text) {
  std::string out;
  size_t pos = 0;
  while (pos < text.size()) {
    if (text.substr(pos).starts_with(kSpmSpace)) {
      out.push_back(' ');
      pos += kSpmSpace.size();
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(const TokenizerSpec& spec) {
  if (absl::Status s = spec.Validate(); !s.ok()) return s;
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  if (absl::Status s = tok->Init(spec); !s.ok()) return s;
  return tok;
}

absl::Status Tokenizer::Init(const TokenizerSpec& spec) {
  model_ = spec.model;
  if (model_ == TokenizerModel::kByteLevelBpe) {
    absl::StatusOr<PreTokenizerKind> kind = PreTokenizerFromName(spec.pre_tokenizer);
    if (!kind.ok()) return kind.status();
    pre_ = *kind;
  }
  tokens_ = spec.tokens;
  const size_t n = tokens_.size();
  bos_id_ = spec.bos_id;
  eos_id_ = spec.eos_id;
  unk_id_ = spec.unk_id;
  pad_id_ = spec.pad_id;
  add_bos_ = spec.add_bos;
  add_eos_ = spec.add_eos;
  add_space_prefix_ = spec.add_space_prefix;
  ignore_merges_ = spec.ignore_merges;

  types_ = spec.token_types;
  if (types_.empty()) {
    // No type information: treat the declared special ids as control tokens
    // and, for SentencePiece, <0xXX> entries as byte fallback.
    types_.assign(n, TokenType::kNormal);
    for (int32_t id : {bos_id_, eos_id_}) {
      if (id >= 0) types_[id] = TokenType::kControl;
    }
    if (unk_id_ >= 0) types_[unk_id_] = TokenType::kUnknown;
    if (model_ == TokenizerModel::kSentencePieceBpe) {
      for (size_t i = 0; i < n; ++i) {
        if (ParseByteToken(tokens_[i]) >= 0) types_[i] = TokenType::kByte;
      }
    }
  }

  vocab_.reserve(n);
  for (size_t i = 0; i < n; ++i) vocab_.try_emplace(tokens_[i], static_cast<int32_t>(i));

  token_bytes_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = types_[i];
    if (t == TokenType::kControl || t == TokenType::kUnknown) {
      token_bytes_[i] = tokens_[i];
    } else if (model_ == TokenizerModel::kByteLevelBpe) {
      token_bytes_[i] = t == TokenType::kUserDefined ? tokens_[i] : ByteLevelTokenBytes(tokens_[i]);
    } else if (const int b = ParseByteToken(tokens_[i]); t == TokenType::kByte && b >= 0) {
      token_bytes_[i] = std::string(1, static_cast<char>(b));
    } else {
      token_bytes_[i] = SpmTokenBytes(tokens_[i]);
    }
  }

  byte_ids_.fill(-1);
  for (int b = 0; b < 256; ++b) {
    std::string key;
    if (model_ == TokenizerModel::kByteLevelBpe) {
      AppendUtf8(ByteToUnicode(static_cast<uint8_t>(b)), &key);
    } else {
      key = absl::StrFormat("<0x%02X>", b);
    }
    if (auto it = vocab_.find(key); it != vocab_.end()) byte_ids_[b] = it->second;
  }

  if (!spec.merges.empty()) {
    std::string joined;
    for (size_t i = 0; i < spec.merges.size(); ++i) {
      const auto& [l, r] = spec.merges[i];
      joined.assign(l).append(r);
      // Validate() checked that all three are in the vocabulary.
      merger_.AddMerge(vocab_.at(l), vocab_.at(r), static_cast<int32_t>(i), vocab_.at(joined));
    }
  } else if (model_ == TokenizerModel::kSentencePieceBpe) {
    // SentencePiece merges the adjacent pair whose concatenation is the
    // highest-scoring vocabulary entry: rank entries by score (descending,
    // then id) and register every split of each entry into two entries.
    std::vector<int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    auto score = [&](int32_t id) {
      return spec.scores.empty() ? -static_cast<float>(id) : spec.scores[id];
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return score(a) > score(b); });
    for (size_t rank = 0; rank < n; ++rank) {
      const int32_t id = order[rank];
      if (types_[id] != TokenType::kNormal && types_[id] != TokenType::kUserDefined &&
          types_[id] != TokenType::kUndefined) {
        continue;
      }
      const std::string_view text = tokens_[id];
      size_t pos = 0;
      while (pos < text.size()) {
        size_t len = 0;
        DecodeUtf8(text, pos, &len);
        pos += len;
        if (pos >= text.size()) break;
        auto l = vocab_.find(Av(text.substr(0, pos)));
        auto r = vocab_.find(Av(text.substr(pos)));
        if (l != vocab_.end() && r != vocab_.end()) {
          merger_.AddMerge(l->second, r->second, static_cast<int32_t>(rank), id);
        }
      }
    }
  }

  for (size_t i = 0; i < n; ++i) {
    if (!IsMatchedInText(types_[i]) || tokens_[i].empty()) continue;
    specials_by_first_byte_[static_cast<uint8_t>(tokens_[i][0])].push_back(
        Special{tokens_[i], static_cast<int32_t>(i), types_[i] != TokenType::kUserDefined});
  }
  for (auto& bucket : specials_by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(), [](const Special& a, const Special& b) {
      return a.text.size() > b.text.size();
    });
  }

  if (eos_id_ >= 0) eog_ids_.insert(eos_id_);
  for (std::string_view text : kEogTexts) {
    if (auto it = vocab_.find(Av(text)); it != vocab_.end()) eog_ids_.insert(it->second);
  }

  auto has_token = [this](std::string_view text) { return vocab_.contains(Av(text)); };
  absl::StatusOr<std::unique_ptr<ChatTemplate>> tmpl =
      ChatTemplate::Detect(spec.chat_template, has_token, bos_id_ >= 0 ? tokens_[bos_id_] : "",
                           eos_id_ >= 0 ? tokens_[eos_id_] : "");
  if (tmpl.ok()) chat_template_ = *std::move(tmpl);
  return absl::OkStatus();
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && add_bos_) out.push_back(bos_id_);
  size_t fragment_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const Special* match = nullptr;
    for (const Special& s : specials_by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if ((!s.control || parse_special) && text.substr(pos).starts_with(s.text)) {
        match = &s;  // buckets are sorted longest first
        break;
      }
    }
    if (match == nullptr) {
      ++pos;
      continue;
    }
    EncodeFragment(text.substr(fragment_start, pos - fragment_start), &out);
    out.push_back(match->id);
    pos += match->text.size();
    fragment_start = pos;
  }
  EncodeFragment(text.substr(fragment_start), &out);
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

void Tokenizer::EncodeFragment(std::string_view text, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  if (model_ == TokenizerModel::kSentencePieceBpe) {
    // Every fragment starts the text or follows a special token: both get the
    // ▁ prefix (llama.cpp; HF Prepend normalizer / Metaspace "always").
    EncodeSentencePiece(text, add_space_prefix_, out);
    return;
  }
  std::vector<std::string_view> pieces;
  PreTokenize(pre_, text, &pieces);
  for (std::string_view piece : pieces) EncodeByteLevelPiece(piece, out);
}

void Tokenizer::EncodeByteLevelPiece(std::string_view piece, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    std::string mapped;
    for (char ch : piece) AppendUtf8(ByteToUnicode(static_cast<uint8_t>(ch)), &mapped);
    if (auto it = vocab_.find(mapped); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> symbols;
  symbols.reserve(piece.size());
  for (char ch : piece) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(ch)];
    // A byte missing from the alphabet cannot merge; it becomes <unk> below.
    symbols.push_back(id >= 0 ? id : -1);
  }
  merger_.Apply(&symbols);
  for (int32_t id : symbols) {
    if (id >= 0) {
      out->push_back(id);
    } else if (unk_id_ >= 0) {
      out->push_back(unk_id_);
    }
  }
}

void Tokenizer::EncodeSentencePiece(std::string_view text, bool space_prefix,
                                    std::vector<int32_t>* out) const {
  std::string escaped;
  escaped.reserve(text.size() + 8);
  if (space_prefix) escaped.append(kSpmSpace);
  for (char ch : text) {
    if (ch == ' ') {
      escaped.append(kSpmSpace);
    } else {
      escaped.push_back(ch);
    }
  }
  // Initial symbols are characters; one the vocabulary lacks is recorded as
  // -(index into `chars` + 1) so its bytes can go to byte fallback.
  std::vector<std::string_view> chars;
  std::vector<int32_t> symbols;
  const std::string_view s = escaped;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len = 0;
    DecodeUtf8(s, pos, &len);
    const std::string_view ch = s.substr(pos, len);
    auto it = vocab_.find(Av(ch));
    if (it != vocab_.end() && types_[it->second] != TokenType::kByte &&
        !IsMatchedInText(types_[it->second])) {
      symbols.push_back(it->second);
    } else {
      chars.push_back(ch);
      symbols.push_back(-static_cast<int32_t>(chars.size()));
    }
    pos += len;
  }
  merger_.Apply(&symbols);
  for (int32_t id : symbols) {
    if (id >= 0) {
      out->push_back(id);
    } else {
      AppendByteFallback(chars[-id - 1], out);
    }
  }
}

void Tokenizer::AppendByteFallback(std::string_view bytes, std::vector<int32_t>* out) const {
  for (char ch : bytes) {
    const int32_t id = byte_ids_[static_cast<uint8_t>(ch)];
    if (id >= 0) {
      out->push_back(id);
    } else if (unk_id_ >= 0) {
      // No byte tokens: one <unk> for the whole character (SentencePiece).
      out->push_back(unk_id_);
      return;
    }
  }
}

std::string Tokenizer::Decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out.append(TokenBytes(id));
  if (model_ == TokenizerModel::kSentencePieceBpe && add_space_prefix_ && !out.empty() &&
      out[0] == ' ') {
    out.erase(0, 1);
  }
  return out;
}

std::string_view Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) return {};
  return token_bytes_[id];
}

std::string_view Tokenizer::TokenText(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size()) return {};
  return tokens_[id];
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view text) const {
  auto it = vocab_.find(Av(text));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= types_.size()) return TokenType::kUndefined;
  return types_[id];
}

bool Tokenizer::IsControl(int32_t id) const {
  const TokenType t = token_type(id);
  return t == TokenType::kControl || t == TokenType::kUnknown;
}

absl::StatusOr<std::string> Tokenizer::ApplyChatTemplate(std::span<const ChatMessage> messages,
                                                         bool add_generation_prompt) const {
  if (chat_template_ == nullptr) {
    return absl::FailedPreconditionError("model has no recognised chat template");
  }
  return chat_template_->Apply(messages, add_generation_prompt);
}

}  // namespace chai::engine
