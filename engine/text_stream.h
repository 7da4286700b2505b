// Incremental detokenization for streaming: turns generated token ids into
// text deltas that are always whole UTF-8 characters.
//
// A character's bytes may be spread over several byte-level tokens (emoji,
// CJK): the incomplete tail is held back until a later token completes it.
// Bytes that can never become valid UTF-8 (a model may emit them) are
// replaced by U+FFFD once it is certain they are invalid, so every delta is
// valid UTF-8.
//
// Thread-safety: one stream per sequence, used by one thread.
#ifndef CHAI_ENGINE_TEXT_STREAM_H_
#define CHAI_ENGINE_TEXT_STREAM_H_

#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace chai::engine {

class TextStream {
 public:
  // `tokenizer` is not owned and must outlive the stream. Control tokens
  // (e.g. <|im_end|>) contribute no text unless `show_control` is set.
  explicit TextStream(const Tokenizer* tokenizer, bool show_control = false)
      : tokenizer_(tokenizer), show_control_(show_control) {}

  // Appends `id`; returns the text now complete (possibly "").
  std::string Push(int32_t id);
  // Returns whatever is still held back, invalid bytes replaced by U+FFFD.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  bool show_control_;
  std::string pending_;  // bytes of an incomplete UTF-8 sequence
};

// Length of the longest prefix of `s` that needs no more bytes: complete
// characters plus invalid bytes (to be replaced). What remains is a tail that
// could still become a valid character.
size_t CompleteUtf8Prefix(const std::string& s);
// `s` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string SanitizeUtf8(const std::string& s);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TEXT_STREAM_H_
