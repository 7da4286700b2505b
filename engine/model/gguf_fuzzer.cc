// libFuzzer target for the GGUF reader (GgufFile::FromBuffer).
//
// Every input must either be rejected with a status or yield a GgufFile
// whose every getter, on every key, and every tensor's data, can be used
// without a crash or a sanitizer report. Beyond "no crash", the target checks
// a few invariants (with __builtin_trap, so libFuzzer keeps the input):
//   * the metadata section of an accepted file re-walks cleanly with an
//     independent bounds-checked walker, and lists exactly the reader's keys;
//   * a getter succeeds exactly when the key's type says it should;
//   * every tensor's [data, data + n_bytes) lies inside the input buffer and
//     FindTensor(name) returns that tensor.
//
// Seeds: tests/fuzz/gguf/. Run: tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/model/gguf.h"

namespace chai::engine {
namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// Reads through a volatile so touching a byte cannot be optimized away.
void Touch(const void* p) {
  const volatile uint8_t* b = static_cast<const volatile uint8_t*>(p);
  (void)*b;
}

void TouchString(absl::string_view s) {
  if (s.empty()) return;
  Touch(s.data());
  Touch(s.data() + s.size() - 1);
}

// Minimal walker over GGUF metadata, independent of gguf.cc's parser.
class Walker {
 public:
  Walker(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool U32(uint32_t* v) { return Raw(v, sizeof(*v)); }
  bool U64(uint64_t* v) { return Raw(v, sizeof(*v)); }
  bool Skip(uint64_t n) {
    if (n > size_ - pos_) return false;
    pos_ += n;
    return true;
  }
  bool Str(std::string* s) {
    uint64_t n;
    if (!U64(&n) || n > size_ - pos_) return false;
    if (s != nullptr) s->assign(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return true;
  }

 private:
  bool Raw(void* out, size_t n) {
    if (n > size_ - pos_) return false;
    std::memcpy(out, data_ + pos_, n);
    pos_ += n;
    return true;
  }
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

uint64_t ScalarBytes(uint32_t type) {
  switch (static_cast<GgufValueType>(type)) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

// Keys of the metadata section, or nullopt if it does not walk cleanly.
std::optional<std::vector<std::string>> ListKeys(const uint8_t* data, size_t size) {
  Walker w(data, size);
  uint32_t magic, version;
  uint64_t n_tensors, n_kv;
  if (!w.U32(&magic) || !w.U32(&version) || !w.U64(&n_tensors) || !w.U64(&n_kv)) {
    return std::nullopt;
  }
  std::vector<std::string> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type;
    if (!w.Str(&key) || !w.U32(&type)) return std::nullopt;
    if (type == static_cast<uint32_t>(GgufValueType::kString)) {
      if (!w.Str(nullptr)) return std::nullopt;
    } else if (type == static_cast<uint32_t>(GgufValueType::kArray)) {
      uint32_t elem;
      uint64_t count;
      if (!w.U32(&elem) || !w.U64(&count)) return std::nullopt;
      if (elem == static_cast<uint32_t>(GgufValueType::kString)) {
        for (uint64_t j = 0; j < count; ++j) {
          if (!w.Str(nullptr)) return std::nullopt;
        }
      } else {
        const uint64_t sz = ScalarBytes(elem);
        uint64_t bytes;
        if (sz == 0 || __builtin_mul_overflow(count, sz, &bytes) || !w.Skip(bytes)) {
          return std::nullopt;
        }
      }
    } else {
      const uint64_t sz = ScalarBytes(type);
      if (sz == 0 || !w.Skip(sz)) return std::nullopt;
    }
    keys.push_back(std::move(key));
  }
  return keys;
}

bool IsIntegerType(GgufValueType t) {
  return ScalarBytes(static_cast<uint32_t>(t)) != 0 && t != GgufValueType::kBool &&
         t != GgufValueType::kFloat32 && t != GgufValueType::kFloat64;
}

void ExerciseKey(const GgufFile& f, absl::string_view key) {
  Check(f.Has(key));
  absl::StatusOr<GgufValueType> type = f.GetType(key);
  Check(type.ok());

  absl::StatusOr<absl::string_view> s = f.GetString(key);
  Check(s.ok() == (*type == GgufValueType::kString));
  if (s.ok()) TouchString(*s);

  absl::StatusOr<bool> b = f.GetBool(key);
  Check(b.ok() == (*type == GgufValueType::kBool));

  // Only u64 values over INT64_MAX may fail for an integer type.
  absl::StatusOr<int64_t> i = f.GetInt(key);
  if (i.ok()) Check(IsIntegerType(*type));
  if (!i.ok()) Check(!IsIntegerType(*type) || *type == GgufValueType::kUint64);

  absl::StatusOr<double> d = f.GetFloat(key);
  if (*type == GgufValueType::kFloat32 || *type == GgufValueType::kFloat64) Check(d.ok());

  absl::StatusOr<std::vector<absl::string_view>> strs = f.GetStringArray(key);
  if (strs.ok()) {
    Check(*type == GgufValueType::kArray);
    for (absl::string_view x : *strs) TouchString(x);
  }
  absl::StatusOr<std::vector<int64_t>> ints = f.GetIntArray(key);
  if (ints.ok()) Check(*type == GgufValueType::kArray);
  absl::StatusOr<std::vector<float>> floats = f.GetFloatArray(key);
  if (floats.ok()) Check(*type == GgufValueType::kArray);
  // An array is readable as at most one of the three.
  Check(static_cast<int>(strs.ok()) + static_cast<int>(ints.ok()) + static_cast<int>(floats.ok()) <=
        1);
}

}  // namespace
}  // namespace chai::engine

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using chai::engine::GgufFile;
  using chai::engine::GgufTensorInfo;
  // Copy so ASan flags any read even one byte past the input.
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::unique_ptr<GgufFile>> parsed =
      GgufFile::FromBuffer(absl::string_view(bytes.data(), bytes.size()));
  if (!parsed.ok()) {
    chai::engine::Check(!parsed.status().message().empty());
    return 0;
  }
  const GgufFile& f = **parsed;

  std::optional<std::vector<std::string>> keys =
      chai::engine::ListKeys(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  chai::engine::Check(keys.has_value());
  for (const std::string& key : *keys) chai::engine::ExerciseKey(f, key);
  // The reader rejects duplicate keys, so the walker's keys are distinct.
  chai::engine::Check(std::set<std::string>(keys->begin(), keys->end()).size() == keys->size());
  chai::engine::Check(!f.GetInt("").ok());

  const uint8_t* begin = reinterpret_cast<const uint8_t*>(bytes.data());
  const uint8_t* end = begin + bytes.size();
  for (const GgufTensorInfo& t : f.tensors()) {
    chai::engine::Check(t.data != nullptr && t.n_bytes > 0);
    chai::engine::Check(t.data >= begin && t.n_bytes <= static_cast<uint64_t>(end - t.data));
    chai::engine::Check(f.FindTensor(t.name) == &t);
    chai::engine::Check(t.n_elements > 0 && !t.dims.empty() && t.dims.size() <= 4);
    chai::engine::Touch(t.data);
    chai::engine::Touch(t.data + t.n_bytes - 1);
  }
  return 0;
}
