// Tokenizer: text <-> token ids for byte-level BPE (GPT-2 style, SmolLM2,
// Llama-3) and SentencePiece-style BPE (Llama-1/2), plus the model's chat
// template.
//
//   auto tok = Tokenizer::Create(spec);            // spec: SpecFromGguf / SpecFromTokenizerJson
//   std::vector<int32_t> ids = (*tok)->Encode(text, /*add_special=*/true, /*parse_special=*/false);
//   std::string text = (*tok)->Decode(ids);
//
// Streaming detokenization: TokenBytes(id) is the exact byte string a token
// contributes (GPT-2 byte alphabet mapped back to bytes; ▁ -> ' '; <0xXX> ->
// the byte; special tokens -> their text). Bytes of one character may be
// spread over several tokens: use ValidUtf8PrefixLength (unicode.h) to hold
// back an incomplete tail.
//
// Thread-safety: immutable after Create; all const methods may be called
// concurrently. Ownership: the Tokenizer owns copies of everything it needs.
#ifndef CHAI_ENGINE_TOKENIZER_TOKENIZER_H_
#define CHAI_ENGINE_TOKENIZER_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/pre_tokenizer.h"
#include "engine/tokenizer/tokenizer_spec.h"

namespace chai::engine {

class Tokenizer {
 public:
  // Validates `spec` (TokenizerSpec::Validate) and builds the lookup tables.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(const TokenizerSpec& spec);

  // Token ids for `text` (any bytes; invalid UTF-8 is tokenized byte-wise).
  // add_special: prepend BOS / append EOS as the spec's add_bos/add_eos say.
  // parse_special: text such as "<|im_start|>" becomes its control token;
  // otherwise it is tokenized as ordinary text. User-defined added tokens
  // are always recognised (as Hugging Face and llama.cpp do).
  std::vector<int32_t> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // Concatenated TokenBytes of `ids`; SentencePiece models with
  // add_space_prefix drop one leading space (the one Encode prepended).
  // Ids outside the vocabulary are skipped.
  std::string Decode(std::span<const int32_t> ids) const;

  // Raw bytes of one token; empty for ids outside the vocabulary.
  std::string_view TokenBytes(int32_t id) const;
  // The vocabulary entry as stored (e.g. "Ġthe", "▁the", "<0x0A>").
  std::string_view TokenText(int32_t id) const;
  // Id of a vocabulary entry, if present.
  std::optional<int32_t> TokenId(std::string_view text) const;
  TokenType token_type(int32_t id) const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  // End of generation: EOS and end-of-turn control tokens (<|im_end|>,
  // <|eot_id|>, <|eom_id|>, <|endoftext|>, <|end_of_text|>, </s>, <end_of_turn>).
  bool IsEog(int32_t id) const { return eog_ids_.contains(id); }
  // Control/unknown tokens: a server normally does not print these.
  bool IsControl(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  TokenizerModel model() const { return model_; }

  // The model's chat template (detected from the spec); nullptr if none.
  const ChatTemplate* chat_template() const { return chat_template_.get(); }
  // Renders `messages` with the chat template. FAILED_PRECONDITION when the
  // model has none; INVALID_ARGUMENT when the messages break its rules.
  absl::StatusOr<std::string> ApplyChatTemplate(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) const;

 private:
  Tokenizer() = default;
  absl::Status Init(const TokenizerSpec& spec);
  void EncodeFragment(std::string_view text, std::vector<int32_t>* out) const;
  void EncodeByteLevelPiece(std::string_view piece, std::vector<int32_t>* out) const;
  void EncodeSentencePiece(std::string_view text, bool space_prefix,
                           std::vector<int32_t>* out) const;
  void AppendByteFallback(std::string_view bytes, std::vector<int32_t>* out) const;

  TokenizerModel model_ = TokenizerModel::kByteLevelBpe;
  PreTokenizerKind pre_ = PreTokenizerKind::kGpt2;
  std::vector<std::string> tokens_;
  std::vector<std::string> token_bytes_;
  std::vector<TokenType> types_;
  absl::flat_hash_map<std::string, int32_t> vocab_;
  BpeMerger merger_;
  // Byte-level: id of the single-byte symbol for each byte. SentencePiece:
  // id of the <0xXX> fallback token. -1 when absent.
  std::array<int32_t, 256> byte_ids_{};
  // Tokens matched verbatim in text, bucketed by first byte, longest first.
  struct Special {
    std::string text;
    int32_t id;
    bool control;  // only matched when parse_special
  };
  std::array<std::vector<Special>, 256> specials_by_first_byte_;
  absl::flat_hash_set<int32_t> eog_ids_;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false, ignore_merges_ = false;
  std::unique_ptr<ChatTemplate> chat_template_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_TOKENIZER_H_
