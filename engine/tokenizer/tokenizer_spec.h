// TokenizerSpec: everything needed to build a Tokenizer, as plain data, and
// the loaders that fill it from GGUF metadata (gguf_spec.h) or a Hugging Face
// tokenizer.json (json_spec.h).
//
// Loaders only transcribe; Validate() is the single place that rejects
// hostile or inconsistent content (DESIGN.md section 7), and Tokenizer::Create
// calls it, so a spec built by hand is checked too.
// Thread-safety: plain value type.
#ifndef CHAI_ENGINE_TOKENIZER_TOKENIZER_SPEC_H_
#define CHAI_ENGINE_TOKENIZER_TOKENIZER_SPEC_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace chai::engine {

enum class TokenizerModel {
  kByteLevelBpe,      // GGUF "gpt2": GPT-2 byte alphabet, regex pre-tokenizer
  kSentencePieceBpe,  // GGUF "llama": ▁ for spaces, <0xXX> byte fallback
};

// Values of GGUF 'tokenizer.ggml.token_type' (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // special: <|im_start|>, <s>; matched only when parse_special
  kUserDefined = 4,  // added token matched in text always
  kUnused = 5,
  kByte = 6,  // <0xXX> byte fallback
};

// Sanity caps: beyond these an input is treated as hostile.
struct TokenizerLimits {
  static constexpr size_t kMaxVocab = 1 << 22;
  static constexpr size_t kMaxMerges = 1 << 23;
  static constexpr size_t kMaxTokenBytes = 1 << 12;
  static constexpr size_t kMaxChatTemplateBytes = 1 << 20;
};

struct TokenizerSpec {
  TokenizerModel model = TokenizerModel::kByteLevelBpe;
  // Byte-level BPE only: GGUF 'tokenizer.ggml.pre' name (see pre_tokenizer.h).
  std::string pre_tokenizer = "default";
  std::vector<std::string> tokens;     // id -> text as stored in the vocab
  std::vector<TokenType> token_types;  // empty, or one per token
  // Ordered merges (first = highest priority), as (left, right) token texts.
  // Required for byte-level BPE. For SentencePiece BPE, if empty, merges are
  // derived from `scores` (every split of a token into two vocab tokens,
  // ranked by the token's score, as SentencePiece does).
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<float> scores;  // empty, or one per token
  int32_t bos_id = -1;        // -1: none
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;
  bool add_eos = false;
  // SentencePiece: prepend ▁ to each text fragment at the start or after a
  // special token (HF Prepend/Metaspace "always"); strip it when decoding.
  bool add_space_prefix = false;
  // A whole pre-token that is in the vocab is emitted as is (HF
  // BPE.ignore_merges; Llama-3).
  bool ignore_merges = false;
  std::string chat_template;  // Jinja source; may be empty

  // OK, or INVALID_ARGUMENT naming the first problem found: empty or
  // oversized vocab, token/type/score arrays of different lengths, unknown
  // token types, NaN scores, special ids outside the vocab, merges naming
  // unknown tokens or producing a token not in the vocab, unknown
  // pre-tokenizer.
  absl::Status Validate() const;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_TOKENIZER_SPEC_H_
