// Reader for Hugging Face safetensors files and sharded checkpoints
// (model.safetensors.index.json), hostile-input safe.
//
// File layout: u64 little-endian N, then an N-byte JSON object (the header),
// then the data section. The header maps each tensor name to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// data section) and may hold a "__metadata__" object of string -> string.
//
// Everything read from a file is validated before use (DESIGN.md section 7):
// header length over a cap or beyond the file; non-JSON, non-object or
// duplicate-key headers; entries missing a field, with unknown fields or wrong
// types; unknown dtypes; negative, non-integer or too many dims; element or byte counts that
// overflow; spans with begin > end, outside the data section, overlapping,
// leaving gaps (the format requires the data section to be fully and exactly
// covered, as the reference Rust implementation enforces) or whose size is not
// n_elements * dtype size. Errors are absl::Status (INVALID_ARGUMENT, DATA_LOSS
// for truncation, NOT_FOUND for missing files), never a crash, an abort or an
// allocation proportional to a number read from the file. The JSON is streamed
// (SAX) into exactly the fields a valid header has, and the first value out of
// place stops the parse, so a hostile header cannot make the parser hold more
// than the limits below allow (no DOM of an arbitrary 100 MB document).
//
// Ownership: SafetensorsFile owns its mapping (or borrows the caller's buffer
// for FromBuffer); tensor data pointers live as long as the file object.
// SafetensorsCheckpoint shares ownership of its shards.
// Thread-safety: immutable after construction; const methods are thread-safe.
#ifndef CHAI_ENGINE_MODEL_SAFETENSORS_H_
#define CHAI_ENGINE_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/model/mapped_file.h"
#include "kernels/dtype.h"

namespace chai::engine {

struct SafetensorsLimits {
  // The reference implementation's cap (MAX_HEADER_SIZE = 100'000'000).
  uint64_t max_header_bytes = 100'000'000;
  // Real files hold at most a few thousand; each kept entry costs ~200 bytes,
  // which bounds the memory a hostile header can claim.
  uint64_t max_tensors = 1 << 18;
  uint64_t max_dims = 8;
  uint64_t max_name_bytes = 1024;
};

struct SafetensorsTensor {
  std::string name;
  std::string dtype;  // as spelled in the file: "F32", "BF16", "I64", ...
  int64_t dtype_bytes = 0;
  // The kernel type for F32/F16/BF16; nullopt for types the engine cannot
  // compute with (integers, F64, F8), which are parsed but not loadable.
  std::optional<kernels::DType> kernel_dtype;
  std::vector<int64_t> shape;  // row-major, outermost first (PyTorch order)
  int64_t n_elements = 0;
  uint64_t begin = 0;  // [begin, end) relative to the data section
  uint64_t end = 0;
  const uint8_t* data = nullptr;  // into the mapping / buffer
};

class SafetensorsFile {
 public:
  // Maps `path` read-only and parses it. NOT_FOUND when it cannot be opened.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::string& path, const SafetensorsLimits& limits = {});
  // Parses bytes the caller owns (tests, fuzzing); `bytes` must outlive the result.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> FromBuffer(
      absl::string_view bytes, const SafetensorsLimits& limits = {});

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Tensors in data-section order (ascending begin).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // nullptr if no tensor has that name.
  const SafetensorsTensor* Find(absl::string_view name) const;
  const absl::flat_hash_map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  absl::Status Parse(const SafetensorsLimits& limits);

  absl::string_view bytes_;
  std::unique_ptr<MappedFile> map_;  // null for FromBuffer
  std::vector<SafetensorsTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
  absl::flat_hash_map<std::string, std::string> metadata_;
};

// Size in bytes of one element of a safetensors dtype name, or nullopt for a
// name the format does not define.
std::optional<int64_t> SafetensorsDTypeBytes(absl::string_view dtype);

// Parses a model.safetensors.index.json: returns weight_map (tensor name ->
// shard file name). Shard names must be plain file names (no '/', '\\', no
// "..", not empty); at most 65536 distinct shards.
absl::StatusOr<absl::flat_hash_map<std::string, std::string>> ParseSafetensorsIndex(
    absl::string_view json_text);

// A checkpoint: one file, or the shards named by an index. Every tensor name
// is unique across shards; with an index, every tensor the index lists is in
// the shard it names and every shard tensor is listed.
class SafetensorsCheckpoint {
 public:
  // `path` is a .safetensors file, a model.safetensors.index.json, or a
  // directory holding model.safetensors or model.safetensors.index.json.
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(
      const std::string& path, const SafetensorsLimits& limits = {});
  // Wraps already-parsed shards (tests); names must be unique across them.
  static absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> FromShards(
      std::vector<std::shared_ptr<const SafetensorsFile>> shards);

  const SafetensorsTensor* Find(absl::string_view name) const;
  // Every tensor name, in no particular order.
  std::vector<absl::string_view> Names() const;
  const std::vector<std::shared_ptr<const SafetensorsFile>>& shards() const { return shards_; }

 private:
  SafetensorsCheckpoint() = default;
  absl::Status Index();

  std::vector<std::shared_ptr<const SafetensorsFile>> shards_;
  absl::flat_hash_map<std::string, const SafetensorsTensor*> tensors_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_SAFETENSORS_H_
