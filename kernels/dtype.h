// Element types of weight and activation tensors, numbered as GGML numbers
// them so a GGUF tensor's type field maps onto DType without a table.
//
// Quantized types are stored in blocks: `BlockElems()` elements packed into
// `BlockBytes()` bytes. A row of n elements (n a multiple of BlockElems())
// takes n / BlockElems() * BlockBytes() bytes. Layouts are GGML's (see
// kernels/cpu/dequantize.h for the per-type block structs).
//
// Thread-safety: pure functions, safe from any thread.
#ifndef CHAI_KERNELS_DTYPE_H_
#define CHAI_KERNELS_DTYPE_H_

#include <cstdint>
#include <optional>

namespace chai::kernels {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kBF16 = 30,
};

struct DTypeInfo {
  const char* name;
  int64_t block_elems;  // elements per block (1 for float types)
  int64_t block_bytes;  // bytes per block
};

// Returns the layout of a GGML type id we support, or nullopt for any other
// id (unknown or unsupported types are a load error, never a crash).
std::optional<DTypeInfo> LookupDType(uint32_t ggml_type);

// REQUIRES: `t` is a supported DType.
const DTypeInfo& Info(DType t);
inline const char* Name(DType t) { return Info(t).name; }

// Bytes of one row of `n` elements, or -1 when n is not a multiple of the
// block size or the result would overflow int64.
int64_t RowBytes(DType t, int64_t n);

}  // namespace chai::kernels

#endif  // CHAI_KERNELS_DTYPE_H_
