// SpecFromGguf on hand-built GGUF bytes: one case per malformed-input class.
#include "engine/tokenizer/gguf_spec.h"

#include <cstring>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::testing::HasSubstr;

// Minimal GGUF v3 writer (metadata only, no tensors).
class GgufBuilder {
 public:
  GgufBuilder& Str(const std::string& key, const std::string& v) {
    Key(key, GgufValueType::kString);
    String(v);
    return Count();
  }
  GgufBuilder& U32(const std::string& key, uint32_t v) {
    Key(key, GgufValueType::kUint32);
    Pod(v);
    return Count();
  }
  GgufBuilder& Bool(const std::string& key, bool v) {
    Key(key, GgufValueType::kBool);
    Pod(static_cast<uint8_t>(v));
    return Count();
  }
  GgufBuilder& StrArray(const std::string& key, const std::vector<std::string>& v) {
    Key(key, GgufValueType::kArray);
    Pod(static_cast<uint32_t>(GgufValueType::kString));
    Pod(static_cast<uint64_t>(v.size()));
    for (const auto& s : v) String(s);
    return Count();
  }
  GgufBuilder& I32Array(const std::string& key, const std::vector<int32_t>& v) {
    Key(key, GgufValueType::kArray);
    Pod(static_cast<uint32_t>(GgufValueType::kInt32));
    Pod(static_cast<uint64_t>(v.size()));
    for (int32_t x : v) Pod(x);
    return Count();
  }
  std::string Bytes() const {
    std::string out = "GGUF";
    auto put = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    put(uint32_t{3});
    put(uint64_t{0});
    put(n_kv_);
    return out + body_;
  }

 private:
  template <typename T>
  void Pod(T v) {
    body_.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void String(const std::string& s) {
    Pod(static_cast<uint64_t>(s.size()));
    body_ += s;
  }
  void Key(const std::string& key, GgufValueType t) {
    String(key);
    Pod(static_cast<uint32_t>(t));
  }
  GgufBuilder& Count() {
    ++n_kv_;
    return *this;
  }
  std::string body_;
  uint64_t n_kv_ = 0;
};

// A valid "llama" (SentencePiece) vocabulary, with `mutate` applied.
absl::Status Load(const std::function<void(GgufBuilder&)>& extra,
                  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"},
                  const std::string& model = "llama") {
  GgufBuilder b;
  b.Str("tokenizer.ggml.model", model);
  b.StrArray("tokenizer.ggml.tokens", tokens);
  extra(b);
  const std::string bytes = b.Bytes();
  absl::StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::FromBuffer(bytes);
  if (!g.ok()) return g.status();
  absl::StatusOr<TokenizerSpec> spec = SpecFromGguf(**g);
  if (!spec.ok()) return spec.status();
  return Tokenizer::Create(*spec).status();
}

TEST(GgufSpecTest, AcceptsValidVocabulary) {
  EXPECT_TRUE(Load([](GgufBuilder& b) {
                b.U32("tokenizer.ggml.bos_token_id", 1)
                    .I32Array("tokenizer.ggml.token_type", {2, 3, 3, 1, 1});
              }).ok());
}

TEST(GgufSpecTest, RejectsMalformedMetadata) {
  auto expect = [](const absl::Status& s, absl::StatusCode code, const std::string& fragment) {
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(fragment));
  };
  // Missing model key / tokens.
  {
    GgufBuilder b;
    b.StrArray("tokenizer.ggml.tokens", {"a"});
    auto g = GgufFile::FromBuffer(b.Bytes());
    ASSERT_TRUE(g.ok()) << g.status();
    expect(SpecFromGguf(**g).status(), absl::StatusCode::kNotFound, "tokenizer.ggml.model");
  }
  expect(Load([](GgufBuilder&) {}, {"a"}, "bert"), absl::StatusCode::kUnimplemented, "bert");
  // Vocabulary of the wrong type.
  {
    GgufBuilder b;
    b.Str("tokenizer.ggml.model", "llama").I32Array("tokenizer.ggml.tokens", {1, 2, 3});
    const std::string bytes = b.Bytes();
    auto g = GgufFile::FromBuffer(bytes);
    ASSERT_TRUE(g.ok()) << g.status();
    expect(SpecFromGguf(**g).status(), absl::StatusCode::kInvalidArgument, "tokenizer.ggml.tokens");
  }
  // Token types of the wrong length, wrong value, wrong type.
  expect(Load([](GgufBuilder& b) {
           b.I32Array("tokenizer.ggml.token_type", {1, 1});
         }),
         absl::StatusCode::kInvalidArgument, "2 types for 5 tokens");
  expect(Load([](GgufBuilder& b) {
           b.I32Array("tokenizer.ggml.token_type", {1, 1, 1, 1, 77});
         }),
         absl::StatusCode::kInvalidArgument, "unknown token type 77");
  expect(Load([](GgufBuilder& b) {
           b.StrArray("tokenizer.ggml.token_type", {"1", "1", "1", "1", "1"});
         }),
         absl::StatusCode::kInvalidArgument, "token_type");
  // Special ids outside the vocabulary.
  expect(Load([](GgufBuilder& b) { b.U32("tokenizer.ggml.eos_token_id", 5); }),
         absl::StatusCode::kInvalidArgument, "eos id 5 outside");
  expect(Load([](GgufBuilder& b) { b.U32("tokenizer.ggml.bos_token_id", 0x7FFFFFFF); }),
         absl::StatusCode::kInvalidArgument, "bos id");
  expect(Load([](GgufBuilder& b) { b.Str("tokenizer.ggml.unknown_token_id", "zero"); }),
         absl::StatusCode::kInvalidArgument, "unknown_token_id");
  // Merges: no separator, unknown token.
  expect(Load([](GgufBuilder& b) { b.StrArray("tokenizer.ggml.merges", {"ab"}); }),
         absl::StatusCode::kInvalidArgument, "no separator");
  expect(Load([](GgufBuilder& b) { b.StrArray("tokenizer.ggml.merges", {"a q"}); }),
         absl::StatusCode::kInvalidArgument, "unknown token");
  // Byte-level vocabulary without merges, unknown pre-tokenizer.
  std::vector<std::string> big(300, "x");
  for (size_t i = 0; i < big.size(); ++i) big[i] += std::to_string(i);
  expect(Load([](GgufBuilder&) {}, big, "gpt2"), absl::StatusCode::kInvalidArgument,
         "without merges");
  expect(Load([](GgufBuilder& b) { b.Str("tokenizer.ggml.pre", "mystery"); }, {"a"}, "gpt2"),
         absl::StatusCode::kInvalidArgument, "mystery");
  // add_bos of the wrong type.
  expect(Load([](GgufBuilder& b) { b.U32("tokenizer.ggml.add_bos_token", 1); }),
         absl::StatusCode::kInvalidArgument, "add_bos_token");
}

}  // namespace
}  // namespace chai::engine
