#include "engine/tokenizer/json_spec.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace chai::engine {

const char kLlama3PreTokenizerRegex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

namespace {

using Json = nlohmann::json;
constexpr std::string_view kSpmSpace = "\xE2\x96\x81";
constexpr uintmax_t kMaxFileBytes = uintmax_t{256} << 20;

absl::Status Bad(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: ", std::string(what)));
}

// Member `key` of object `j` if present and of the wanted kind, else nullptr.
const Json* Member(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}
std::optional<std::string> StringMember(const Json& j, const char* key) {
  const Json* v = Member(j, key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}
std::optional<bool> BoolMember(const Json& j, const char* key) {
  const Json* v = Member(j, key);
  if (v == nullptr || !v->is_boolean()) return std::nullopt;
  return v->get<bool>();
}
std::string TypeOf(const Json* j) {
  if (j == nullptr || !j->is_object()) return "";
  return StringMember(*j, "type").value_or("");
}
// A token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> ConfigToken(const Json& config, const char* key) {
  const Json* v = Member(config, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return StringMember(*v, "content");
  return std::nullopt;
}

// The component list of a Sequence (pretokenizers/normalizers/decoders), or
// the component itself.
std::vector<const Json*> Components(const Json* j, const char* list_key) {
  std::vector<const Json*> out;
  if (j == nullptr || j->is_null()) return out;
  if (TypeOf(j) == "Sequence") {
    const Json* list = Member(*j, list_key);
    if (list != nullptr && list->is_array()) {
      for (const Json& c : *list) out.push_back(&c);
    }
    return out;
  }
  out.push_back(j);
  return out;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot stat ", path, ": ", ec.message()));
  if (size > kMaxFileBytes) return absl::InvalidArgumentError(absl::StrCat(path, " is too large"));
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string data(static_cast<size_t>(size), '\0');
  in.read(data.data(), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size) {
    return absl::DataLossError(absl::StrCat("short read of ", path));
  }
  return data;
}

// Decides the byte-level pre-tokenizer name from the pre_tokenizer node.
absl::StatusOr<std::string> ByteLevelPreTokenizerName(const Json* pre) {
  const std::vector<const Json*> parts = Components(pre, "pretokenizers");
  auto byte_level = [](const Json* j, bool want_regex) {
    return TypeOf(j) == "ByteLevel" && !BoolMember(*j, "add_prefix_space").value_or(false) &&
           BoolMember(*j, "use_regex").value_or(true) == want_regex;
  };
  if (parts.size() == 1 && byte_level(parts[0], true)) return std::string("gpt2");
  if (parts.size() == 2 && TypeOf(parts[0]) == "Digits" &&
      BoolMember(*parts[0], "individual_digits").value_or(false) && byte_level(parts[1], true)) {
    return std::string("smollm");
  }
  if (parts.size() == 2 && TypeOf(parts[0]) == "Split" && byte_level(parts[1], false)) {
    const Json* pattern = Member(*parts[0], "pattern");
    const std::optional<std::string> regex =
        pattern == nullptr ? std::nullopt : StringMember(*pattern, "Regex");
    if (regex == kLlama3PreTokenizerRegex &&
        StringMember(*parts[0], "behavior").value_or("") == "Isolated" &&
        !BoolMember(*parts[0], "invert").value_or(false)) {
      return std::string("llama-bpe");
    }
  }
  return absl::UnimplementedError(
      "tokenizer.json: unsupported byte-level pre_tokenizer (supported: ByteLevel; "
      "Sequence[Digits(individual_digits), ByteLevel]; Sequence[Split(Llama-3 regex), "
      "ByteLevel(use_regex=false)])");
}

// SentencePiece-style normalizer / pre-tokenizer: returns add_space_prefix.
absl::StatusOr<bool> SentencePieceSpacePrefix(const Json& root) {
  bool prefix = false;
  bool escapes_spaces = false;
  for (const Json* n : Components(Member(root, "normalizer"), "normalizers")) {
    const std::string type = TypeOf(n);
    if (type == "Prepend" && StringMember(*n, "prepend") == std::string(kSpmSpace)) {
      prefix = true;
    } else if (type == "Replace" && StringMember(*n, "content") == std::string(kSpmSpace)) {
      const Json* pattern = Member(*n, "pattern");
      if (pattern == nullptr || StringMember(*pattern, "String") != std::string(" ")) {
        return absl::UnimplementedError("tokenizer.json: unsupported Replace normalizer");
      }
      escapes_spaces = true;
    } else {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: unsupported normalizer '", type, "'"));
    }
  }
  for (const Json* p : Components(Member(root, "pre_tokenizer"), "pretokenizers")) {
    if (TypeOf(p) != "Metaspace" || StringMember(*p, "replacement") != std::string(kSpmSpace)) {
      return absl::UnimplementedError(absl::StrCat("tokenizer.json: unsupported pre_tokenizer '",
                                                   TypeOf(p), "' for a SentencePiece-style model"));
    }
    escapes_spaces = true;
    const std::string scheme =
        StringMember(*p, "prepend_scheme")
            .value_or(BoolMember(*p, "add_prefix_space").value_or(true) ? "always" : "never");
    // "first" prefixes only the start of the text; llama.cpp (and this
    // implementation) prefix every fragment, like "always".
    prefix = prefix || scheme != "never";
  }
  if (!escapes_spaces) {
    return absl::UnimplementedError(
        "tokenizer.json: byte_fallback BPE without ▁ space handling is not supported");
  }
  return prefix;
}

}  // namespace

absl::StatusOr<TokenizerSpec> SpecFromTokenizerJsonText(std::string_view tokenizer_json,
                                                        std::string_view tokenizer_config_json) {
  const Json root = Json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded() || !root.is_object()) return Bad("not a JSON object");
  Json config = Json::object();
  if (!tokenizer_config_json.empty()) {
    config = Json::parse(tokenizer_config_json, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError("tokenizer_config.json: not a JSON object");
    }
  }
  const Json* model = Member(root, "model");
  if (model == nullptr || !model->is_object()) return Bad("missing 'model' object");
  if (TypeOf(model) != "BPE") {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer.json: model type '", TypeOf(model), "' (only BPE is supported)"));
  }
  const Json* vocab = Member(*model, "vocab");
  if (vocab == nullptr || !vocab->is_object()) return Bad("model.vocab is not an object");

  // id -> text, from model.vocab and added_tokens (which may extend it).
  std::vector<std::optional<std::string>> by_id;
  std::vector<TokenType> types;
  auto put = [&](const std::string& text, const Json& id_json, TokenType type,
                 bool allow_same) -> absl::Status {
    if (!id_json.is_number_integer())
      return Bad(absl::StrCat("id of '", text, "' is not an integer"));
    const int64_t id = id_json.get<int64_t>();
    if (id < 0 || static_cast<uint64_t>(id) >= TokenizerLimits::kMaxVocab) {
      return Bad(absl::StrCat("token id ", id, " out of range"));
    }
    if (static_cast<size_t>(id) >= by_id.size()) {
      by_id.resize(id + 1);
      types.resize(id + 1, TokenType::kNormal);
    }
    if (by_id[id].has_value() && !(allow_same && *by_id[id] == text)) {
      return Bad(absl::StrCat("token id ", id, " assigned twice"));
    }
    by_id[id] = text;
    types[id] = type;
    return absl::OkStatus();
  };
  if (vocab->size() > TokenizerLimits::kMaxVocab) return Bad("vocabulary too large");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (absl::Status s = put(it.key(), it.value(), TokenType::kNormal, false); !s.ok()) return s;
  }
  if (const Json* added = Member(root, "added_tokens"); added != nullptr && !added->is_null()) {
    if (!added->is_array()) return Bad("added_tokens is not an array");
    for (const Json& a : *added) {
      const std::optional<std::string> content = StringMember(a, "content");
      const Json* id = Member(a, "id");
      if (!content.has_value() || id == nullptr) return Bad("added token without content/id");
      const TokenType type =
          BoolMember(a, "special").value_or(false) ? TokenType::kControl : TokenType::kUserDefined;
      if (absl::Status s = put(*content, *id, type, true); !s.ok()) return s;
    }
  }
  TokenizerSpec spec;
  spec.tokens.reserve(by_id.size());
  for (size_t i = 0; i < by_id.size(); ++i) {
    if (!by_id[i].has_value()) return Bad(absl::StrCat("no token has id ", i));
    spec.tokens.push_back(std::move(*by_id[i]));
  }
  spec.token_types = std::move(types);
  auto id_of = [&](const std::string& text) -> int32_t {
    // Linear: called a handful of times per load.
    for (size_t i = 0; i < spec.tokens.size(); ++i) {
      if (spec.tokens[i] == text) return static_cast<int32_t>(i);
    }
    return -1;
  };

  if (const Json* merges = Member(*model, "merges"); merges != nullptr && !merges->is_null()) {
    if (!merges->is_array()) return Bad("model.merges is not an array");
    if (merges->size() > TokenizerLimits::kMaxMerges) return Bad("too many merges");
    spec.merges.reserve(merges->size());
    for (const Json& m : *merges) {
      if (m.is_string()) {
        const std::string& s = m.get_ref<const std::string&>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
          return Bad(absl::StrCat("malformed merge '", s, "'"));
        }
        spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return Bad("merge is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }

  const bool byte_fallback = BoolMember(*model, "byte_fallback").value_or(false);
  spec.ignore_merges = BoolMember(*model, "ignore_merges").value_or(false);
  const bool has_byte_level =
      TypeOf(Member(root, "decoder")) == "ByteLevel" ||
      TypeOf(Member(root, "pre_tokenizer")) == "ByteLevel" || [&] {
        for (const Json* p : Components(Member(root, "pre_tokenizer"), "pretokenizers")) {
          if (TypeOf(p) == "ByteLevel") return true;
        }
        return false;
      }();
  if (has_byte_level) {
    spec.model = TokenizerModel::kByteLevelBpe;
    if (const Json* norm = Member(root, "normalizer"); norm != nullptr && !norm->is_null()) {
      return absl::UnimplementedError("tokenizer.json: normalizers with byte-level BPE");
    }
    absl::StatusOr<std::string> pre = ByteLevelPreTokenizerName(Member(root, "pre_tokenizer"));
    if (!pre.ok()) return pre.status();
    spec.pre_tokenizer = *pre;
  } else {
    spec.model = TokenizerModel::kSentencePieceBpe;
    absl::StatusOr<bool> prefix = SentencePieceSpacePrefix(root);
    if (!prefix.ok()) return prefix.status();
    spec.add_space_prefix = *prefix;
    if (byte_fallback) {
      for (size_t i = 0; i < spec.tokens.size(); ++i) {
        const std::string& t = spec.tokens[i];
        if (spec.token_types[i] == TokenType::kNormal && t.size() == 6 && t.starts_with("<0x") &&
            t.back() == '>') {
          spec.token_types[i] = TokenType::kByte;
        }
      }
    }
  }
  if (std::optional<std::string> unk = StringMember(*model, "unk_token")) {
    spec.unk_id = id_of(*unk);
    if (spec.unk_id >= 0 && spec.token_types[spec.unk_id] != TokenType::kControl) {
      spec.token_types[spec.unk_id] = TokenType::kUnknown;
    }
  }

  // Special tokens: tokenizer_config.json, else the post-processor template.
  auto config_id = [&](const char* key, int32_t* out) -> absl::Status {
    std::optional<std::string> text = ConfigToken(config, key);
    if (!text.has_value()) return absl::OkStatus();
    *out = id_of(*text);
    if (*out < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokenizer_config.json: ", key, " '", *text, "' is not in the vocabulary"));
    }
    return absl::OkStatus();
  };
  for (auto [key, out] : {std::pair<const char*, int32_t*>{"bos_token", &spec.bos_id},
                          {"eos_token", &spec.eos_id},
                          {"pad_token", &spec.pad_id},
                          {"unk_token", &spec.unk_id}}) {
    if (absl::Status s = config_id(key, out); !s.ok()) return s;
  }
  std::optional<bool> add_bos = BoolMember(config, "add_bos_token");
  spec.add_eos = BoolMember(config, "add_eos_token").value_or(false);
  if (const Json* post = Member(root, "post_processor"); TypeOf(post) == "TemplateProcessing") {
    const Json* single = Member(*post, "single");
    if (single != nullptr && single->is_array() && !single->empty()) {
      const Json* first = Member((*single)[0], "SpecialToken");
      if (first != nullptr) {
        if (std::optional<std::string> id = StringMember(*first, "id")) {
          if (spec.bos_id < 0) spec.bos_id = id_of(*id);
          if (!add_bos.has_value()) add_bos = spec.bos_id >= 0 && id_of(*id) == spec.bos_id;
        }
      }
    }
  }
  spec.add_bos = add_bos.value_or(false);
  if (spec.add_bos && spec.bos_id < 0) return Bad("add_bos_token set but no bos_token");
  if (spec.add_eos && spec.eos_id < 0) return Bad("add_eos_token set but no eos_token");

  if (const Json* tmpl = Member(config, "chat_template"); tmpl != nullptr) {
    if (tmpl->is_string()) {
      spec.chat_template = tmpl->get<std::string>();
    } else if (tmpl->is_array()) {
      // Named templates: [{"name": "default", "template": "..."}, ...].
      for (const Json& t : *tmpl) {
        std::optional<std::string> body = StringMember(t, "template");
        if (body.has_value() &&
            (spec.chat_template.empty() || StringMember(t, "name").value_or("") == "default")) {
          spec.chat_template = *body;
        }
      }
    }
  }
  return spec;
}

absl::StatusOr<TokenizerSpec> SpecFromTokenizerJson(const std::string& tokenizer_json_path) {
  absl::StatusOr<std::string> json = ReadFile(tokenizer_json_path);
  if (!json.ok()) return json.status();
  const std::filesystem::path config_path =
      std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
  std::string config;
  std::error_code ec;
  if (std::filesystem::exists(config_path, ec)) {
    absl::StatusOr<std::string> c = ReadFile(config_path.string());
    if (!c.ok()) return c.status();
    config = *std::move(c);
  }
  return SpecFromTokenizerJsonText(*json, config);
}

}  // namespace chai::engine
