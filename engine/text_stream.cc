#include "engine/text_stream.h"

namespace chai::engine {
namespace {

// Length of the UTF-8 sequence starting at s[i], 0 if invalid; -1 if it is a
// valid-so-far prefix cut off by the end of the string.
int SequenceLength(const std::string& s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  int len;
  uint32_t min_cp;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min_cp = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min_cp = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min_cp = 0x10000;
  } else {
    return 0;
  }
  uint32_t cp = c & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if (i + k >= s.size()) return -1;
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
    // Reject overlongs, surrogates and > U+10FFFF as early as possible so a
    // held-back prefix is one that can still become valid.
    if (k == 1) {
      const uint32_t partial_shift = 6 * (len - 2);
      const uint32_t lo = cp << partial_shift;
      const uint32_t hi = lo | ((1u << partial_shift) - 1);
      if (hi < min_cp || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF)) return 0;
    }
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

}  // namespace

size_t CompleteUtf8Prefix(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const int len = SequenceLength(s, i);
    if (len < 0) break;
    i += len == 0 ? 1 : len;
  }
  return i;
}

std::string SanitizeUtf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const int len = SequenceLength(s, i);
    if (len > 0) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

std::string TextStream::Push(int32_t id) {
  if (!show_control_ && tokenizer_->IsControl(id)) return "";
  pending_.append(tokenizer_->TokenBytes(id));
  const size_t n = CompleteUtf8Prefix(pending_);
  std::string out = SanitizeUtf8(pending_.substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string TextStream::Flush() {
  std::string out = SanitizeUtf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace chai::engine
