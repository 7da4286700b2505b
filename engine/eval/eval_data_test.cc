// The parsers on the real evaluation data (../shared/data/eval, each folder's
// SOURCE.md gives the counts checked here). Set CHAI_EVAL_DATA to use another
// copy; the test is skipped, saying why, when the folder is absent.
#include <sys/stat.h>

#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "engine/eval/tasks.h"
#include "gtest/gtest.h"

namespace chai::engine::eval {
namespace {

std::string DataDir() {
  const char* env = std::getenv("CHAI_EVAL_DATA");
  if (env != nullptr) return env;
  const char* src = std::getenv("CHAI_SOURCE_DIR");
  return std::string(src != nullptr ? src : CHAI_SOURCE_DIR) + "/../shared/data/eval";
}

bool HaveData() {
  struct stat st;
  return ::stat(DataDir().c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

#define REQUIRE_DATA() \
  if (!HaveData()) GTEST_SKIP() << "no evaluation data at " << DataDir() << " (set CHAI_EVAL_DATA)"

std::map<int32_t, int> GoldCounts(const std::vector<McItem>& items) {
  std::map<int32_t, int> counts;
  for (const McItem& it : items) ++counts[it.gold];
  return counts;
}

TEST(EvalData, HellaSwagValidation) {
  REQUIRE_DATA();
  absl::StatusOr<std::vector<McItem>> items =
      LoadMcTask(Task::kHellaSwag, DataDir() + "/hellaswag", Split::kDefault);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), 10042u);
  // SOURCE.md: gold labels 0=2515, 1=2485, 2=2584, 3=2458.
  EXPECT_EQ(GoldCounts(*items),
            (std::map<int32_t, int>{{0, 2515}, {1, 2485}, {2, 2584}, {3, 2458}}));
  EXPECT_EQ((*items)[0].context, "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ((*items)[0].choices[3], "starts pulling up roofing on a roof.");
  for (const McItem& it : *items) {
    ASSERT_EQ(it.choices.size(), 4u);
    // The harness's preprocess leaves no "[...]" spans behind.
    EXPECT_EQ(it.context.find("[step]"), std::string::npos) << it.context;
  }
}

TEST(EvalData, PiqaValidation) {
  REQUIRE_DATA();
  absl::StatusOr<std::vector<McItem>> items =
      LoadMcTask(Task::kPiqa, DataDir() + "/piqa", Split::kDev);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), 1838u);
  EXPECT_EQ(GoldCounts(*items), (std::map<int32_t, int>{{0, 910}, {1, 928}}));
  EXPECT_EQ((*items)[0].context,
            "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
}

TEST(EvalData, BoolqDev) {
  REQUIRE_DATA();
  absl::StatusOr<std::vector<McItem>> items =
      LoadMcTask(Task::kBoolq, DataDir() + "/boolq", Split::kDefault);
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ(items->size(), 3270u);
  EXPECT_EQ(GoldCounts(*items), (std::map<int32_t, int>{{0, 1237}, {1, 2033}}));
  EXPECT_TRUE(absl::StartsWith((*items)[0].context, "Ethanol fuel -- All biomass"));
  EXPECT_TRUE(
      absl::EndsWith((*items)[0].context,
                     "\nQuestion: does ethanol take more energy make that produces?\nAnswer:"));
}

TEST(EvalData, ArcBothLevelsBothSplits) {
  REQUIRE_DATA();
  struct Case {
    Task task;
    Split split;
    size_t n;
    std::map<size_t, int> by_choices;  // SOURCE.md / the files
  };
  const Case cases[] = {
      {Task::kArcChallenge, Split::kDefault, 1172, {{3, 4}, {4, 1165}, {5, 3}}},
      {Task::kArcChallenge, Split::kDev, 299, {{3, 3}, {4, 295}, {5, 1}}},
      {Task::kArcEasy, Split::kTest, 2376, {{3, 7}, {4, 2365}, {5, 4}}},
      {Task::kArcEasy, Split::kDev, 570, {{3, 1}, {4, 567}, {5, 2}}},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::vector<McItem>> items = LoadMcTask(c.task, DataDir() + "/arc", c.split);
    ASSERT_TRUE(items.ok()) << items.status();
    EXPECT_EQ(items->size(), c.n) << TaskName(c.task);
    std::map<size_t, int> by_choices;
    for (const McItem& it : *items) ++by_choices[it.choices.size()];
    EXPECT_EQ(by_choices, c.by_choices) << TaskName(c.task);
  }
  absl::StatusOr<std::vector<McItem>> easy =
      LoadMcTask(Task::kArcEasy, DataDir() + "/arc", Split::kTest);
  ASSERT_TRUE(easy.ok());
  EXPECT_EQ((*easy)[1].context,
            "Question: Which piece of safety equipment is used to keep mold spores from entering "
            "the respiratory system?\nAnswer:");
  EXPECT_EQ((*easy)[1].gold, 1);  // answerKey "B"
}

TEST(EvalData, WikitextTest) {
  REQUIRE_DATA();
  absl::StatusOr<std::string> text = LoadWikitext(DataDir() + "/wikitext2", Split::kDefault);
  ASSERT_TRUE(text.ok()) << text.status();
  // SOURCE.md: 1,290,590 bytes; the final newline is dropped as llama.cpp does.
  EXPECT_EQ(text->size(), 1290589u);
  EXPECT_EQ(text->substr(0, 19), " \n = Robert Boulter");
}

}  // namespace
}  // namespace chai::engine::eval
