// Builds a TokenizerSpec from GGUF metadata (llama.cpp's tokenizer.ggml.*
// keys and tokenizer.chat_template).
//
// Missing required keys, values of the wrong type (e.g. tokens stored as
// integers), arrays of mismatched length, token types or ids outside their
// ranges and malformed merges give INVALID_ARGUMENT naming the key;
// unsupported tokenizer models give UNIMPLEMENTED. The result still goes
// through TokenizerSpec::Validate in Tokenizer::Create.
// Thread-safety: reads the (immutable) GgufFile only.
#ifndef CHAI_ENGINE_TOKENIZER_GGUF_SPEC_H_
#define CHAI_ENGINE_TOKENIZER_GGUF_SPEC_H_

#include "absl/status/statusor.h"
#include "engine/model/gguf.h"
#include "engine/tokenizer/tokenizer_spec.h"

namespace chai::engine {

absl::StatusOr<TokenizerSpec> SpecFromGguf(const GgufFile& gguf);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_GGUF_SPEC_H_
