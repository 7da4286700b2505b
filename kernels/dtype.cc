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

}  // namespace

std::optional<DTypeInfo> LookupDType(uint32_t ggml_type) {
  switch (static_cast<DType>(ggml_type)) {
    case DType::kF32:
      return kF32Info;
    case DType::kF16:
      return kF16Info;
    case DType::kBF16:
      return kBF16Info;
    case DType::kQ4_0:
      return kQ4_0Info;
    case DType::kQ4_1:
      return kQ4_1Info;
    case DType::kQ8_0:
      return kQ8_0Info;
    case DType::kQ4_K:
      return kQ4_KInfo;
    case DType::kQ5_K:
      return kQ5_KInfo;
    case DType::kQ6_K:
      return kQ6_KInfo;
  }
  return std::nullopt;
}

const DTypeInfo& Info(DType t) {
  static const auto* table = [] {
    // Indexed by GGML type id; ids we do not support stay empty.
    auto* tab = new std::optional<DTypeInfo>[static_cast<uint32_t>(DType::kBF16) + 1];
    for (uint32_t id = 0; id <= static_cast<uint32_t>(DType::kBF16); ++id) {
      tab[id] = LookupDType(id);
    }
    return tab;
  }();
  const uint32_t id = static_cast<uint32_t>(t);
  if (id > static_cast<uint32_t>(DType::kBF16) || !table[id]) {
    std::abort();  // Programmer error: DType values only come from LookupDType.
  }
  return *table[id];
}

int64_t RowBytes(DType t, int64_t n) {
  const DTypeInfo& info = Info(t);
  if (n < 0 || n % info.block_elems != 0) return -1;
  const int64_t blocks = n / info.block_elems;
  if (blocks > std::numeric_limits<int64_t>::max() / info.block_bytes) return -1;
  return blocks * info.block_bytes;
}

}  // namespace chai::kernels
