#include "engine/tokenizer/chat_template.h"

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/unicode.h"

namespace chai::engine {
namespace {

bool IsPythonSpace(uint32_t cp) { return IsSpace(cp) || (cp >= 0x1C && cp <= 0x1F); }

// Undoes the escapes a Jinja string literal may contain.
std::string UnescapeJinja(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out.push_back(s[i]);
      continue;
    }
    const char e = s[++i];
    switch (e) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      default:
        out.push_back(e);
        break;  // \' \" \\ .
    }
  }
  return out;
}

// The default system message of a ChatML template such as SmolLM2's:
//   {% if loop.first and messages[0]['role'] != 'system' %}
//   {{ '<|im_start|>system\nYou are ...<|im_end|>\n' }}{% endif %}
std::optional<std::string> ExtractDefaultSystem(std::string_view src) {
  if (src.find("!= 'system'") == std::string_view::npos &&
      src.find("!= \"system\"") == std::string_view::npos) {
    return std::nullopt;
  }
  constexpr std::string_view kStart = "<|im_start|>system";
  const size_t start = src.find(kStart);
  if (start == std::string_view::npos) return std::nullopt;
  size_t body = start + kStart.size();
  if (src.substr(body).starts_with("\\n")) {
    body += 2;
  } else if (src.substr(body).starts_with("\n")) {
    body += 1;
  } else {
    return std::nullopt;  // "system" is built from a variable, not a literal
  }
  const size_t end = src.find("<|im_end|>", body);
  if (end == std::string_view::npos) return std::nullopt;
  const std::string_view literal = src.substr(body, end - body);
  // Template syntax or an unescaped quote means the text is not one constant.
  for (size_t i = 0; i < literal.size(); ++i) {
    const char ch = literal[i];
    if (ch == '\\') {
      ++i;
    } else if (ch == '{' || ch == '}' || ch == '\'' || ch == '"') {
      return std::nullopt;
    }
  }
  return UnescapeJinja(literal);
}

}  // namespace

std::string_view PythonStrip(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    size_t len = 0;
    if (!IsPythonSpace(DecodeUtf8(s, begin, &len))) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    // Step back to the start of the last code point.
    size_t start = end - 1;
    while (start > begin && (static_cast<uint8_t>(s[start]) & 0xC0) == 0x80) --start;
    size_t len = 0;
    const uint32_t cp = DecodeUtf8(s, start, &len);
    if (start + len != end || !IsPythonSpace(cp)) break;
    end = start;
  }
  return s.substr(begin, end - begin);
}

absl::StatusOr<std::unique_ptr<ChatTemplate>> ChatTemplate::Detect(
    std::string_view src, const std::function<bool(std::string_view)>& has_token,
    std::string bos_text, std::string eos_text) {
  std::unique_ptr<ChatTemplate> t(new ChatTemplate());
  t->bos_text_ = std::move(bos_text);
  t->eos_text_ = std::move(eos_text);
  if (src.find("<|im_start|>") != std::string_view::npos) {
    t->kind_ = ChatTemplateKind::kChatMl;
    t->default_system_ = ExtractDefaultSystem(src);
  } else if (src.find("<|start_header_id|>") != std::string_view::npos) {
    t->kind_ = ChatTemplateKind::kLlama3;
  } else if (src.find("[INST]") != std::string_view::npos) {
    t->kind_ = ChatTemplateKind::kLlama2;
  } else if (!src.empty()) {
    return absl::NotFoundError("chat template of an unsupported family");
  } else if (has_token("<|im_start|>") && has_token("<|im_end|>")) {
    t->kind_ = ChatTemplateKind::kChatMl;
  } else if (has_token("<|start_header_id|>") && has_token("<|eot_id|>")) {
    t->kind_ = ChatTemplateKind::kLlama3;
  } else if (has_token("[INST]") || (t->bos_text_ == "<s>" && t->eos_text_ == "</s>")) {
    t->kind_ = ChatTemplateKind::kLlama2;
  } else {
    return absl::NotFoundError("no chat template and no chat special tokens");
  }
  if (t->kind_ == ChatTemplateKind::kLlama3 && t->bos_text_.empty()) {
    t->bos_text_ = "<|begin_of_text|>";
  }
  return t;
}

absl::StatusOr<std::string> ChatTemplate::Apply(std::span<const ChatMessage> messages,
                                                bool add_generation_prompt) const {
  if (messages.empty()) return absl::InvalidArgumentError("chat: no messages");
  switch (kind_) {
    case ChatTemplateKind::kChatMl:
      return ApplyChatMl(messages, add_generation_prompt);
    case ChatTemplateKind::kLlama2:
      // The Llama-2 template always ends after [/INST]: the generation
      // prompt is implicit.
      return ApplyLlama2(messages);
    case ChatTemplateKind::kLlama3:
      return ApplyLlama3(messages, add_generation_prompt);
  }
  return absl::InternalError("chat: unknown template kind");
}

std::string ChatTemplate::ApplyChatMl(std::span<const ChatMessage> messages,
                                      bool add_generation_prompt) const {
  std::string out;
  if (default_system_.has_value() && messages[0].role != "system") {
    absl::StrAppend(&out, "<|im_start|>system\n", *default_system_, "<|im_end|>\n");
  }
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|im_start|>", m.role, "\n", m.content, "<|im_end|>\n");
  }
  if (add_generation_prompt) out.append("<|im_start|>assistant\n");
  return out;
}

absl::StatusOr<std::string> ChatTemplate::ApplyLlama2(std::span<const ChatMessage> messages) const {
  std::string_view system;
  bool has_system = false;
  if (messages[0].role == "system") {
    system = messages[0].content;
    has_system = true;
    messages = messages.subspan(1);
  }
  std::string out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool want_user = i % 2 == 0;
    if ((m.role == "user") != want_user) {
      return absl::InvalidArgumentError(
          "chat: Llama-2 conversation roles must alternate user/assistant/user/...");
    }
    std::string content = m.content;
    if (i == 0 && has_system) {
      content = absl::StrCat("<<SYS>>\n", std::string(system), "\n<</SYS>>\n\n", m.content);
    }
    if (want_user) {
      absl::StrAppend(&out, bos_text_, "[INST] ", std::string(PythonStrip(content)), " [/INST]");
    } else if (m.role == "assistant") {
      absl::StrAppend(&out, " ", std::string(PythonStrip(content)), " ", eos_text_);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("chat: unsupported role '", m.role, "'"));
    }
  }
  return out;
}

std::string ChatTemplate::ApplyLlama3(std::span<const ChatMessage> messages,
                                      bool add_generation_prompt) const {
  std::string out = bos_text_;
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out, "<|start_header_id|>", m.role, "<|end_header_id|>\n\n",
                    std::string(PythonStrip(m.content)), "<|eot_id|>");
  }
  if (add_generation_prompt) out.append("<|start_header_id|>assistant<|end_header_id|>\n\n");
  return out;
}

}  // namespace chai::engine
