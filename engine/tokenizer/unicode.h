// Unicode helpers for tokenization: lenient UTF-8 decoding, the code-point
// classes the pre-tokenizer regexes need (\p{L}, \p{N}, \s), and GPT-2's
// byte <-> printable-code-point table used by byte-level BPE vocabularies.
//
// The class tables are generated (unicode_tables.cc, by gen_unicode_tables.py)
// from Python's unicodedata; UnicodeVersion() names the version.
// Thread-safety: all functions are pure or read immutable tables.
#ifndef CHAI_ENGINE_TOKENIZER_UNICODE_H_
#define CHAI_ENGINE_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chai::engine {

namespace unicode_internal {
struct CodePointRange {
  uint32_t first;
  uint32_t last;
  uint8_t flags;
};
extern const CodePointRange kCodePointRanges[];
extern const size_t kNumCodePointRanges;
extern const char kUnicodeVersion[];
}  // namespace unicode_internal

// Bit flags for a code point's class.
inline constexpr uint8_t kCpLetter = 1;  // \p{L}
inline constexpr uint8_t kCpNumber = 2;  // \p{N}
inline constexpr uint8_t kCpSpace = 4;   // \s (White_Space)

// Flags for code point `cp` (0 for unassigned/other classes and values > 0x10FFFF).
uint8_t CodePointFlags(uint32_t cp);
inline bool IsLetter(uint32_t cp) { return CodePointFlags(cp) & kCpLetter; }
inline bool IsNumber(uint32_t cp) { return CodePointFlags(cp) & kCpNumber; }
inline bool IsSpace(uint32_t cp) { return CodePointFlags(cp) & kCpSpace; }
const char* UnicodeVersion();

// Marker for a byte that does not start a valid UTF-8 sequence. It is above
// 0x10FFFF so it has no class flags: such a byte behaves like punctuation.
inline constexpr uint32_t kInvalidCodePoint = 0x110000;

// Decodes one code point starting at text[pos]; sets *len to its length in
// bytes (>= 1). Overlong forms, surrogates and truncated sequences decode as
// kInvalidCodePoint with *len = 1, so every byte of any input is consumed.
// REQUIRES: pos < text.size().
uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t* len);

// Appends the UTF-8 encoding of cp (REQUIRES: cp <= 0x10FFFF).
void AppendUtf8(uint32_t cp, std::string* out);

// Length of the longest prefix of `text` that is complete, valid UTF-8 except
// possibly for a truncated trailing sequence; used to hold back partial
// characters when streaming. Returns the number of bytes safe to emit.
size_t ValidUtf8PrefixLength(std::string_view text);

// GPT-2 byte-level alphabet: each byte maps to a printable code point
// ('!'..'~', '¡'..'¬', '®'..'ÿ' map to themselves; the rest to U+0100...).
uint32_t ByteToUnicode(uint8_t b);
// Inverse; returns -1 when cp is not in the alphabet.
int UnicodeToByte(uint32_t cp);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_UNICODE_H_
