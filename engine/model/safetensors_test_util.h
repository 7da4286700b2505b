// Test-only helpers that write safetensors bytes (valid or deliberately
// malformed) and small files, for the reader's hostile-input tests and the
// loaders' synthetic models. Header-only; not part of any library.
#ifndef CHAI_ENGINE_MODEL_SAFETENSORS_TEST_UTIL_H_
#define CHAI_ENGINE_MODEL_SAFETENSORS_TEST_UTIL_H_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace chai::engine::testing {

// u64 little-endian header length, the header text, then the data bytes.
inline std::string RawSafetensors(absl::string_view header, absl::string_view data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  absl::StrAppend(&out, header, data);
  return out;
}

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  std::string bytes;  // raw little-endian element bytes
};

inline std::string F32Bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

inline std::string U16Bytes(const std::vector<uint16_t>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(uint16_t));
}

// A well-formed file: tensors laid out contiguously in the given order. The
// header is padded with spaces to a multiple of `pad_to` (Hugging Face's
// writer uses 8), so the data section starts at 8 + header length; an odd
// `extra_pad` makes every tensor misaligned on purpose.
inline std::string BuildSafetensors(const std::vector<StTensor>& tensors,
                                    absl::string_view metadata_json = "", size_t pad_to = 8,
                                    size_t extra_pad = 0) {
  std::vector<std::string> entries;
  if (!metadata_json.empty()) entries.push_back(absl::StrCat("\"__metadata__\":", metadata_json));
  std::string data;
  for (const StTensor& t : tensors) {
    const size_t begin = data.size();
    data += t.bytes;
    entries.push_back(absl::StrCat("\"", t.name, "\":{\"dtype\":\"", t.dtype, "\",\"shape\":[",
                                   absl::StrJoin(t.shape, ","), "],\"data_offsets\":[", begin, ",",
                                   data.size(), "]}"));
  }
  std::string header = absl::StrCat("{", absl::StrJoin(entries, ","), "}");
  while (header.size() % pad_to != 0) header += ' ';
  header.append(extra_pad, ' ');
  return RawSafetensors(header, data);
}

inline void WriteFile(const std::string& path, absl::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace chai::engine::testing

#endif  // CHAI_ENGINE_MODEL_SAFETENSORS_TEST_UTIL_H_
