#include "engine/model/testing/gguf_builder.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace chai::engine::testing {
namespace {

// Explicit tensor offsets beyond this are recorded but their data is not
// written, so a test can point a tensor far outside the file cheaply.
constexpr uint64_t kMaxWrittenEnd = uint64_t{1} << 20;

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void PutBytes(std::string* out, const void* p, size_t n) {
  out->append(static_cast<const char*>(p), n);
}

}  // namespace

void PutU32(std::string* out, uint32_t v) { PutBytes(out, &v, sizeof(v)); }
void PutU64(std::string* out, uint64_t v) { PutBytes(out, &v, sizeof(v)); }

void PutString(std::string* out, absl::string_view s) {
  PutU64(out, s.size());
  out->append(s.data(), s.size());
}

std::string EncodeF32(const std::vector<float>& values) {
  std::string out;
  PutBytes(&out, values.data(), values.size() * sizeof(float));
  return out;
}

int64_t TensorBytes(kernels::DType dtype, const std::vector<int64_t>& dims) {
  if (dims.empty()) return -1;
  int64_t rows = 1;
  for (size_t i = 1; i < dims.size(); ++i) {
    if (dims[i] < 0 || __builtin_mul_overflow(rows, dims[i], &rows)) return -1;
  }
  const int64_t row_bytes = kernels::RowBytes(dtype, dims[0]);
  int64_t total;
  if (row_bytes < 0 || __builtin_mul_overflow(row_bytes, rows, &total)) return -1;
  return total;
}

GgufBuilder& GgufBuilder::AddScalar(absl::string_view key, GgufValueType type, const void* v,
                                    size_t n) {
  std::string payload;
  PutBytes(&payload, v, n);
  return AddRawKv(key, static_cast<uint32_t>(type), payload);
}

GgufBuilder& GgufBuilder::AddArray(absl::string_view key, GgufValueType elem, uint64_t count,
                                   const void* data, size_t n) {
  std::string payload;
  PutU32(&payload, static_cast<uint32_t>(elem));
  PutU64(&payload, count);
  PutBytes(&payload, data, n);
  return AddRawKv(key, static_cast<uint32_t>(GgufValueType::kArray), payload);
}

GgufBuilder& GgufBuilder::AddU8(absl::string_view key, uint8_t v) {
  return AddScalar(key, GgufValueType::kUint8, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddI8(absl::string_view key, int8_t v) {
  return AddScalar(key, GgufValueType::kInt8, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddU16(absl::string_view key, uint16_t v) {
  return AddScalar(key, GgufValueType::kUint16, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddI16(absl::string_view key, int16_t v) {
  return AddScalar(key, GgufValueType::kInt16, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddU32(absl::string_view key, uint32_t v) {
  return AddScalar(key, GgufValueType::kUint32, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddI32(absl::string_view key, int32_t v) {
  return AddScalar(key, GgufValueType::kInt32, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddU64(absl::string_view key, uint64_t v) {
  return AddScalar(key, GgufValueType::kUint64, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddI64(absl::string_view key, int64_t v) {
  return AddScalar(key, GgufValueType::kInt64, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddF32(absl::string_view key, float v) {
  return AddScalar(key, GgufValueType::kFloat32, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddF64(absl::string_view key, double v) {
  return AddScalar(key, GgufValueType::kFloat64, &v, sizeof(v));
}
GgufBuilder& GgufBuilder::AddBool(absl::string_view key, bool v) {
  const uint8_t b = v ? 1 : 0;
  return AddScalar(key, GgufValueType::kBool, &b, sizeof(b));
}

GgufBuilder& GgufBuilder::AddString(absl::string_view key, absl::string_view v) {
  std::string payload;
  PutString(&payload, v);
  return AddRawKv(key, static_cast<uint32_t>(GgufValueType::kString), payload);
}

GgufBuilder& GgufBuilder::AddStringArray(absl::string_view key, const std::vector<std::string>& v) {
  std::string elems;
  for (const std::string& s : v) PutString(&elems, s);
  return AddArray(key, GgufValueType::kString, v.size(), elems.data(), elems.size());
}

GgufBuilder& GgufBuilder::AddI32Array(absl::string_view key, const std::vector<int32_t>& v) {
  return AddArray(key, GgufValueType::kInt32, v.size(), v.data(), v.size() * sizeof(int32_t));
}
GgufBuilder& GgufBuilder::AddU32Array(absl::string_view key, const std::vector<uint32_t>& v) {
  return AddArray(key, GgufValueType::kUint32, v.size(), v.data(), v.size() * sizeof(uint32_t));
}
GgufBuilder& GgufBuilder::AddI64Array(absl::string_view key, const std::vector<int64_t>& v) {
  return AddArray(key, GgufValueType::kInt64, v.size(), v.data(), v.size() * sizeof(int64_t));
}
GgufBuilder& GgufBuilder::AddF32Array(absl::string_view key, const std::vector<float>& v) {
  return AddArray(key, GgufValueType::kFloat32, v.size(), v.data(), v.size() * sizeof(float));
}
GgufBuilder& GgufBuilder::AddF64Array(absl::string_view key, const std::vector<double>& v) {
  return AddArray(key, GgufValueType::kFloat64, v.size(), v.data(), v.size() * sizeof(double));
}

GgufBuilder& GgufBuilder::SetAlignment(uint32_t alignment) {
  AddU32("general.alignment", alignment);
  return set_layout_alignment(alignment);
}

GgufBuilder& GgufBuilder::AddRawKv(absl::string_view key, uint32_t type,
                                   absl::string_view payload) {
  std::string kv;
  PutString(&kv, key);
  PutU32(&kv, type);
  kv.append(payload.data(), payload.size());
  kvs_.push_back(std::move(kv));
  return *this;
}

GgufBuilder& GgufBuilder::AddRawKvBytes(absl::string_view bytes) {
  kvs_.emplace_back(bytes.data(), bytes.size());
  return *this;
}

GgufBuilder& GgufBuilder::AddTensor(absl::string_view name, kernels::DType dtype,
                                    const std::vector<int64_t>& dims, absl::string_view data) {
  GgufTensorSpec spec;
  spec.name = std::string(name);
  spec.type = static_cast<uint32_t>(dtype);
  for (int64_t d : dims) spec.dims.push_back(static_cast<uint64_t>(d));
  if (data.empty()) {
    // An impossible shape gets no data; the reader rejects it before data matters.
    spec.data.assign(static_cast<size_t>(std::max<int64_t>(TensorBytes(dtype, dims), 0)), '\0');
  } else {
    spec.data = std::string(data);
  }
  return AddRawTensor(std::move(spec));
}

GgufBuilder& GgufBuilder::AddTensorF32(absl::string_view name, const std::vector<int64_t>& dims,
                                       const std::vector<float>& values) {
  return AddTensor(name, kernels::DType::kF32, dims, EncodeF32(values));
}

GgufBuilder& GgufBuilder::AddRawTensor(GgufTensorSpec spec) {
  tensors_.push_back(std::move(spec));
  return *this;
}

GgufBuilder& GgufBuilder::set_magic(uint32_t magic) {
  magic_ = magic;
  return *this;
}
GgufBuilder& GgufBuilder::set_version(uint32_t version) {
  version_ = version;
  return *this;
}
GgufBuilder& GgufBuilder::set_tensor_count(uint64_t n) {
  tensor_count_ = n;
  return *this;
}
GgufBuilder& GgufBuilder::set_kv_count(uint64_t n) {
  kv_count_ = n;
  return *this;
}
GgufBuilder& GgufBuilder::set_layout_alignment(uint64_t alignment) {
  alignment_ = alignment;
  return *this;
}
GgufBuilder& GgufBuilder::set_pad_tail(bool pad) {
  pad_tail_ = pad;
  return *this;
}
GgufBuilder& GgufBuilder::set_trailing_bytes(size_t n) {
  trailing_bytes_ = n;
  return *this;
}
GgufBuilder& GgufBuilder::set_truncate_at(size_t n) {
  truncate_at_ = n;
  return *this;
}

std::string GgufBuilder::Build(GgufLayout* layout) const {
  // A non-power-of-two layout alignment would make AlignUp meaningless; tests
  // wanting a bad alignment write the key by hand and keep the layout at 32.
  const uint64_t align =
      (alignment_ != 0 && (alignment_ & (alignment_ - 1)) == 0) ? alignment_ : 32;

  // Offsets first: tensor infos carry them, and they precede the data.
  std::vector<uint64_t> offsets;
  uint64_t cursor = 0;
  for (const GgufTensorSpec& t : tensors_) {
    const uint64_t off = t.offset.value_or(AlignUp(cursor, align));
    offsets.push_back(off);
    if (off <= kMaxWrittenEnd && t.data.size() <= kMaxWrittenEnd - off) {
      cursor = std::max(cursor, off + t.data.size());
    }
  }

  std::string out;
  PutU32(&out, magic_);
  PutU32(&out, version_);
  PutU64(&out, tensor_count_.value_or(tensors_.size()));
  PutU64(&out, kv_count_.value_or(kvs_.size()));
  for (const std::string& kv : kvs_) out += kv;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const GgufTensorSpec& t = tensors_[i];
    PutU64(&out, t.name_length.value_or(t.name.size()));
    out += t.name;
    PutU32(&out, t.n_dims.value_or(static_cast<uint32_t>(t.dims.size())));
    for (uint64_t d : t.dims) PutU64(&out, d);
    PutU32(&out, t.type);
    PutU64(&out, offsets[i]);
  }

  const size_t data_start = AlignUp(out.size(), align);
  if (!tensors_.empty() || pad_tail_) out.resize(data_start, '\0');
  std::string data(cursor, '\0');
  std::vector<uint64_t> written(tensors_.size(), 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const std::string& d = tensors_[i].data;
    if (offsets[i] <= kMaxWrittenEnd && d.size() <= kMaxWrittenEnd - offsets[i]) {
      std::memcpy(data.data() + offsets[i], d.data(), d.size());
      written[i] = d.size();
    }
  }
  if (pad_tail_) data.resize(AlignUp(data.size(), align), '\0');
  out += data;
  out.append(trailing_bytes_, '\xAB');

  if (layout != nullptr) {
    layout->data_start = data_start;
    layout->offsets = offsets;
    layout->data_bytes = written;
    layout->size = out.size();
  }
  if (truncate_at_.has_value() && *truncate_at_ < out.size()) out.resize(*truncate_at_);
  return out;
}

}  // namespace chai::engine::testing
