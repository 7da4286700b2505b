// Builds ModelWeights from a GGUF file of architecture "llama" (LLaMA 1/2/3,
// SmolLM2, Mistral-style). Weights stay in the mmapped file (zero copy);
// only norm vectors stored as F16/BF16 are converted to float32.
//
// The GgufFile is kept alive by the returned weights (ModelWeights::sources)
// and also returned, so the tokenizer can be read from the same file.
// Thread-safety: free functions; results immutable.
#ifndef CHAI_ENGINE_MODEL_GGUF_MODEL_H_
#define CHAI_ENGINE_MODEL_GGUF_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model/gguf.h"
#include "engine/model/model_weights.h"

namespace chai::engine {

// Reads the LLaMA hyper-parameters from GGUF metadata (and rope_freqs.weight).
absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& gguf);

// Wraps an already-parsed file. Checks every tensor's shape against the config.
absl::StatusOr<std::unique_ptr<ModelWeights>> ModelFromGguf(std::shared_ptr<const GgufFile> gguf);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_MODEL_GGUF_MODEL_H_
