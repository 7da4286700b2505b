// Opens a model from a path: weights plus tokenizer, whatever the format.
//
//   *.gguf file          GGUF (weights and tokenizer from the same file)
//   directory            Hugging Face checkpoint: config.json plus
//                        model.safetensors or model.safetensors.index.json;
//                        tokenizer.json (+ tokenizer_config.json) beside them
//   *.safetensors file   the same, for the checkpoint in the file's directory
//   *.safetensors.index.json  the same, for a sharded checkpoint
//
// Ownership: LoadedModel owns both parts; the weights keep their file mapped.
// Thread-safety: immutable after load; safe to share across threads.
#ifndef CHAI_ENGINE_LOADED_MODEL_H_
#define CHAI_ENGINE_LOADED_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/model_weights.h"
#include "engine/tokenizer/tokenizer.h"

namespace chai::engine {

struct LoadedModel {
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<Tokenizer> tokenizer;
};

// Errors: NOT_FOUND (no such file), INVALID_ARGUMENT / DATA_LOSS (malformed
// or unsupported file, with the reason).
absl::StatusOr<LoadedModel> LoadModel(const std::string& path);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_LOADED_MODEL_H_
