#include "server/grpc/request_builder.h"

#include <cmath>
#include <fstream>
#include <limits>

#include "engine/loaded_model.h"
#include "gtest/gtest.h"
#include "tests/testing/golden.h"

namespace chai::server {
namespace {

class RequestBuilderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<engine::LoadedModel> m = engine::LoadModel(chai::testing::DefaultModelPath());
    if (m.ok()) model_ = new engine::LoadedModel(*std::move(m));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(model_, nullptr) << "default model missing: run deploy/setup.sh";
    limits_.context_length = 64;
    limits_.vocab_size = tok().vocab_size();
    limits_.default_max_tokens = 16;
  }
  const engine::Tokenizer& tok() { return *model_->tokenizer; }
  absl::StatusOr<engine::GenerationRequest> Build(const v1::GenerateRequest& r) {
    return BuildGenerationRequest(r, tok(), limits_);
  }
  static v1::GenerateRequest Text(const std::string& text) {
    v1::GenerateRequest r;
    r.set_text(text);
    return r;
  }
  void ExpectInvalid(const v1::GenerateRequest& r, const std::string& field) {
    absl::StatusOr<engine::GenerationRequest> b = Build(r);
    ASSERT_FALSE(b.ok()) << r.DebugString();
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << b.status();
    EXPECT_NE(b.status().message().find(field), absl::string_view::npos) << b.status();
  }

  static engine::LoadedModel* model_;
  RequestLimits limits_;
};
engine::LoadedModel* RequestBuilderTest::model_ = nullptr;

TEST_F(RequestBuilderTest, TextPromptIsEncodedLikeTheTokenizerWithDefaults) {
  absl::StatusOr<engine::GenerationRequest> b = Build(Text("The capital of France is"));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->prompt, tok().Encode("The capital of France is", true, false));
  EXPECT_FALSE(b->prompt.empty());
  // Defaults: unchanged distribution, default max_tokens, CHAI as the server
  // runs, no logprobs, no id (the service makes one).
  EXPECT_EQ(b->sampling.temperature, 1.0f);
  EXPECT_EQ(b->sampling.top_p, 1.0f);
  EXPECT_EQ(b->sampling.repetition_penalty, 1.0f);
  EXPECT_FALSE(b->sampling.seed.has_value());
  EXPECT_EQ(b->stop.max_tokens, 16);
  EXPECT_TRUE(b->chai);
  EXPECT_EQ(b->top_logprobs, -1);
  EXPECT_TRUE(b->id.empty());
}

TEST_F(RequestBuilderTest, ControlTokenTextInPlainPromptStaysText) {
  absl::StatusOr<engine::GenerationRequest> b = Build(Text("<|im_start|>"));
  ASSERT_TRUE(b.ok());
  const std::optional<int32_t> im_start = tok().TokenId("<|im_start|>");
  ASSERT_TRUE(im_start.has_value());
  for (int32_t id : b->prompt) EXPECT_NE(id, *im_start);
}

TEST_F(RequestBuilderTest, ChatIsRenderedWithTheTemplate) {
  v1::GenerateRequest r;
  v1::ChatMessage* m = r.mutable_chat()->add_messages();
  m->set_role("user");
  m->set_content("Hi");
  absl::StatusOr<engine::GenerationRequest> b = Build(r);
  ASSERT_TRUE(b.ok()) << b.status();
  std::vector<engine::ChatMessage> msgs = {{"user", "Hi"}};
  absl::StatusOr<std::string> rendered =
      tok().ApplyChatTemplate(std::span<const engine::ChatMessage>(msgs), true);
  ASSERT_TRUE(rendered.ok());
  EXPECT_EQ(b->prompt, tok().Encode(*rendered, false, true));
  EXPECT_EQ(b->prompt.front(), *tok().TokenId("<|im_start|>"));
}

TEST_F(RequestBuilderTest, TokenIdsAndSamplingAndStoppingAreCopied) {
  v1::GenerateRequest r;
  r.set_request_id("client-7");
  r.mutable_token_ids()->add_ids(1);
  r.mutable_token_ids()->add_ids(200);
  v1::SamplingParams* s = r.mutable_sampling();
  s->set_temperature(0);
  s->set_top_k(40);
  s->set_top_p(0.9f);
  s->set_min_p(0.05f);
  s->set_repetition_penalty(1.1f);
  s->set_presence_penalty(0.5f);
  s->set_frequency_penalty(-0.5f);
  s->set_seed(42);
  r.mutable_stopping()->set_max_tokens(62);
  r.mutable_stopping()->add_stop("\n\n");
  r.mutable_stopping()->add_stop_token_ids(2);
  r.mutable_stopping()->set_ignore_eos(true);
  r.set_logprobs(5);
  r.set_chai(false);
  absl::StatusOr<engine::GenerationRequest> b = Build(r);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->id, "client-7");
  EXPECT_EQ(b->prompt, (std::vector<int32_t>{1, 200}));
  EXPECT_EQ(b->sampling.temperature, 0.0f);
  EXPECT_EQ(b->sampling.top_k, 40);
  EXPECT_FLOAT_EQ(b->sampling.top_p, 0.9f);
  EXPECT_FLOAT_EQ(b->sampling.min_p, 0.05f);
  EXPECT_FLOAT_EQ(b->sampling.repetition_penalty, 1.1f);
  EXPECT_FLOAT_EQ(b->sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(b->sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(b->sampling.seed, 42u);
  EXPECT_EQ(b->stop.max_tokens, 62);  // 2 + 62 == context 64: allowed
  EXPECT_EQ(b->stop.stop, (std::vector<std::string>{"\n\n"}));
  EXPECT_EQ(b->stop.stop_token_ids, (std::vector<int32_t>{2}));
  EXPECT_TRUE(b->stop.ignore_eos);
  EXPECT_EQ(b->top_logprobs, 5);
  EXPECT_EQ(b->sampling.top_logprobs, 5);
  EXPECT_FALSE(b->chai);
}

TEST_F(RequestBuilderTest, DefaultMaxTokensShrinksToTheRoomLeft) {
  v1::GenerateRequest r;
  for (int i = 0; i < 60; ++i) r.mutable_token_ids()->add_ids(100);
  absl::StatusOr<engine::GenerationRequest> b = Build(r);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->stop.max_tokens, 4);
}

TEST_F(RequestBuilderTest, BadRequestsAreInvalidArgumentNamingTheField) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  ExpectInvalid(v1::GenerateRequest(), "prompt");
  ExpectInvalid(Text(""), "text");
  {
    v1::GenerateRequest r;
    r.mutable_token_ids();
    ExpectInvalid(r, "token_ids");
  }
  for (int32_t bad : {-1, limits_.vocab_size, 1 << 30}) {
    v1::GenerateRequest r;
    r.mutable_token_ids()->add_ids(5);
    r.mutable_token_ids()->add_ids(bad);
    ExpectInvalid(r, "token_ids");
  }
  for (float t : {nan, -0.5f, inf}) {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_temperature(t);
    ExpectInvalid(r, "temperature");
  }
  for (float p : {0.0f, -0.1f, 1.5f, nan}) {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_top_p(p);
    ExpectInvalid(r, "top_p");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_top_k(-1);
    ExpectInvalid(r, "top_k");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_min_p(1.5f);
    ExpectInvalid(r, "min_p");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_repetition_penalty(0);
    ExpectInvalid(r, "repetition_penalty");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_sampling()->set_frequency_penalty(3);
    ExpectInvalid(r, "frequency_penalty");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_stopping()->set_max_tokens(0);
    ExpectInvalid(r, "max_tokens");
  }
  {
    // Prompt + max_tokens over the context.
    v1::GenerateRequest r;
    r.mutable_token_ids()->add_ids(1);
    r.mutable_token_ids()->add_ids(2);
    r.mutable_stopping()->set_max_tokens(63);
    ExpectInvalid(r, "context");
  }
  {
    // A prompt that fills the context leaves no room at all.
    v1::GenerateRequest r;
    for (int i = 0; i < 64; ++i) r.mutable_token_ids()->add_ids(100);
    ExpectInvalid(r, "context");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_stopping()->add_stop("");
    ExpectInvalid(r, "stop");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.mutable_stopping()->add_stop_token_ids(limits_.vocab_size);
    ExpectInvalid(r, "stop_token_ids");
  }
  for (int32_t lp : {-1, 21}) {
    v1::GenerateRequest r = Text("hi");
    r.set_logprobs(lp);
    ExpectInvalid(r, "logprobs");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.set_request_id("has space");
    ExpectInvalid(r, "request_id");
  }
  {
    v1::GenerateRequest r = Text("hi");
    r.set_request_id(std::string(300, 'a'));
    ExpectInvalid(r, "request_id");
  }
  {
    v1::GenerateRequest r;
    v1::ChatMessage* m = r.mutable_chat()->add_messages();
    m->set_role("wizard");
    m->set_content("hi");
    ExpectInvalid(r, "role");
  }
  {
    v1::GenerateRequest r;
    r.mutable_chat();
    ExpectInvalid(r, "chat");
  }
}

TEST_F(RequestBuilderTest, TokenizeBuildsTheSamePromptAsGenerate) {
  v1::TokenizeRequest t;
  t.set_text("Hello world");
  absl::StatusOr<std::vector<int32_t>> ids = BuildPrompt(t, tok());
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, Build(Text("Hello world"))->prompt);
  EXPECT_EQ(BuildPrompt(v1::TokenizeRequest(), tok()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ToProtoTest, FinalUpdateCarriesCompletion) {
  engine::GenerationUpdate u;
  u.token_ids = {5, 6};
  u.text = "ab";
  u.logprobs = {{5, -0.5f, {{5, -0.5f}, {9, -1.5f}}}, {6, -0.25f, {}}};
  v1::GenerateResponse msg;
  ToProto("r1", u, &msg);
  EXPECT_EQ(msg.request_id(), "r1");
  EXPECT_EQ(msg.token_ids_size(), 2);
  EXPECT_EQ(msg.text(), "ab");
  ASSERT_EQ(msg.logprobs_size(), 2);
  EXPECT_EQ(msg.logprobs(0).top_size(), 2);
  EXPECT_EQ(msg.logprobs(0).top(1).token_id(), 9);
  EXPECT_FLOAT_EQ(msg.logprobs(1).logprob(), -0.25f);
  EXPECT_FALSE(msg.has_complete());

  u.finished = true;
  u.finish_reason = engine::FinishReason::kStop;
  u.prompt_tokens = 7;
  u.completion_tokens = 3;
  u.queue_s = 0.1;
  u.ttft_s = 0.2;
  u.total_s = 0.3;
  u.chai = true;
  v1::GenerateResponse last;
  ToProto("r1", u, &last);
  ASSERT_TRUE(last.has_complete());
  EXPECT_EQ(last.complete().finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(last.complete().usage().prompt_tokens(), 7);
  EXPECT_EQ(last.complete().usage().completion_tokens(), 3);
  EXPECT_DOUBLE_EQ(last.complete().timings().ttft_s(), 0.2);
  EXPECT_TRUE(last.complete().chai());
  EXPECT_EQ(ToProto(engine::FinishReason::kCancelled), v1::FINISH_REASON_CANCELLED);
  EXPECT_EQ(ToProto(engine::FinishReason::kError), v1::FINISH_REASON_ERROR);
  EXPECT_EQ(ToProto(engine::FinishReason::kEos), v1::FINISH_REASON_EOS);
  EXPECT_EQ(ToProto(engine::FinishReason::kLength), v1::FINISH_REASON_LENGTH);
}

}  // namespace
}  // namespace chai::server
