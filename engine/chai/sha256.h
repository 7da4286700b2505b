// SHA-256 (FIPS 180-4), small and dependency-free: used to fingerprint model
// weights for CHAI cluster configs (model_fingerprint.h). Not for security
// decisions; it is the standard algorithm so any tool (sha256sum, hashlib)
// reproduces the digests.
//
// Thread-safety: a Sha256 object is not shared; distinct objects are
// independent.
#ifndef CHAI_ENGINE_CHAI_SHA256_H_
#define CHAI_ENGINE_CHAI_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace chai::engine {

class Sha256 {
 public:
  Sha256();

  // Appends `size` bytes. REQUIRES: Finish() not called yet.
  void Update(const void* data, size_t size);
  void Update(absl::string_view bytes) { Update(bytes.data(), bytes.size()); }

  // Pads, returns the 32-byte digest. The object is spent afterwards.
  std::array<uint8_t, 32> Finish();

  // Lower-case hex of the digest of `bytes` (64 characters).
  static std::string HexDigest(absl::string_view bytes);
  static std::string ToHex(const std::array<uint8_t, 32>& digest);

 private:
  void Block(const uint8_t* p);

  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_SHA256_H_
