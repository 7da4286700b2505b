#include "engine/model/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chai::engine {
namespace {

using Json = nlohmann::json;

// Elements of one tensor; keeps byte counts far from int64 overflow.
constexpr uint64_t kMaxElements = uint64_t{1} << 48;
constexpr uint64_t kMaxIndexBytes = 64 << 20;  // real ones: < 10 MB
constexpr size_t kMaxShards = 1 << 16;

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors: ", what));
}

bool IsPlainFileName(absl::string_view s);

// One header entry as the SAX handler collects it, before validation.
struct RawEntry {
  std::string name;
  std::string dtype;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> offsets;
  bool has_dtype = false, has_shape = false, has_offsets = false;
};

// Common SAX plumbing: every callback the expected structure does not allow
// stops the parse with a message. Streaming instead of building a DOM keeps
// memory proportional to what a valid file needs (nlohmann's DOM of a hostile
// 100 MB header costs gigabytes).
class StrictSax {
 public:
  bool binary(Json::binary_t&) { return Fail("unexpected binary value"); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return Fail(absl::StrCat(what_, " is not valid JSON"));
  }
  const std::string& error() const { return error_; }

 protected:
  explicit StrictSax(std::string what) : what_(std::move(what)) {}
  bool Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  std::string what_;
  std::string error_;
};

class HeaderSax : public StrictSax {
 public:
  explicit HeaderSax(const SafetensorsLimits& limits) : StrictSax("header"), limits_(limits) {}

  bool null() { return Unexpected(); }
  bool boolean(bool) { return Unexpected(); }
  bool number_integer(Json::number_integer_t) { return Unexpected(); }  // negative
  bool number_float(Json::number_float_t, const Json::string_t&) { return Unexpected(); }
  bool number_unsigned(Json::number_unsigned_t v) {
    if (state_ == State::kShapeElem) {
      if (entry_.shape.size() >= limits_.max_dims) {
        return Fail(absl::StrCat(Where(), " has more than ", limits_.max_dims, " dims"));
      }
      entry_.shape.push_back(v);
      return true;
    }
    if (state_ == State::kOffsetsElem && entry_.offsets.size() < 2) {
      entry_.offsets.push_back(v);
      return true;
    }
    return Unexpected();
  }
  bool string(Json::string_t& v) {
    if (state_ == State::kDtypeValue) {
      entry_.dtype = std::move(v);
      state_ = State::kEntryKey;
      return true;
    }
    if (state_ == State::kMetaValue) {
      metadata.emplace(std::move(meta_key_), std::move(v));
      state_ = State::kMetaKey;
      return true;
    }
    return Unexpected();
  }
  bool start_object(std::size_t) {
    switch (state_) {
      case State::kStart:
        state_ = State::kTopKey;
        return true;
      case State::kEntryValue:
        state_ = State::kEntryKey;
        return true;
      case State::kMetadataValue:
        state_ = State::kMetaKey;
        return true;
      default:
        return Unexpected();
    }
  }
  bool key(Json::string_t& k) {
    if (state_ == State::kTopKey) {
      if (!names_.insert(k).second) return Duplicate(k);
      if (k == "__metadata__") {
        state_ = State::kMetadataValue;
        return true;
      }
      if (k.empty()) return Fail("empty tensor name");
      if (k.size() > limits_.max_name_bytes) {
        return Fail(absl::StrCat("tensor name longer than ", limits_.max_name_bytes, " bytes"));
      }
      if (entries.size() >= limits_.max_tensors) {
        return Fail(absl::StrCat("header lists more than ", limits_.max_tensors, " tensors"));
      }
      entry_ = RawEntry{};
      entry_.name = k;
      state_ = State::kEntryValue;
      return true;
    }
    if (state_ == State::kEntryKey) {
      bool* seen = k == "dtype"          ? &entry_.has_dtype
                   : k == "shape"        ? &entry_.has_shape
                   : k == "data_offsets" ? &entry_.has_offsets
                                         : nullptr;
      if (seen == nullptr) {
        return Fail(absl::StrCat(Where(), " has unknown field '", k.substr(0, 64), "'"));
      }
      if (*seen) return Duplicate(k);
      *seen = true;
      state_ = k == "dtype"   ? State::kDtypeValue
               : k == "shape" ? State::kShapeValue
                              : State::kOffsetsValue;
      return true;
    }
    if (state_ == State::kMetaKey) {
      if (metadata.contains(k)) return Duplicate(k);
      if (metadata.size() >= kMaxMetadataEntries) return Fail("__metadata__ has too many entries");
      meta_key_ = k;
      state_ = State::kMetaValue;
      return true;
    }
    return Unexpected();
  }
  bool start_array(std::size_t) {
    if (state_ == State::kShapeValue) {
      state_ = State::kShapeElem;
      return true;
    }
    if (state_ == State::kOffsetsValue) {
      state_ = State::kOffsetsElem;
      return true;
    }
    return Unexpected();
  }
  bool end_array() {
    if (state_ == State::kOffsetsElem && entry_.offsets.size() != 2) return Unexpected();
    if (state_ != State::kShapeElem && state_ != State::kOffsetsElem) return Unexpected();
    state_ = State::kEntryKey;
    return true;
  }
  bool end_object() {
    switch (state_) {
      case State::kEntryKey:
        if (!entry_.has_dtype || !entry_.has_shape || !entry_.has_offsets) {
          return Fail(absl::StrCat(Where(), " needs dtype, shape and data_offsets"));
        }
        entries.push_back(std::move(entry_));
        state_ = State::kTopKey;
        return true;
      case State::kMetaKey:
        state_ = State::kTopKey;
        return true;
      case State::kTopKey:
        state_ = State::kDone;
        return true;
      default:
        return Unexpected();
    }
  }

  std::vector<RawEntry> entries;
  absl::flat_hash_map<std::string, std::string> metadata;

 private:
  static constexpr size_t kMaxMetadataEntries = 1 << 16;
  enum class State {
    kStart,
    kTopKey,
    kEntryValue,
    kEntryKey,
    kDtypeValue,
    kShapeValue,
    kShapeElem,
    kOffsetsValue,
    kOffsetsElem,
    kMetadataValue,
    kMetaKey,
    kMetaValue,
    kDone
  };

  std::string Where() const { return absl::StrCat("tensor '", entry_.name.substr(0, 200), "'"); }
  bool Duplicate(const std::string& k) {
    return Fail(absl::StrCat("header has duplicate key '", k.substr(0, 200), "'"));
  }
  // A value of the wrong JSON type for where it appears.
  bool Unexpected() {
    switch (state_) {
      case State::kEntryValue:
        return Fail(absl::StrCat(Where(), " is not an object"));
      case State::kEntryKey:
        return Fail(absl::StrCat(Where(), " is malformed"));
      case State::kDtypeValue:
        return Fail(absl::StrCat(Where(), " dtype is not a string"));
      case State::kShapeValue:
        return Fail(absl::StrCat(Where(), " shape is not an array"));
      case State::kShapeElem:
        return Fail(absl::StrCat(Where(), " shape has a dim that is not a non-negative integer"));
      case State::kOffsetsValue:
      case State::kOffsetsElem:
        return Fail(absl::StrCat(Where(), " data_offsets must be [begin, end] integers"));
      case State::kMetadataValue:
        return Fail("__metadata__ is not an object");
      case State::kMetaValue:
        return Fail(
            absl::StrCat("__metadata__ value of '", meta_key_.substr(0, 200), "' is not a string"));
      default:
        return Fail("header is not a JSON object of tensor entries");
    }
  }

  const SafetensorsLimits& limits_;
  State state_ = State::kStart;
  RawEntry entry_;
  std::string meta_key_;
  absl::flat_hash_set<std::string> names_;
};

// Turns a collected entry into a tensor, checking dtype, element count and
// span against the data section.
absl::Status CheckEntry(RawEntry& e, uint64_t data_size, SafetensorsTensor* t) {
  const std::string where = absl::StrCat("tensor '", e.name.substr(0, 200), "'");
  std::optional<int64_t> elem_bytes = SafetensorsDTypeBytes(e.dtype);
  if (!elem_bytes) {
    return Invalid(absl::StrCat(where, " has unknown dtype '", e.dtype.substr(0, 32), "'"));
  }
  t->name = std::move(e.name);
  t->dtype = std::move(e.dtype);
  t->dtype_bytes = *elem_bytes;
  if (t->dtype == "F32") t->kernel_dtype = kernels::DType::kF32;
  if (t->dtype == "F16") t->kernel_dtype = kernels::DType::kF16;
  if (t->dtype == "BF16") t->kernel_dtype = kernels::DType::kBF16;
  uint64_t n = 1;
  for (uint64_t dim : e.shape) {
    if (dim > kMaxElements || __builtin_mul_overflow(n, dim, &n) || n > kMaxElements) {
      return Invalid(absl::StrCat(where, " element count overflows"));
    }
    t->shape.push_back(static_cast<int64_t>(dim));
  }
  t->n_elements = static_cast<int64_t>(n);
  const uint64_t begin = e.offsets[0], end = e.offsets[1];
  if (begin > end) return Invalid(absl::StrCat(where, " data_offsets begin > end"));
  if (end > data_size) {
    return absl::DataLossError(absl::StrCat("safetensors: ", where, " data [", begin, ", ", end,
                                            ") is outside the data section of ", data_size,
                                            " bytes"));
  }
  // n <= 2^48 and dtype_bytes <= 8: no overflow.
  if (end - begin != n * static_cast<uint64_t>(t->dtype_bytes)) {
    return Invalid(absl::StrCat(where, " spans ", end - begin, " bytes, but ", n, " x ", t->dtype,
                                " takes ", n * t->dtype_bytes));
  }
  t->begin = begin;
  t->end = end;
  return absl::OkStatus();
}

// model.safetensors.index.json: {"metadata": <anything>, "weight_map":
// {tensor: shard}}; other top-level values are skipped without being stored.
class IndexSax : public StrictSax {
 public:
  IndexSax() : StrictSax("index") {}

  bool null() { return Scalar(); }
  bool boolean(bool) { return Scalar(); }
  bool number_integer(Json::number_integer_t) { return Scalar(); }
  bool number_unsigned(Json::number_unsigned_t) { return Scalar(); }
  bool number_float(Json::number_float_t, const Json::string_t&) { return Scalar(); }
  bool string(Json::string_t& v) {
    if (state_ != State::kMapValue) return Scalar();
    if (!IsPlainFileName(v)) {
      return Fail(
          absl::StrCat("index shard name '", v.substr(0, 200), "' is not a plain file name"));
    }
    shards_.insert(v);
    if (shards_.size() > kMaxShards) return Fail("index names too many shards");
    weight_map.emplace(std::move(key_), std::move(v));
    state_ = State::kMapKey;
    return true;
  }
  bool start_object(std::size_t) { return Open(true); }
  bool start_array(std::size_t) { return Open(false); }
  bool key(Json::string_t& k) {
    if (state_ == State::kSkip) return true;
    if (state_ == State::kTopKey) {
      if (!top_keys_.insert(k).second) return Duplicate(k);
      if (k == "weight_map") {
        state_ = State::kMapObject;
      } else {
        state_ = State::kSkip;
        skip_depth_ = 0;
      }
      return true;
    }
    // kMapKey
    if (k.empty()) return Fail("index names an empty tensor");
    if (weight_map.contains(k)) return Duplicate(k);
    if (weight_map.size() >= kMaxIndexEntries) return Fail("index lists too many tensors");
    key_ = k;
    state_ = State::kMapValue;
    return true;
  }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool has_weight_map = false;
  absl::flat_hash_map<std::string, std::string> weight_map;

 private:
  static constexpr size_t kMaxIndexEntries = 1 << 20;
  enum class State { kStart, kTopKey, kMapObject, kMapKey, kMapValue, kSkip, kDone };

  bool Duplicate(const std::string& k) {
    return Fail(absl::StrCat("index has duplicate key '", k.substr(0, 200), "'"));
  }
  bool WrongType() {
    if (state_ == State::kStart) return Fail("index is not a JSON object");
    if (state_ == State::kMapObject) return Fail("index has no weight_map object");
    return Fail(absl::StrCat("index entry '", key_.substr(0, 200), "' is not a string"));
  }
  bool Scalar() {
    if (state_ == State::kSkip) {
      if (skip_depth_ == 0) state_ = State::kTopKey;
      return true;
    }
    return WrongType();
  }
  bool Open(bool object) {
    if (state_ == State::kSkip) {
      ++skip_depth_;
      return true;
    }
    if (object && state_ == State::kStart) {
      state_ = State::kTopKey;
      return true;
    }
    if (object && state_ == State::kMapObject) {
      has_weight_map = true;
      state_ = State::kMapKey;
      return true;
    }
    return WrongType();
  }
  bool Close() {
    if (state_ == State::kSkip) {
      if (--skip_depth_ == 0) state_ = State::kTopKey;
      return true;
    }
    state_ = state_ == State::kMapKey ? State::kTopKey : State::kDone;
    return true;
  }

  State state_ = State::kStart;
  int64_t skip_depth_ = 0;
  std::string key_;
  absl::flat_hash_set<std::string> top_keys_;
  absl::flat_hash_set<std::string> shards_;
};

bool IsPlainFileName(absl::string_view s) {
  return !s.empty() && s.size() <= 255 && !absl::StrContains(s, '/') &&
         !absl::StrContains(s, '\\') && !absl::StrContains(s, "..") &&
         !absl::StrContains(s, absl::string_view("\0", 1));
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string DirName(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, uint64_t cap) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > cap) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is larger than ", cap, " bytes"));
  }
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return text;
}

}  // namespace

std::optional<int64_t> SafetensorsDTypeBytes(absl::string_view dtype) {
  static constexpr std::pair<const char*, int64_t> kTypes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  for (const auto& [name, bytes] : kTypes) {
    if (dtype == name) return bytes;
  }
  return std::nullopt;
}

SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(
    const std::string& path, const SafetensorsLimits& limits) {
  absl::StatusOr<std::unique_ptr<MappedFile>> map = MappedFile::Open(path);
  if (!map.ok()) return map.status();
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->bytes_ = (*map)->bytes();
  file->map_ = *std::move(map);
  if (absl::Status s = file->Parse(limits); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBuffer(
    absl::string_view bytes, const SafetensorsLimits& limits) {
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->bytes_ = bytes;
  if (absl::Status s = file->Parse(limits); !s.ok()) return s;
  return file;
}

absl::Status SafetensorsFile::Parse(const SafetensorsLimits& limits) {
  if (bytes_.size() < 8) return absl::DataLossError("safetensors: file shorter than 8 bytes");
  uint64_t header_len;
  std::memcpy(&header_len, bytes_.data(), 8);  // little-endian hosts only (x86-64, arm64)
  if (header_len > limits.max_header_bytes) {
    return Invalid(absl::StrCat("header length ", header_len, " is over the cap of ",
                                limits.max_header_bytes, " bytes"));
  }
  if (header_len > bytes_.size() - 8) {
    return absl::DataLossError(absl::StrCat("safetensors: header length ", header_len,
                                            " runs past the end of the ", bytes_.size(),
                                            "-byte file"));
  }
  const absl::string_view header = bytes_.substr(8, header_len);
  if (header.empty() || header[0] != '{') return Invalid("header does not start with '{'");
  HeaderSax sax(limits);
  if (!Json::sax_parse(header.begin(), header.end(), &sax)) return Invalid(sax.error());
  const uint64_t data_size = bytes_.size() - 8 - header_len;
  const uint8_t* data = reinterpret_cast<const uint8_t*>(bytes_.data()) + 8 + header_len;
  metadata_ = std::move(sax.metadata);
  tensors_.reserve(sax.entries.size());
  for (RawEntry& e : sax.entries) {
    SafetensorsTensor t;
    if (absl::Status s = CheckEntry(e, data_size, &t); !s.ok()) return s;
    tensors_.push_back(std::move(t));
  }

  // The spans must tile the data section exactly: sorted by (begin, end),
  // each starts where the previous ended and the last ends at data_size.
  std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    SafetensorsTensor& t = tensors_[i];
    if (t.begin < pos) {
      return Invalid(absl::StrCat("tensor '", t.name.substr(0, 200), "' overlaps tensor '",
                                  tensors_[i - 1].name.substr(0, 200), "'"));
    }
    if (t.begin > pos) {
      return Invalid(absl::StrCat("gap of ", t.begin - pos, " bytes before tensor '",
                                  t.name.substr(0, 200), "'"));
    }
    pos = t.end;
    t.data = data + t.begin;
    index_[t.name] = i;
  }
  if (pos != data_size) {
    return Invalid(
        absl::StrCat("data section has ", data_size - pos, " bytes not covered by any tensor"));
  }
  return absl::OkStatus();
}

const SafetensorsTensor* SafetensorsFile::Find(absl::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseSafetensorsIndex(
    absl::string_view json_text) {
  IndexSax sax;
  if (!Json::sax_parse(json_text.begin(), json_text.end(), &sax)) return Invalid(sax.error());
  if (!sax.has_weight_map) return Invalid("index has no weight_map object");
  if (sax.weight_map.empty()) return Invalid("index weight_map is empty");
  return std::move(sax.weight_map);
}

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::FromShards(
    std::vector<std::shared_ptr<const SafetensorsFile>> shards) {
  auto ckpt = std::unique_ptr<SafetensorsCheckpoint>(new SafetensorsCheckpoint());
  ckpt->shards_ = std::move(shards);
  if (absl::Status s = ckpt->Index(); !s.ok()) return s;
  return ckpt;
}

absl::Status SafetensorsCheckpoint::Index() {
  for (const auto& shard : shards_) {
    for (const SafetensorsTensor& t : shard->tensors()) {
      if (!tensors_.emplace(t.name, &t).second) {
        return Invalid(
            absl::StrCat("tensor '", t.name.substr(0, 200), "' appears in more than one shard"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(
    const std::string& path, const SafetensorsLimits& limits) {
  std::string file = path;
  if (IsDirectory(path)) {
    const std::string single = path + "/model.safetensors";
    const std::string index = path + "/model.safetensors.index.json";
    if (Exists(single)) {
      file = single;
    } else if (Exists(index)) {
      file = index;
    } else {
      return absl::NotFoundError(
          absl::StrCat(path, " has neither model.safetensors nor model.safetensors.index.json"));
    }
  }
  if (!absl::EndsWith(file, ".index.json")) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(file, limits);
    if (!f.ok()) return f.status();
    std::vector<std::shared_ptr<const SafetensorsFile>> shards;
    shards.push_back(*std::move(f));
    return FromShards(std::move(shards));
  }

  absl::StatusOr<std::string> text = ReadSmallFile(file, kMaxIndexBytes);
  if (!text.ok()) return text.status();
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> map = ParseSafetensorsIndex(*text);
  if (!map.ok())
    return absl::Status(map.status().code(), absl::StrCat(file, ": ", map.status().message()));
  std::vector<std::string> names;
  for (const auto& [tensor, shard] : *map) names.push_back(shard);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  const std::string dir = DirName(file);
  std::vector<std::shared_ptr<const SafetensorsFile>> shards;
  absl::flat_hash_map<std::string, const SafetensorsFile*> by_name;
  for (const std::string& name : names) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f =
        SafetensorsFile::Open(absl::StrCat(dir, "/", name), limits);
    if (!f.ok()) {
      return absl::Status(f.status().code(),
                          absl::StrCat("shard named by ", file, ": ", f.status().message()));
    }
    by_name[name] = f->get();
    shards.push_back(*std::move(f));
  }
  absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> ckpt = FromShards(std::move(shards));
  if (!ckpt.ok()) return ckpt.status();
  for (const auto& [tensor, shard] : *map) {
    if (by_name[shard]->Find(tensor) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": tensor '", tensor.substr(0, 200), "' is not in shard ", shard));
    }
  }
  for (const auto& [name, t] : (*ckpt)->tensors_) {
    if (!map->contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": shard tensor '", name.substr(0, 200),
                                                     "' is not listed in the index"));
    }
  }
  return ckpt;
}

const SafetensorsTensor* SafetensorsCheckpoint::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : it->second;
}

std::vector<absl::string_view> SafetensorsCheckpoint::Names() const {
  std::vector<absl::string_view> out;
  out.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) out.push_back(name);
  return out;
}

}  // namespace chai::engine
