#include "engine/model/gguf.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/model/mapped_file.h"

namespace chai::engine {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;

// Bytes of one scalar of a metadata type; 0 for string/array (variable).
uint64_t ScalarSize(GgufValueType t) {
  switch (t) {
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
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

// Bounds-checked little-endian cursor over the file bytes. Every read fails
// (returns false) instead of running past the end.
class Cursor {
 public:
  explicit Cursor(absl::string_view bytes) : bytes_(bytes) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }
  const uint8_t* here() const { return reinterpret_cast<const uint8_t*>(bytes_.data()) + pos_; }

  template <typename T>
  bool Read(T* out) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Skip(uint64_t n) {
    if (remaining() < n) return false;
    pos_ += n;
    return true;
  }

 private:
  absl::string_view bytes_;
  uint64_t pos_ = 0;
};

absl::Status Truncated(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("GGUF truncated while reading ", what));
}

// Reads a GGUF string (u64 length + bytes) as a view into the file.
absl::StatusOr<absl::string_view> ReadString(Cursor& c, uint64_t cap, absl::string_view what) {
  uint64_t len;
  if (!c.Read(&len)) return Truncated(what);
  if (len > cap) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF ", what, " length ", len, " exceeds the cap of ", cap, " bytes"));
  }
  if (len > c.remaining()) return Truncated(what);
  absl::string_view s(reinterpret_cast<const char*>(c.here()), len);
  c.Skip(len);
  return s;
}

template <typename T>
T LoadAt(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Reads an integer scalar of any width as int64, when it fits.
absl::StatusOr<int64_t> ScalarAsInt(GgufValueType t, const uint8_t* p) {
  switch (t) {
    case GgufValueType::kUint8:
      return LoadAt<uint8_t>(p);
    case GgufValueType::kInt8:
      return LoadAt<int8_t>(p);
    case GgufValueType::kUint16:
      return LoadAt<uint16_t>(p);
    case GgufValueType::kInt16:
      return LoadAt<int16_t>(p);
    case GgufValueType::kUint32:
      return LoadAt<uint32_t>(p);
    case GgufValueType::kInt32:
      return LoadAt<int32_t>(p);
    case GgufValueType::kInt64:
      return LoadAt<int64_t>(p);
    case GgufValueType::kUint64: {
      uint64_t v = LoadAt<uint64_t>(p);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError("GGUF integer value does not fit in int64");
      }
      return static_cast<int64_t>(v);
    }
    default:
      // Bools included: a flag read as a number (or a number as a flag) is a
      // type confusion the caller should hear about.
      return absl::InvalidArgumentError("GGUF value is not an integer");
  }
}

bool MulOverflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

// The GGUF spec makes any bool byte other than 0 or 1 invalid.
bool ValidBools(const uint8_t* p, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (p[i] > 1) return false;
  }
  return true;
}

// Smallest encodings, to reject counts the file cannot possibly hold before
// looping over them: a metadata entry is key length (8) + a 1-byte key + type
// tag (4) + a 1-byte value; a tensor info is name length (8) + a 1-byte name +
// n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

}  // namespace

GgufFile::~GgufFile() = default;

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path,
                                                         const GgufLimits& limits) {
  absl::StatusOr<std::unique_ptr<MappedFile>> map = MappedFile::Open(path);
  if (!map.ok()) return map.status();
  auto file = std::unique_ptr<GgufFile>(new GgufFile());
  file->bytes_ = (*map)->bytes();
  file->map_ = *std::move(map);
  if (absl::Status s = file->Parse(limits); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBuffer(absl::string_view bytes,
                                                               const GgufLimits& limits) {
  auto file = std::unique_ptr<GgufFile>(new GgufFile());
  file->bytes_ = bytes;
  if (absl::Status s = file->Parse(limits); !s.ok()) return s;
  return file;
}

absl::Status GgufFile::Parse(const GgufLimits& limits) {
  Cursor c(bytes_);
  uint32_t magic;
  if (!c.Read(&magic)) return Truncated("magic");
  if (magic != kMagic) return absl::InvalidArgumentError("not a GGUF file (bad magic)");
  if (!c.Read(&version_)) return Truncated("version");
  if (version_ != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported GGUF version ", version_, " (only 3 is supported)"));
  }
  uint64_t n_tensors, n_kv;
  if (!c.Read(&n_tensors)) return Truncated("tensor count");
  if (!c.Read(&n_kv)) return Truncated("metadata count");
  if (n_tensors > limits.max_tensor_count) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF tensor count ", n_tensors,
                                                   " exceeds the cap ", limits.max_tensor_count));
  }
  if (n_kv > limits.max_kv_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF metadata count ", n_kv, " exceeds the cap ", limits.max_kv_count));
  }

  // Both counts are capped above, so these products cannot overflow.
  if (n_kv * kMinKvBytes + n_tensors * kMinTensorInfoBytes > c.remaining()) {
    return absl::DataLossError(absl::StrCat("GGUF declares ", n_kv, " metadata entries and ",
                                            n_tensors, " tensors, more than the remaining ",
                                            c.remaining(), " bytes can hold (truncated file?)"));
  }

  // ---- metadata ----
  for (uint64_t i = 0; i < n_kv; ++i) {
    absl::StatusOr<absl::string_view> key = ReadString(c, limits.max_string_bytes, "metadata key");
    if (!key.ok()) return key.status();
    if (key->empty()) return absl::InvalidArgumentError("GGUF metadata key is empty");
    uint32_t type_raw;
    if (!c.Read(&type_raw)) return Truncated("metadata type");
    if (!ValidValueType(type_raw)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF key '", *key, "' has unknown value type ", type_raw));
    }
    Value v{static_cast<GgufValueType>(type_raw), GgufValueType::kUint8, 0, c.here()};
    if (v.type == GgufValueType::kString) {
      absl::StatusOr<absl::string_view> s = ReadString(c, limits.max_string_bytes, "string value");
      if (!s.ok()) return s.status();
    } else if (v.type == GgufValueType::kArray) {
      uint32_t elem_raw;
      if (!c.Read(&elem_raw)) return Truncated("array type");
      if (!ValidValueType(elem_raw) || elem_raw == static_cast<uint32_t>(GgufValueType::kArray)) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF key '", *key, "' has unsupported array element type ", elem_raw));
      }
      v.elem_type = static_cast<GgufValueType>(elem_raw);
      if (!c.Read(&v.count)) return Truncated("array length");
      if (v.count > limits.max_array_elems) {
        return absl::InvalidArgumentError(absl::StrCat("GGUF array '", *key, "' length ", v.count,
                                                       " exceeds the cap ",
                                                       limits.max_array_elems));
      }
      v.ptr = c.here();
      if (v.elem_type == GgufValueType::kString) {
        for (uint64_t j = 0; j < v.count; ++j) {
          absl::StatusOr<absl::string_view> s =
              ReadString(c, limits.max_string_bytes, "array string");
          if (!s.ok()) return s.status();
        }
      } else {
        uint64_t bytes;
        if (MulOverflows(v.count, ScalarSize(v.elem_type), &bytes) || !c.Skip(bytes)) {
          return Truncated("array data");
        }
      }
      if (v.elem_type == GgufValueType::kBool && !ValidBools(v.ptr, v.count)) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF bool array '", *key, "' holds a value other than 0 or 1"));
      }
    } else if (!c.Skip(ScalarSize(v.type))) {
      return Truncated("metadata value");
    } else if (v.type == GgufValueType::kBool && !ValidBools(v.ptr, 1)) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF bool '", *key, "' is neither 0 nor 1"));
    }
    if (!kv_.emplace(std::string(*key), v).second) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF duplicate metadata key '", *key, "'"));
    }
  }

  if (auto it = kv_.find("general.alignment"); it != kv_.end()) {
    // The spec types it uint32 (llama.cpp aborts on anything else); accepting
    // other types would let e.g. a bool `true` mean alignment 1.
    if (it->second.type != GgufValueType::kUint32) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF general.alignment has type ", static_cast<uint32_t>(it->second.type),
                       ", expected uint32 (", static_cast<uint32_t>(GgufValueType::kUint32), ")"));
    }
    const uint32_t a = LoadAt<uint32_t>(it->second.ptr);
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF general.alignment ", a, " is not a power of two in [1, 2^20]"));
    }
    alignment_ = a;
  }

  // ---- tensor infos ----
  tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    absl::StatusOr<absl::string_view> name =
        ReadString(c, limits.max_tensor_name_bytes, "tensor name");
    if (!name.ok()) return name.status();
    if (name->empty()) return absl::InvalidArgumentError("GGUF tensor name is empty");
    GgufTensorInfo t;
    t.name = std::string(*name);
    uint32_t n_dims;
    if (!c.Read(&n_dims)) return Truncated("tensor dims");
    if (n_dims == 0 || n_dims > kMaxDims) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' has ", n_dims, " dims (1..4 allowed)"));
    }
    uint64_t n_elem = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim;
      if (!c.Read(&dim)) return Truncated("tensor shape");
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          MulOverflows(n_elem, dim, &n_elem) ||
          n_elem > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF tensor '", t.name, "' has an invalid or overflowing shape"));
      }
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    t.n_elements = static_cast<int64_t>(n_elem);
    uint32_t type_raw;
    if (!c.Read(&type_raw)) return Truncated("tensor type");
    std::optional<kernels::DTypeInfo> info = kernels::LookupDType(type_raw);
    if (!info) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' has unsupported type ", type_raw));
    }
    t.dtype = static_cast<kernels::DType>(type_raw);
    if (t.dims[0] % info->block_elems != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF tensor '", t.name, "' row of ", t.dims[0], " elements is not a multiple of the ",
          info->name, " block size ", info->block_elems));
    }
    const int64_t row_bytes = kernels::RowBytes(t.dtype, t.dims[0]);
    if (row_bytes < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' byte size overflows"));
    }
    if (MulOverflows(static_cast<uint64_t>(row_bytes), n_elem / t.dims[0], &t.n_bytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' byte size overflows"));
    }
    if (!c.Read(&t.offset)) return Truncated("tensor offset");
    if (t.offset % alignment_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' offset is not aligned to ", alignment_));
    }
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      return absl::InvalidArgumentError(absl::StrCat("GGUF duplicate tensor name '", t.name, "'"));
    }
    tensors_.push_back(std::move(t));
  }

  // ---- data section ----
  uint64_t data_start = c.pos();
  data_start = (data_start + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors > 0 && data_start > bytes_.size()) return Truncated("tensor data");
  const uint64_t data_size = n_tensors > 0 ? bytes_.size() - data_start : 0;

  // Tensors must lie inside the file and must not overlap (sorted by offset).
  // Gap policy: writers (llama.cpp, gguf-py) place each tensor at the next
  // aligned offset after the previous one, so the only bytes between tensors,
  // before the first one and after the last one are fewer than `alignment_`
  // bytes of padding. Anything larger means the offset table does not
  // describe the file (corruption, or bytes hidden from every check), so it
  // is rejected. A missing final padding is accepted: the real model files
  // end exactly at the last tensor's last byte.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  uint64_t prev_end = 0;
  for (size_t idx : order) {
    GgufTensorInfo& t = tensors_[idx];
    uint64_t end;
    if (__builtin_add_overflow(t.offset, t.n_bytes, &end) || end > data_size) {
      // DATA_LOSS: indistinguishable from a file cut short in its data section.
      return absl::DataLossError(
          absl::StrCat("GGUF tensor '", t.name, "' data lies outside the file (offset ", t.offset,
                       ", ", t.n_bytes, " bytes, data section ", data_size, " bytes)"));
    }
    if (t.offset < prev_end) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' overlaps another tensor's data"));
    }
    if (t.offset - prev_end >= alignment_) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF tensor '", t.name, "' starts ", t.offset - prev_end,
                       " bytes after the previous tensor's data; only alignment padding (< ",
                       alignment_, " bytes) may lie between tensors"));
    }
    prev_end = end;
    t.data = reinterpret_cast<const uint8_t*>(bytes_.data()) + data_start + t.offset;
  }
  if (n_tensors > 0 && data_size - prev_end >= alignment_) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF file has ", data_size - prev_end,
                     " bytes after the last tensor's data; only alignment padding (< ", alignment_,
                     " bytes) is allowed"));
  }
  return absl::OkStatus();
}

bool GgufFile::Has(absl::string_view key) const { return kv_.contains(key); }

absl::StatusOr<GgufFile::Value> GgufFile::Find(absl::string_view key) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return absl::NotFoundError(absl::StrCat("GGUF key '", key, "' not found"));
  return it->second;
}

absl::StatusOr<GgufValueType> GgufFile::GetType(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  return v->type;
}

absl::StatusOr<absl::string_view> GgufFile::GetString(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type != GgufValueType::kString) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not a string"));
  }
  const uint64_t len = LoadAt<uint64_t>(v->ptr);  // validated in Parse
  return absl::string_view(reinterpret_cast<const char*>(v->ptr + 8), len);
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  absl::StatusOr<int64_t> r = ScalarAsInt(v->type, v->ptr);
  if (!r.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "': ", r.status().message()));
  }
  return r;
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type == GgufValueType::kFloat32) return LoadAt<float>(v->ptr);
  if (v->type == GgufValueType::kFloat64) return LoadAt<double>(v->ptr);
  absl::StatusOr<int64_t> i = ScalarAsInt(v->type, v->ptr);
  if (i.ok()) return static_cast<double>(*i);
  return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not a number"));
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type != GgufValueType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not a bool"));
  }
  return LoadAt<uint8_t>(v->ptr) != 0;
}

absl::StatusOr<std::vector<absl::string_view>> GgufFile::GetStringArray(
    absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type != GgufValueType::kArray || v->elem_type != GgufValueType::kString) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not a string array"));
  }
  std::vector<absl::string_view> out;
  out.reserve(v->count);
  const uint8_t* p = v->ptr;
  for (uint64_t i = 0; i < v->count; ++i) {  // lengths validated in Parse
    const uint64_t len = LoadAt<uint64_t>(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), len);
    p += 8 + len;
  }
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type != GgufValueType::kArray) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not an array"));
  }
  const uint64_t size = ScalarSize(v->elem_type);
  if (size == 0 || v->elem_type == GgufValueType::kFloat32 ||
      v->elem_type == GgufValueType::kFloat64 || v->elem_type == GgufValueType::kBool) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not an integer array"));
  }
  std::vector<int64_t> out;
  out.reserve(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    absl::StatusOr<int64_t> x = ScalarAsInt(v->elem_type, v->ptr + i * size);
    if (!x.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF key '", key, "' element ", i, ": ", x.status().message()));
    }
    out.push_back(*x);
  }
  return out;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(absl::string_view key) const {
  absl::StatusOr<Value> v = Find(key);
  if (!v.ok()) return v.status();
  if (v->type != GgufValueType::kArray ||
      (v->elem_type != GgufValueType::kFloat32 && v->elem_type != GgufValueType::kFloat64)) {
    return absl::InvalidArgumentError(absl::StrCat("GGUF key '", key, "' is not a float array"));
  }
  std::vector<float> out;
  out.reserve(v->count);
  for (uint64_t i = 0; i < v->count; ++i) {
    out.push_back(v->elem_type == GgufValueType::kFloat32
                      ? LoadAt<float>(v->ptr + i * 4)
                      : static_cast<float>(LoadAt<double>(v->ptr + i * 8)));
  }
  return out;
}

const GgufTensorInfo* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace chai::engine
