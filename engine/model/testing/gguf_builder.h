// Test-only writer of GGUF v3 files in memory.
//
// Two uses:
//   1. Small VALID files for loader tests: add metadata and tensors, call
//      Build(). Tensor offsets, alignment padding and the data section are
//      laid out the way llama.cpp and gguf-py lay them out (each tensor
//      starts at the next multiple of the alignment, the file ends padded to
//      the alignment).
//   2. MALFORMED files for the reader's hostile-input tests: every field the
//      reader validates can be overridden (magic, version, counts, type tags,
//      string lengths, n_dims, dims, offsets, alignment, trailing bytes,
//      truncation), so each test builds exactly the bad bytes it needs.
//
// Example (a valid two-tensor LLaMA-ish file):
//   GgufBuilder b;
//   b.AddString("general.architecture", "llama").AddU32("llama.block_count", 1);
//   b.AddStringArray("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
//   b.AddTensor("token_embd.weight", kernels::DType::kF32, {4, 3});  // zero data
//   b.AddTensorF32("output_norm.weight", {4}, {1, 1, 1, 1});
//   std::string bytes = b.Build();
//
// Ownership: the builder owns copies of everything added; Build() returns a
// fresh string each call. Thread-safety: none (plain value type).
#ifndef CHAI_ENGINE_MODEL_TESTING_GGUF_BUILDER_H_
#define CHAI_ENGINE_MODEL_TESTING_GGUF_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/model/gguf.h"
#include "kernels/dtype.h"

namespace chai::engine::testing {

// Little-endian encoders, for hand-assembling raw payloads (AddRawKv).
void PutU32(std::string* out, uint32_t v);
void PutU64(std::string* out, uint64_t v);
// u64 length followed by the bytes, as GGUF stores strings.
void PutString(std::string* out, absl::string_view s);
std::string EncodeF32(const std::vector<float>& values);

// Size in bytes of a tensor of `dtype` with GGML-order `dims`, or -1 when
// dims[0] is not a multiple of the type's block size (or it overflows).
int64_t TensorBytes(kernels::DType dtype, const std::vector<int64_t>& dims);

// Everything about one tensor-info record, raw enough to express invalid ones.
struct GgufTensorSpec {
  std::string name;
  uint32_t type = 0;                    // GGML type id; need not be a known one
  std::vector<uint64_t> dims;           // written as-is, GGML order
  std::optional<uint32_t> n_dims;       // written instead of dims.size()
  std::optional<uint64_t> name_length;  // written instead of name.size()
  // nullopt: next aligned offset after the previous auto-placed tensor.
  // Explicit offsets are recorded verbatim; the data is written there only
  // if offset + data.size() <= 1 MiB (so offsets far outside stay outside).
  std::optional<uint64_t> offset;
  std::string data;  // raw bytes written at the tensor's offset
};

// Byte positions in the most recent Build() output (before truncation).
struct GgufLayout {
  size_t data_start = 0;             // first byte of the data section
  std::vector<uint64_t> offsets;     // per tensor, relative to data_start
  std::vector<uint64_t> data_bytes;  // per tensor, bytes actually written
  size_t size = 0;                   // total bytes
};

class GgufBuilder {
 public:
  GgufBuilder() = default;

  // ---- metadata, written in call order ----
  GgufBuilder& AddU8(absl::string_view key, uint8_t v);
  GgufBuilder& AddI8(absl::string_view key, int8_t v);
  GgufBuilder& AddU16(absl::string_view key, uint16_t v);
  GgufBuilder& AddI16(absl::string_view key, int16_t v);
  GgufBuilder& AddU32(absl::string_view key, uint32_t v);
  GgufBuilder& AddI32(absl::string_view key, int32_t v);
  GgufBuilder& AddU64(absl::string_view key, uint64_t v);
  GgufBuilder& AddI64(absl::string_view key, int64_t v);
  GgufBuilder& AddF32(absl::string_view key, float v);
  GgufBuilder& AddF64(absl::string_view key, double v);
  GgufBuilder& AddBool(absl::string_view key, bool v);
  GgufBuilder& AddString(absl::string_view key, absl::string_view v);
  GgufBuilder& AddStringArray(absl::string_view key, const std::vector<std::string>& v);
  GgufBuilder& AddI32Array(absl::string_view key, const std::vector<int32_t>& v);
  GgufBuilder& AddU32Array(absl::string_view key, const std::vector<uint32_t>& v);
  GgufBuilder& AddI64Array(absl::string_view key, const std::vector<int64_t>& v);
  GgufBuilder& AddF32Array(absl::string_view key, const std::vector<float>& v);
  GgufBuilder& AddF64Array(absl::string_view key, const std::vector<double>& v);
  // Writes "general.alignment" (u32) AND lays the data section out with it.
  GgufBuilder& SetAlignment(uint32_t alignment);

  // Raw metadata entry: the key as a GGUF string, `type` as the u32 tag, then
  // `payload` verbatim (everything after the tag: a scalar, a string's
  // length+bytes, or an array's element tag+count+elements).
  GgufBuilder& AddRawKv(absl::string_view key, uint32_t type, absl::string_view payload);
  // Raw bytes counted as one metadata entry (for malformed keys).
  GgufBuilder& AddRawKvBytes(absl::string_view bytes);

  // ---- tensors, written in call order ----
  // Placed at the next aligned offset. Empty `data` means zero-filled bytes
  // of the correct size (TensorBytes); otherwise `data` is written as given,
  // so a wrong size produces a deliberately inconsistent file.
  GgufBuilder& AddTensor(absl::string_view name, kernels::DType dtype,
                         const std::vector<int64_t>& dims, absl::string_view data = {});
  GgufBuilder& AddTensorF32(absl::string_view name, const std::vector<int64_t>& dims,
                            const std::vector<float>& values);
  GgufBuilder& AddRawTensor(GgufTensorSpec spec);

  // ---- whole-file knobs ----
  GgufBuilder& set_magic(uint32_t magic);
  GgufBuilder& set_version(uint32_t version);
  // Written instead of the real number of tensors / metadata entries.
  GgufBuilder& set_tensor_count(uint64_t n);
  GgufBuilder& set_kv_count(uint64_t n);
  // Layout alignment only (no metadata key): pair with a hand-written or
  // missing "general.alignment" to build mismatches. Must be a power of two.
  GgufBuilder& set_layout_alignment(uint64_t alignment);
  // Whether the file ends padded to the alignment (llama.cpp does this).
  GgufBuilder& set_pad_tail(bool pad);
  // Extra bytes (0xAB) appended after everything else.
  GgufBuilder& set_trailing_bytes(size_t n);
  // Build() returns only the first n bytes.
  GgufBuilder& set_truncate_at(size_t n);

  // Serializes the file. `layout`, if non-null, receives byte positions.
  std::string Build(GgufLayout* layout = nullptr) const;

 private:
  GgufBuilder& AddScalar(absl::string_view key, GgufValueType type, const void* v, size_t n);
  GgufBuilder& AddArray(absl::string_view key, GgufValueType elem, uint64_t count, const void* data,
                        size_t n);

  uint32_t magic_ = 0x46554747;  // "GGUF"
  uint32_t version_ = 3;
  std::optional<uint64_t> tensor_count_;
  std::optional<uint64_t> kv_count_;
  uint64_t alignment_ = 32;  // GGUF default when general.alignment is absent
  bool pad_tail_ = true;
  size_t trailing_bytes_ = 0;
  std::optional<size_t> truncate_at_;
  std::vector<std::string> kvs_;  // each fully encoded
  std::vector<GgufTensorSpec> tensors_;
};

}  // namespace chai::engine::testing

#endif  // CHAI_ENGINE_MODEL_TESTING_GGUF_BUILDER_H_
