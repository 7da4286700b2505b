// A read-only memory mapping of a whole regular file, for the model readers
// (GGUF, safetensors): weights are used in place, never copied.
//
// Ownership: unmaps on destruction; views of bytes() live as long as the
// object. Thread-safety: immutable; safe to share.
#ifndef CHAI_ENGINE_MODEL_MAPPED_FILE_H_
#define CHAI_ENGINE_MODEL_MAPPED_FILE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chai::engine {

class MappedFile {
 public:
  // NOT_FOUND when the file cannot be opened, INVALID_ARGUMENT when it is not
  // a regular file (a directory, a device), INTERNAL when mmap fails. An
  // empty file maps to empty bytes.
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  absl::string_view bytes() const { return bytes_; }

 private:
  MappedFile() = default;
  void* addr_ = nullptr;
  size_t len_ = 0;
  absl::string_view bytes_;
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_MAPPED_FILE_H_
