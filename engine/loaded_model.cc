#include "engine/loaded_model.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_model.h"
#include "engine/model/safetensors_model.h"
#include "engine/tokenizer/gguf_spec.h"
#include "engine/tokenizer/json_spec.h"

namespace chai::engine {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::Status WithPath(const std::string& path, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
}

// Shared by both formats: the tokenizer must fit the embedding.
absl::StatusOr<LoadedModel> Assemble(const std::string& path, std::unique_ptr<ModelWeights> weights,
                                     absl::StatusOr<TokenizerSpec> spec) {
  if (!spec.ok()) return WithPath(path, spec.status());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*spec);
  if (!tok.ok()) return WithPath(path, tok.status());
  if ((*tok)->vocab_size() > weights->config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer has ", (*tok)->vocab_size(),
                                                   " tokens but the embedding only ",
                                                   weights->config.vocab_size));
  }
  LoadedModel m;
  m.weights = std::move(weights);
  m.tokenizer = *std::move(tok);
  return m;
}

// A Hugging Face checkpoint directory, or a .safetensors / index file in one.
absl::StatusOr<LoadedModel> LoadSafetensors(const std::string& path) {
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = ModelFromSafetensors(path);
  if (!weights.ok()) return weights.status();  // already names the path
  std::string dir = path;
  if (!IsDirectory(path)) {
    const size_t slash = path.rfind('/');
    dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
  }
  return Assemble(path, *std::move(weights), SpecFromTokenizerJson(dir + "/tokenizer.json"));
}

}  // namespace

absl::StatusOr<LoadedModel> LoadModel(const std::string& path) {
  if (IsDirectory(path) || absl::EndsWith(path, ".safetensors") ||
      absl::EndsWith(path, ".safetensors.index.json")) {
    return LoadSafetensors(path);
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  std::shared_ptr<const GgufFile> gguf(*std::move(file));
  absl::StatusOr<std::unique_ptr<ModelWeights>> weights = ModelFromGguf(gguf);
  if (!weights.ok()) return WithPath(path, weights.status());
  return Assemble(path, *std::move(weights), SpecFromGguf(*gguf));
}

}  // namespace chai::engine
