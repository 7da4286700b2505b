// CHAI cluster configs compiled into the binary, so an installed `chai`
// finds them wherever it runs. CMake (engine/chai/CMakeLists.txt) turns
// every engine/chai/configs/*.json into a string in a generated source file
// at configure time; editing or adding a JSON file re-runs the step.
//
// Thread-safety: immutable static data.
#ifndef CHAI_ENGINE_CHAI_SHIPPED_CONFIGS_H_
#define CHAI_ENGINE_CHAI_SHIPPED_CONFIGS_H_

#include <span>

namespace chai::engine {

struct ShippedChaiConfig {
  const char* file_name;  // e.g. "SmolLM2-135M-Instruct.json"
  const char* json;       // the file's contents
};

// Sorted by file name; empty when configs/ holds no JSON files.
std::span<const ShippedChaiConfig> ShippedChaiConfigs();

}  // namespace chai::engine

#endif  // CHAI_ENGINE_CHAI_SHIPPED_CONFIGS_H_
