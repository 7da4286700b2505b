// Reader for GGUF v3 model files (llama.cpp's format), hostile-input safe.
//
// Every count, length, offset and type read from the file is validated
// before use (DESIGN.md section 7): truncation, bad magic/version, strings or
// arrays longer than the file or a cap, duplicate or empty keys and tensor
// names, unknown value or tensor types, non-power-of-two alignment, n_dims > 4,
// overflowing element/byte counts, tensor data outside the file, overlapping
// or misaligned. Any violation is an absl::Status error (INVALID_ARGUMENT, or
// DATA_LOSS for truncation and data beyond the end), never a crash, an abort
// or a huge allocation.
//
// Policies beyond the bare format: general.alignment must be a uint32 power of
// two; bool values must be 0 or 1 (and are not integers); between, before and
// after tensors only alignment padding (< alignment bytes) is allowed, and a
// file may end right after its last tensor without padding.
//
// Ownership: GgufFile owns the mapping (or borrows the caller's buffer for
// FromBuffer); string_views and tensor data pointers it hands out live as long
// as the GgufFile (and, for FromBuffer, the caller's buffer).
// Thread-safety: immutable after construction; const methods are thread-safe.
#ifndef CHAI_ENGINE_MODEL_GGUF_H_
#define CHAI_ENGINE_MODEL_GGUF_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/model/mapped_file.h"
#include "kernels/dtype.h"

namespace chai::engine {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// Sanity caps: values beyond these are rejected as hostile, whatever the file size.
struct GgufLimits {
  uint64_t max_string_bytes = 1 << 20;  // one metadata string
  uint64_t max_array_elems = 1 << 24;   // one metadata array
  uint64_t max_kv_count = 1 << 16;
  uint64_t max_tensor_count = 1 << 16;
  uint64_t max_tensor_name_bytes = 256;
};

struct GgufTensorInfo {
  std::string name;
  kernels::DType dtype = kernels::DType::kF32;
  // GGML order: dims[0] is the fastest-varying (row length).
  std::vector<int64_t> dims;
  int64_t n_elements = 0;
  uint64_t offset = 0;  // relative to the data section
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
};

class GgufFile {
 public:
  // Maps `path` read-only and parses it.
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path,
                                                        const GgufLimits& limits = {});
  // Parses bytes the caller owns (tests, fuzzing). `bytes` must outlive the result.
  static absl::StatusOr<std::unique_ptr<GgufFile>> FromBuffer(absl::string_view bytes,
                                                              const GgufLimits& limits = {});
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }

  bool Has(absl::string_view key) const;
  // Typed metadata getters: NOT_FOUND if absent, INVALID_ARGUMENT if the stored
  // type does not convert (integers convert between widths when the value fits;
  // GetFloat accepts float32/float64).
  absl::StatusOr<absl::string_view> GetString(absl::string_view key) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;
  absl::StatusOr<double> GetFloat(absl::string_view key) const;
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::vector<absl::string_view>> GetStringArray(absl::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(absl::string_view key) const;
  // Type of a key's value (and of its elements for arrays).
  absl::StatusOr<GgufValueType> GetType(absl::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr if no tensor has that name.
  const GgufTensorInfo* FindTensor(absl::string_view name) const;

 private:
  struct Value {
    GgufValueType type;
    GgufValueType elem_type;  // for arrays
    uint64_t count;           // for arrays
    const uint8_t* ptr;       // raw bytes of the value (after type tag)
  };
  GgufFile() = default;
  absl::Status Parse(const GgufLimits& limits);
  absl::StatusOr<Value> Find(absl::string_view key) const;

  absl::string_view bytes_;
  std::unique_ptr<MappedFile> map_;  // null for FromBuffer
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  absl::flat_hash_map<std::string, Value> kv_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_GGUF_H_
