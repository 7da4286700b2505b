#include "engine/serving/stop_strings.h"

#include <algorithm>
#include <utility>

namespace chai::engine {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

StopStringMatcher::Result StopStringMatcher::Push(absl::string_view delta) {
  Result result;
  if (stops_.empty()) {
    result.text = std::string(delta);
    return result;
  }
  std::string buffer = std::move(held_);
  held_.clear();
  buffer.append(delta.data(), delta.size());

  // The earliest occurrence wins; held_ held no complete stop string, so any
  // match involves the new delta.
  size_t cut = std::string::npos;
  for (const std::string& stop : stops_) cut = std::min(cut, buffer.find(stop));
  if (cut != std::string::npos) {
    buffer.resize(cut);
    result.text = std::move(buffer);
    result.stopped = true;
    return result;
  }

  // Hold back the longest suffix that is a proper prefix of a stop string.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    const size_t longest = std::min(stop.size() - 1, buffer.size());
    for (size_t k = longest; k > hold; --k) {
      if (absl::string_view(buffer).substr(buffer.size() - k) ==
          absl::string_view(stop).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  held_ = buffer.substr(buffer.size() - hold);
  buffer.resize(buffer.size() - hold);
  result.text = std::move(buffer);
  return result;
}

std::string StopStringMatcher::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace chai::engine
