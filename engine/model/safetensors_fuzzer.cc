// libFuzzer target for the safetensors header parser (SafetensorsFile::
// FromBuffer), and, for inputs that look like JSON, the sharded-index parser
// and the config.json reader.
//
// Every input must be rejected with a non-empty status or yield a file whose
// invariants hold (checked with __builtin_trap so libFuzzer keeps the input):
//   * tensors are sorted, tile the data section exactly (each begins where
//     the previous ended, the last ends at the end of the input), and each
//     [data, data + size) lies inside the input;
//   * size == n_elements * dtype size, n_elements == product of the shape;
//   * Find(name) returns that tensor, and names are unique;
//   * an accepted config.json Validate()s; an accepted index names only plain
//     file names.
//
// Seeds: tests/fuzz/safetensors/. Run: tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "engine/model/hf_config.h"
#include "engine/model/safetensors.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void Touch(const uint8_t* p) {
  const volatile uint8_t* b = p;
  (void)*b;
}

void CheckFile(const chai::engine::SafetensorsFile& f, const uint8_t* begin, size_t size) {
  const uint8_t* end = begin + size;
  std::set<std::string> names;
  const uint8_t* expect = nullptr;
  for (const chai::engine::SafetensorsTensor& t : f.tensors()) {
    Check(!t.name.empty() && names.insert(t.name).second);
    Check(f.Find(t.name) == &t);
    Check(t.dtype_bytes >= 1 && t.dtype_bytes <= 8);
    int64_t n = 1;
    for (int64_t d : t.shape) {
      Check(d >= 0);
      n *= d;  // bounded: the reader caps the product at 2^48
    }
    Check(n == t.n_elements);
    Check(t.end >= t.begin && t.end - t.begin == static_cast<uint64_t>(n * t.dtype_bytes));
    Check(t.data >= begin && t.data <= end &&
          t.end - t.begin <= static_cast<uint64_t>(end - t.data));
    if (expect != nullptr) Check(t.data == expect);
    expect = t.data + (t.end - t.begin);
    if (t.end > t.begin) {
      Touch(t.data);
      Touch(t.data + (t.end - t.begin) - 1);
    }
  }
  if (expect != nullptr) Check(expect == end);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Copy so ASan flags any read even one byte past the input.
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const uint8_t* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  chai::engine::SafetensorsLimits limits;
  limits.max_header_bytes = 1 << 20;  // the default cap is far above libFuzzer's -max_len
  auto file = chai::engine::SafetensorsFile::FromBuffer(bytes, limits);
  if (file.ok()) {
    CheckFile(**file, begin, bytes.size());
  } else {
    Check(!file.status().message().empty());
  }

  if (!bytes.empty() && bytes[0] == '{') {
    auto index = chai::engine::ParseSafetensorsIndex(bytes);
    if (index.ok()) {
      for (const auto& [tensor, shard] : *index) {
        Check(!tensor.empty() && !shard.empty());
        Check(!absl::StrContains(shard, '/') && !absl::StrContains(shard, ".."));
      }
    }
    auto config = chai::engine::LlamaConfigFromHfJson(bytes);
    if (config.ok()) {
      Check(config->Validate().ok());
      Check(!config->rope_interleaved);
      Check(config->RopeInvFreq().size() == static_cast<size_t>(config->head_dim / 2));
    }
  }
  return 0;
}
