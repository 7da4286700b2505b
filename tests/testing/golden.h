// Test helpers shared by the golden tests: where the repository is, reading
// golden JSON written by the tests/golden/make_*.py scripts, and the default
// model's path. Header-only; for tests only.
#ifndef CHAI_TESTS_TESTING_GOLDEN_H_
#define CHAI_TESTS_TESTING_GOLDEN_H_

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace chai::testing {

// The repository root: $CHAI_SOURCE_DIR (set by ctest) or the configure-time
// path compiled in by chai_test().
inline std::string SourceDir() {
  const char* env = std::getenv("CHAI_SOURCE_DIR");
  return env != nullptr ? env : CHAI_SOURCE_DIR;
}

inline std::string DefaultModelPath() {
  return SourceDir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// Parses tests/golden/<relative_path>; a missing file fails the test.
inline nlohmann::json LoadGoldenJson(const std::string& relative_path) {
  const std::string path = SourceDir() + "/tests/golden/" + relative_path;
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// The scripts write decimals that read back (via double) as the exact float32.
inline std::vector<float> JsonFloats(const nlohmann::json& a) {
  std::vector<float> out;
  out.reserve(a.size());
  for (const nlohmann::json& v : a) out.push_back(static_cast<float>(v.get<double>()));
  return out;
}

}  // namespace chai::testing

#endif  // CHAI_TESTS_TESTING_GOLDEN_H_
