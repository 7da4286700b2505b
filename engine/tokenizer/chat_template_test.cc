// Chat template detection and rendering rules (the exact output for real
// templates is checked against transformers in tokenizer_golden_test.cc).
#include "engine/tokenizer/chat_template.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

auto NoTokens() {
  return [](std::string_view) { return false; };
}

TEST(ChatTemplateTest, DetectsFamilyFromSource) {
  EXPECT_EQ((*ChatTemplate::Detect("{{'<|im_start|>' + m}}", NoTokens(), "", ""))->kind(),
            ChatTemplateKind::kChatMl);
  EXPECT_EQ((*ChatTemplate::Detect("<|start_header_id|>", NoTokens(), "", ""))->kind(),
            ChatTemplateKind::kLlama3);
  EXPECT_EQ((*ChatTemplate::Detect("[INST] x [/INST]", NoTokens(), "<s>", "</s>"))->kind(),
            ChatTemplateKind::kLlama2);
  EXPECT_EQ(ChatTemplate::Detect("{{ weird }}", NoTokens(), "", "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(ChatTemplateTest, FallsBackToSpecialTokens) {
  auto chatml = [](std::string_view t) { return t == "<|im_start|>" || t == "<|im_end|>"; };
  auto llama3 = [](std::string_view t) { return t == "<|start_header_id|>" || t == "<|eot_id|>"; };
  EXPECT_EQ((*ChatTemplate::Detect("", chatml, "", ""))->kind(), ChatTemplateKind::kChatMl);
  EXPECT_EQ((*ChatTemplate::Detect("", llama3, "", ""))->kind(), ChatTemplateKind::kLlama3);
  EXPECT_EQ((*ChatTemplate::Detect("", NoTokens(), "<s>", "</s>"))->kind(),
            ChatTemplateKind::kLlama2);
  EXPECT_FALSE(ChatTemplate::Detect("", NoTokens(), "", "").ok());
}

TEST(ChatTemplateTest, ChatMlDefaultSystemOnlyWhenFirstIsNotSystem) {
  const std::string src =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\\nBe nice.<|im_end|>\\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      "{% endfor %}";
  auto t = *ChatTemplate::Detect(src, NoTokens(), "", "");
  ASSERT_TRUE(t->default_system().has_value());
  EXPECT_EQ(*t->default_system(), "Be nice.");
  std::vector<ChatMessage> user = {{"user", "Hi"}};
  EXPECT_EQ(*t->Apply(user, true),
            "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  std::vector<ChatMessage> sys = {{"system", "S"}, {"user", "Hi"}};
  EXPECT_EQ(*t->Apply(sys, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplateTest, RejectsBadConversations) {
  auto llama2 = *ChatTemplate::Detect("[INST]", NoTokens(), "<s>", "</s>");
  std::vector<ChatMessage> two_users = {{"user", "a"}, {"user", "b"}};
  EXPECT_EQ(llama2->Apply(two_users, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(llama2->Apply({}, false).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, PythonStrip) {
  EXPECT_EQ(PythonStrip("  a b \n\t"), "a b");
  EXPECT_EQ(PythonStrip("\u3000x\u00a0"), "x");
  EXPECT_EQ(PythonStrip("\x1fx\x1c"), "x");
  EXPECT_EQ(PythonStrip("\u200bx"), "\u200bx");  // not whitespace in Python
  EXPECT_EQ(PythonStrip("   "), "");
}

}  // namespace
}  // namespace chai::engine
