#include "kernels/dtype.h"

#include <cstdlib>
#include <limits>

namespace chai::kernels {
namespace {

// Block sizes are GGML's: 32-element blocks for the legacy quants, 256-element
// super-blocks for the K-quants.
constexpr DTypeInfo kF32Info{"F32", 1, 4};
constexpr DTypeInfo kF16Info{"F16", 1, 2};
constexpr DTypeInfo kBF16Info{"BF16", 1, 2};
constexpr DTypeInfo kQ4_0Info{"Q4_0", 32, 18};
constexpr DTypeInfo kQ4_1Info{"Q4_1", 32, 20};
constexpr DTypeInfo kQ8_0Info{"Q8_0", 32, 34};
constexpr DTypeInfo kQ4_KInfo{"Q4_K", 256, 144};
constexpr DTypeInfo kQ5_KInfo{"Q5_K", 256, 176};
constexpr DTypeInfo kQ6_KInfo{"Q6_K", 256, 210};

// The layout of a supported GGML type id, or nullptr.
const DTypeInfo* Find(uint32_t ggml_type) {
  switch (static_cast<DType>(ggml_type)) {
    case DType::kF32:
      return &kF32Info;
    case DType::kF16:
      return &kF16Info;
    case DType::kBF16:
      return &kBF16Info;
    case DType::kQ4_0:
      return &kQ4_0Info;
    case DType::kQ4_1:
      return &kQ4_1Info;
    case DType::kQ8_0:
      return &kQ8_0Info;
    case DType::kQ4_K:
      return &kQ4_KInfo;
    case DType::kQ5_K:
      return &kQ5_KInfo;
    case DType::kQ6_K:
      return &kQ6_KInfo;
  }
  return nullptr;
}

}  // namespace

std::optional<DTypeInfo> LookupDType(uint32_t ggml_type) {
  const DTypeInfo* info = Find(ggml_type);
  if (info == nullptr) return std::nullopt;
  return *info;
}

const DTypeInfo& Info(DType t) {
  const DTypeInfo* info = Find(static_cast<uint32_t>(t));
  if (info == nullptr) std::abort();  // Programmer error: DTypes only come from LookupDType.
  return *info;
}

int64_t RowBytes(DType t, int64_t n) {
  const DTypeInfo& info = Info(t);
  if (n < 0 || n % info.block_elems != 0) return -1;
  const int64_t blocks = n / info.block_elems;
  if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes) return -1;
  return blocks * info.block_bytes;
}

}  // namespace chai::kernels
