// libFuzzer target: arbitrary bytes as tokenizer.json (and, after a 0 byte,
// as the text to encode) through parse -> Create -> Encode -> Decode.
// Any crash, sanitizer report or round-trip mismatch is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/tokenizer/json_spec.h"
#include "engine/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view json = input.substr(0, split);
  const std::string_view text = split == std::string_view::npos
                                    ? std::string_view("Hello 123 world\n")
                                    : input.substr(split + 1);
  absl::StatusOr<chai::engine::TokenizerSpec> spec =
      chai::engine::SpecFromTokenizerJsonText(json, "");
  if (!spec.ok()) return 0;
  absl::StatusOr<std::unique_ptr<chai::engine::Tokenizer>> tok =
      chai::engine::Tokenizer::Create(*spec);
  if (!tok.ok()) return 0;
  for (bool parse_special : {false, true}) {
    const std::vector<int32_t> ids = (*tok)->Encode(text, true, parse_special);
    for (int32_t id : ids) {
      if (id < 0 || id >= (*tok)->vocab_size()) std::abort();
    }
    (void)(*tok)->Decode(ids);
  }
  return 0;
}
