// Cuts streamed text exactly at the first stop string, never letting part of
// one reach the client: text that could still grow into a stop string is
// held back until the next delta decides it.
//
// Works on whole UTF-8 characters (TextStream's output); stop strings are
// valid UTF-8, so a cut or a held-back tail always starts on a character
// boundary.
//
// Thread-safety: one per sequence, one thread.
#ifndef CHAI_ENGINE_SERVING_STOP_STRINGS_H_
#define CHAI_ENGINE_SERVING_STOP_STRINGS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace chai::engine {

class StopStringMatcher {
 public:
  // REQUIRES: every stop string non-empty.
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string text;      // safe to emit now
    bool stopped = false;  // a stop string completed; `text` ends where it began
  };

  // Appends `delta`. After a result with stopped == true, nothing more may
  // be pushed.
  Result Push(absl::string_view delta);

  // The text still held back (generation ended without completing a stop
  // string).
  std::string Flush();

 private:
  std::vector<std::string> stops_;
  std::string held_;  // a suffix that is a proper prefix of some stop string
};

}  // namespace chai::engine

#endif  // CHAI_ENGINE_SERVING_STOP_STRINGS_H_
