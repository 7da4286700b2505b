#include "engine/model/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace chai::engine {

absl::StatusOr<std::unique_ptr<MappedFile>> MappedFile::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  auto file = std::unique_ptr<MappedFile>(new MappedFile());
  const size_t len = static_cast<size_t>(st.st_size);
  if (len > 0) {
    void* addr = mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("mmap ", path, ": ", std::strerror(errno)));
    }
    file->addr_ = addr;
    file->len_ = len;
    file->bytes_ = absl::string_view(static_cast<const char*>(addr), len);
  }
  ::close(fd);
  return file;
}

MappedFile::~MappedFile() {
  if (addr_ != nullptr) munmap(addr_, len_);
}

}  // namespace chai::engine
