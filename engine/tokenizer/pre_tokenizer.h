// Pre-tokenizers for byte-level BPE: split text into the pieces BPE merges
// within, reproducing the regexes Hugging Face `tokenizers` and llama.cpp use,
// hand-written over code points (no std::regex: it is slow, not Unicode-aware
// and can recurse deeply on long inputs).
//
//   kGpt2   'tokenizer.ggml.pre' = "gpt2"/"default"; HF ByteLevel(use_regex):
//           's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   kSmollm "smollm" (also starcoder, refact, codeshell): every \p{N} code point
//           is its own piece (HF Digits(individual_digits=true)); the stretches
//           between them are split with the kGpt2 regex, each stretch on its own.
//   kLlama3 "llama-bpe" (Llama-3):
//           (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Bytes that are not valid UTF-8 are single "other" code points (like
// punctuation), so every input byte lands in exactly one piece.
// Thread-safety: stateless functions.
#ifndef CHAI_ENGINE_TOKENIZER_PRE_TOKENIZER_H_
#define CHAI_ENGINE_TOKENIZER_PRE_TOKENIZER_H_

#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace chai::engine {

enum class PreTokenizerKind { kGpt2, kSmollm, kLlama3 };

// Maps a GGUF 'tokenizer.ggml.pre' name to a kind; INVALID_ARGUMENT for names
// this implementation does not reproduce (so a model is never silently
// tokenized with the wrong regex).
absl::StatusOr<PreTokenizerKind> PreTokenizerFromName(std::string_view name);

// Appends the pieces of `text` to *pieces, in order; their concatenation is
// `text`. The views point into `text`.
void PreTokenize(PreTokenizerKind kind, std::string_view text,
                 std::vector<std::string_view>* pieces);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_PRE_TOKENIZER_H_
