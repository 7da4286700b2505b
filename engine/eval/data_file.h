// Reads an evaluation data file whole, decompressing `.bz2` files on the fly
// (libbz2), with a cap on the bytes produced.
//
// Data files are untrusted: a truncated or corrupt bz2 stream, trailing
// garbage, or output past the cap is an error, never a crash or an unbounded
// allocation (a decompression bomb stops at the cap).
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_EVAL_DATA_FILE_H_
#define CHAI_ENGINE_EVAL_DATA_FILE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chai::engine::eval {

// Largest file content (after decompression) the loaders accept.
inline constexpr int64_t kMaxDataFileBytes = int64_t{256} << 20;

// Decompresses one or more concatenated bz2 streams (what `bzip2` and
// `pbzip2` write). DATA_LOSS for a corrupt or truncated stream or bytes after
// the last stream that are not another stream; RESOURCE_EXHAUSTED when the
// output would exceed max_bytes.
absl::StatusOr<std::string> DecompressBz2(absl::string_view compressed, int64_t max_bytes);

// The content of `path`, decompressed when the name ends in ".bz2". NOT_FOUND
// when it cannot be opened, INVALID_ARGUMENT when it is not a regular file,
// RESOURCE_EXHAUSTED past max_bytes; errors name the path.
absl::StatusOr<std::string> ReadDataFile(const std::string& path,
                                         int64_t max_bytes = kMaxDataFileBytes);

// `dir/name`, or `dir/name.bz2` when only the compressed file exists.
// NOT_FOUND naming both when neither does.
absl::StatusOr<std::string> FindDataFile(const std::string& dir, const std::string& name);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_DATA_FILE_H_
