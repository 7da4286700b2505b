// Chat templates of the common model families, rendered natively instead of
// running the model's Jinja source.
//
// The family is recognised from the Jinja source stored with the model
// (GGUF 'tokenizer.chat_template', tokenizer_config.json 'chat_template');
// when there is none, from the special tokens in the vocabulary:
//   kChatMl  "<|im_start|>{role}\n{content}<|im_end|>\n" ... (SmolLM2, Qwen)
//            If the source injects a default system message when the first
//            message is not a system message (SmolLM2 does), that text is
//            extracted from the source and injected the same way.
//   kLlama2  "<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s>"
//   kLlama3  "<|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>"
// Output matches what transformers' apply_chat_template renders for the
// reference templates (tests/golden/tokenizer/chat_golden.json); it contains
// the special tokens as text, so encode it with parse_special=true and
// add_special=false.
// Thread-safety: immutable after Detect; Apply is const.
#ifndef CHAI_ENGINE_TOKENIZER_CHAT_TEMPLATE_H_
#define CHAI_ENGINE_TOKENIZER_CHAT_TEMPLATE_H_

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace chai::engine {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (others pass through where allowed)
  std::string content;
};

enum class ChatTemplateKind { kChatMl, kLlama2, kLlama3 };

class ChatTemplate {
 public:
  // NOT_FOUND when neither the source nor the vocabulary names a known family.
  // `has_token` answers whether a text is a vocabulary entry; bos/eos_text
  // are the texts of the model's BOS/EOS tokens (may be empty).
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Detect(
      std::string_view jinja_source, const std::function<bool(std::string_view)>& has_token,
      std::string bos_text, std::string eos_text);

  ChatTemplateKind kind() const { return kind_; }
  // ChatML only: the system message injected when the first is not one.
  const std::optional<std::string>& default_system() const { return default_system_; }

  // INVALID_ARGUMENT when `messages` is empty or, for Llama-2, roles do not
  // alternate user/assistant after an optional system message.
  absl::StatusOr<std::string> Apply(std::span<const ChatMessage> messages,
                                    bool add_generation_prompt) const;

 private:
  ChatTemplate() = default;
  std::string ApplyChatMl(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  absl::StatusOr<std::string> ApplyLlama2(std::span<const ChatMessage> messages) const;
  std::string ApplyLlama3(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  ChatTemplateKind kind_ = ChatTemplateKind::kChatMl;
  std::optional<std::string> default_system_;
  std::string bos_text_;
  std::string eos_text_;
};

// Python's str.strip() (what the templates' .strip() and |trim do): removes
// leading/trailing White_Space and U+001C..U+001F.
std::string_view PythonStrip(std::string_view s);

}  // namespace chai::engine

#endif  // CHAI_ENGINE_TOKENIZER_CHAT_TEMPLATE_H_
