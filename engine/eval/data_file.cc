#include "engine/eval/data_file.h"

#include <bzlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace chai::engine::eval {
namespace {

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

absl::StatusOr<std::string> DecompressBz2(absl::string_view compressed, int64_t max_bytes) {
  std::string out;
  size_t in_pos = 0;
  // bzip2 files may hold several streams back to back; each is decoded with a
  // fresh decompressor until the input is used up.
  do {
    bz_stream strm;
    std::memset(&strm, 0, sizeof(strm));
    if (BZ2_bzDecompressInit(&strm, 0, 0) != BZ_OK) {
      return absl::InternalError("cannot initialise the bz2 decompressor");
    }
    int rc = BZ_OK;
    char buf[1 << 16];
    while (rc != BZ_STREAM_END) {
      // avail_in is 32-bit: feed at most 1 GiB at a time.
      const size_t left = compressed.size() - in_pos;
      const size_t feed = std::min<size_t>(left, size_t{1} << 30);
      strm.next_in = const_cast<char*>(compressed.data() + in_pos);
      strm.avail_in = static_cast<unsigned>(feed);
      strm.next_out = buf;
      strm.avail_out = sizeof(buf);
      rc = BZ2_bzDecompress(&strm);
      in_pos += feed - strm.avail_in;
      const size_t produced = sizeof(buf) - strm.avail_out;
      if (rc != BZ_OK && rc != BZ_STREAM_END) {
        BZ2_bzDecompressEnd(&strm);
        return absl::DataLossError(absl::StrCat("corrupt bz2 data (libbz2 error ", rc, ")"));
      }
      if (static_cast<int64_t>(out.size() + produced) > max_bytes) {
        BZ2_bzDecompressEnd(&strm);
        return absl::ResourceExhaustedError(
            absl::StrCat("bz2 data decompresses to more than ", max_bytes, " bytes"));
      }
      out.append(buf, produced);
      if (rc == BZ_OK && produced == 0 && in_pos == compressed.size()) {
        BZ2_bzDecompressEnd(&strm);
        return absl::DataLossError("truncated bz2 stream");
      }
    }
    BZ2_bzDecompressEnd(&strm);
  } while (in_pos < compressed.size());
  return out;
}

absl::StatusOr<std::string> ReadDataFile(const std::string& path, int64_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  // The cap applies to the compressed size too, so the read itself is bounded.
  if (st.st_size > max_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " is larger than ", max_bytes, " bytes"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", strerror(errno)));
  std::string raw(static_cast<size_t>(st.st_size), '\0');
  if (!in.read(raw.data(), st.st_size)) {
    return absl::DataLossError(absl::StrCat("cannot read ", path));
  }
  if (!absl::EndsWith(path, ".bz2")) return raw;
  absl::StatusOr<std::string> text = DecompressBz2(raw, max_bytes);
  if (!text.ok()) {
    return absl::Status(text.status().code(), absl::StrCat(path, ": ", text.status().message()));
  }
  return text;
}

absl::StatusOr<std::string> FindDataFile(const std::string& dir, const std::string& name) {
  const std::string plain = absl::StrCat(dir, "/", name);
  if (IsRegularFile(plain)) return plain;
  const std::string bz2 = absl::StrCat(plain, ".bz2");
  if (IsRegularFile(bz2)) return bz2;
  return absl::NotFoundError(absl::StrCat("no ", plain, " or ", bz2));
}

}  // namespace chai::engine::eval
