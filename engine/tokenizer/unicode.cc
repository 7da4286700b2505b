#include "engine/tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace chai::engine {

uint8_t CodePointFlags(uint32_t cp) {
  using unicode_internal::kCodePointRanges;
  using unicode_internal::kNumCodePointRanges;
  if (cp < 0x80) {
    // Fast path for ASCII, the bulk of most text.
    if (cp >= 'a' && cp <= 'z') return kCpLetter;
    if (cp >= 'A' && cp <= 'Z') return kCpLetter;
    if (cp >= '0' && cp <= '9') return kCpNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kCpSpace;
    return 0;
  }
  const auto* end = kCodePointRanges + kNumCodePointRanges;
  const auto* it = std::upper_bound(
      kCodePointRanges, end, cp,
      [](uint32_t v, const unicode_internal::CodePointRange& r) { return v < r.first; });
  if (it == kCodePointRanges) return 0;
  --it;
  return cp <= it->last ? it->flags : 0;
}

const char* UnicodeVersion() { return unicode_internal::kUnicodeVersion; }

uint32_t DecodeUtf8(std::string_view text, size_t pos, size_t* len) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  const uint8_t b0 = s[pos];
  *len = 1;
  if (b0 < 0x80) return b0;
  int need;
  uint32_t cp;
  uint32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    need = 1, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    need = 2, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    need = 3, cp = b0 & 0x07, min = 0x10000;
  } else {
    return kInvalidCodePoint;
  }
  if (pos + need >= n) return kInvalidCodePoint;  // truncated
  for (int i = 1; i <= need; ++i) {
    const uint8_t b = s[pos + i];
    if ((b & 0xC0) != 0x80) return kInvalidCodePoint;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalidCodePoint;
  *len = need + 1;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t ValidUtf8PrefixLength(std::string_view text) {
  // Only a sequence cut off by the end of the buffer is held back; invalid
  // bytes in the middle can never become valid, so they are passed through.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t len = 0;
    const uint32_t cp = DecodeUtf8(text, pos, &len);
    if (cp == kInvalidCodePoint) {
      const auto b0 = static_cast<uint8_t>(text[pos]);
      int need = (b0 & 0xE0) == 0xC0 ? 1 : (b0 & 0xF0) == 0xE0 ? 2 : (b0 & 0xF8) == 0xF0 ? 3 : 0;
      const size_t rest = text.size() - pos - 1;
      if (need > 0 && rest < static_cast<size_t>(need)) {
        bool all_cont = true;
        for (size_t i = pos + 1; i < text.size(); ++i) {
          all_cont &= (static_cast<uint8_t>(text[i]) & 0xC0) == 0x80;
        }
        if (all_cont) return pos;
      }
    }
    pos += len;
  }
  return pos;
}

namespace {

struct ByteTables {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<int16_t, 512> cp_to_byte{};
  ByteTables() {
    cp_to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = printable ? static_cast<uint32_t>(b) : next++;
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};

const ByteTables& Tables() {
  static const ByteTables* const kTables = new ByteTables();
  return *kTables;
}

}  // namespace

uint32_t ByteToUnicode(uint8_t b) { return Tables().byte_to_cp[b]; }

int UnicodeToByte(uint32_t cp) { return cp < 512 ? Tables().cp_to_byte[cp] : -1; }

}  // namespace chai::engine
