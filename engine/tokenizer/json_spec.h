// Builds a TokenizerSpec from a Hugging Face tokenizer.json (BPE models:
// byte-level GPT-2/SmolLM2/Llama-3 style, or SentencePiece-style with
// byte_fallback and ▁), plus tokenizer_config.json when present for
// bos/eos/pad tokens, add_bos/add_eos and the chat template.
//
// Input is untrusted: malformed JSON, wrong value types, ids that are
// negative, duplicated, leave gaps or exceed the cap, and unsupported
// normalizers/pre-tokenizers give INVALID_ARGUMENT (UNIMPLEMENTED for valid
// but unsupported configurations), never a crash. The returned spec still
// goes through TokenizerSpec::Validate in Tokenizer::Create.
// Thread-safety: stateless functions.
#ifndef CHAI_ENGINE_TOKENIZER_JSON_SPEC_H_
#define CHAI_ENGINE_TOKENIZER_JSON_SPEC_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/tokenizer/tokenizer_spec.h"

namespace chai::engine {

// Reads `tokenizer_json_path` and, if it exists, tokenizer_config.json in the
// same directory. Files over 256 MiB are rejected.
absl::StatusOr<TokenizerSpec> SpecFromTokenizerJson(const std::string& tokenizer_json_path);

// Same from in-memory text; `tokenizer_config_json` may be empty (absent).
absl::StatusOr<TokenizerSpec> SpecFromTokenizerJsonText(std::string_view tokenizer_json,
                                                        std::string_view tokenizer_config_json);

// The Llama-3 pre-tokenizer regex as it appears in tokenizer.json, recognised
// as the "llama-bpe" pre-tokenizer.
extern const char kLlama3PreTokenizerRegex[];

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_JSON_SPEC_H_
