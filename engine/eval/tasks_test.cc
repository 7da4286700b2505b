// Task parsers on hand-made (and deliberately broken) input.
#include "engine/eval/tasks.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine::eval {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HellaSwagPreprocess, MatchesHarnessPython) {
  // Expected strings from lm-evaluation-harness hellaswag/utils.py preprocess().
  EXPECT_EQ(HellaSwagPreprocess("  How to cook [title] Boil water. [step] Add salt.  "),
            "How to cook. Boil water. Add salt.");
  EXPECT_EQ(HellaSwagPreprocess("a [b [c] d"), "a d");
  EXPECT_EQ(HellaSwagPreprocess("x [unclosed"), "x [unclosed");
  EXPECT_EQ(HellaSwagPreprocess("one   two    three"), "one  two  three");
  EXPECT_EQ(HellaSwagPreprocess("[header] Title [substeps] x"), " Title x");
}

TEST(ParseHellaSwag, SixLinesPerItem) {
  const std::string text =
      "Roof: A man is on a roof. he\n2\nfalls.\nsits.\njumps [step] high.\nwaves.\n"
      "Cook: She\r\n0\r\nstirs.\r\nbakes.\r\nfries.\r\nboils.\r\n";
  absl::StatusOr<std::vector<McItem>> items = ParseHellaSwag(text, "h.txt");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].context, "Roof: A man is on a roof. he");
  EXPECT_THAT((*items)[0].choices, ElementsAre("falls.", "sits.", "jumps high.", "waves."));
  EXPECT_EQ((*items)[0].gold, 2);
  EXPECT_EQ((*items)[1].context, "Cook: She");
  EXPECT_EQ((*items)[1].gold, 0);
  EXPECT_EQ((*items)[1].choices[3], "boils.");
}

TEST(ParseHellaSwag, RejectsBrokenLayouts) {
  EXPECT_THAT(ParseHellaSwag("ctx\n1\na\nb\nc\n", "h").status().message(),
              HasSubstr("not a multiple of 6"));
  EXPECT_THAT(ParseHellaSwag("ctx\n4\na\nb\nc\nd\n", "h").status().message(),
              HasSubstr("h line 2"));
  EXPECT_THAT(ParseHellaSwag("ctx\nx\na\nb\nc\nd\n", "h").status().message(),
              HasSubstr("gold label"));
  EXPECT_FALSE(ParseHellaSwag("", "h").ok());
}

TEST(ParsePiqa, BuildsHarnessPrompt) {
  const std::string jsonl =
      "{\"goal\": \"Open a jar\", \"sol1\": \"Twist the lid.\", \"sol2\": \"Shake it.\"}\n"
      "{\"goal\": \"g\", \"sol1\": \"a \", \"sol2\": \"b\"}\n";
  absl::StatusOr<std::vector<McItem>> items = ParsePiqa(jsonl, "0\n1\n", "p");
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 2u);
  EXPECT_EQ((*items)[0].context, "Question: Open a jar\nAnswer:");
  EXPECT_THAT((*items)[0].choices, ElementsAre("Twist the lid.", "Shake it."));
  EXPECT_EQ((*items)[0].gold, 0);
  EXPECT_EQ((*items)[1].choices[0], "a ");  // kept verbatim, as the harness does
  EXPECT_EQ((*items)[1].gold, 1);
}

TEST(ParsePiqa, RejectsBadInput) {
  const std::string ok = "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\"}\n";
  EXPECT_THAT(ParsePiqa(ok, "0\n1\n", "p").status().message(), HasSubstr("1 items but 2"));
  EXPECT_THAT(ParsePiqa(ok, "2\n", "p").status().message(), HasSubstr("not 0 or 1"));
  EXPECT_THAT(
      ParsePiqa("{\"goal\": 3, \"sol1\": \"a\", \"sol2\": \"b\"}\n", "0\n", "p").status().message(),
      HasSubstr("\"goal\""));
  EXPECT_THAT(ParsePiqa("{\"goal\": \"g\"\n", "0\n", "p").status().message(),
              HasSubstr("p line 1: not valid JSON"));
  EXPECT_THAT(ParsePiqa("[1, 2]\n", "0\n", "p").status().message(), HasSubstr("not a JSON object"));
}

TEST(ParseArc, GoldIsIndexOfAnswerKey) {
  const std::string jsonl =
      R"({"id":"x","question":{"stem":"Which?","choices":[{"text":"red","label":"1"},)"
      R"({"text":"blue","label":"2"},{"text":"green","label":"3"}]},"answerKey":"3"})"
      "\n";
  absl::StatusOr<std::vector<McItem>> items = ParseArc(jsonl, "a");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ((*items)[0].context, "Question: Which?\nAnswer:");
  EXPECT_THAT((*items)[0].choices, ElementsAre("red", "blue", "green"));
  EXPECT_EQ((*items)[0].gold, 2);
}

TEST(ParseArc, RejectsBadInput) {
  EXPECT_THAT(ParseArc(R"({"question":{"stem":"q","choices":[{"text":"a","label":"A"},)"
                       R"({"text":"b","label":"B"}]},"answerKey":"C"})",
                       "a")
                  .status()
                  .message(),
              HasSubstr("answerKey \"C\" names no choice"));
  EXPECT_THAT(ParseArc(R"({"question":{"stem":"q","choices":[{"text":"a","label":"A"}]},)"
                       R"("answerKey":"A"})",
                       "a")
                  .status()
                  .message(),
              HasSubstr("2 to 26"));
  EXPECT_THAT(ParseArc(R"({"question":"q","answerKey":"A"})", "a").status().message(),
              HasSubstr("\"question\""));
  EXPECT_FALSE(ParseArc(R"({"question":{"stem":"q","choices":[1,2]},"answerKey":"A"})", "a").ok());
}

TEST(ParseBoolq, LabelsAndPrompt) {
  const std::string jsonl = R"({"question":"is it","passage":"T -- text","idx":0,"label":"true"})"
                            "\n"
                            R"({"question":"is not","passage":"P","idx":1,"label":false})"
                            "\n";
  absl::StatusOr<std::vector<McItem>> items = ParseBoolq(jsonl, "b");
  ASSERT_TRUE(items.ok()) << items.status();
  EXPECT_EQ((*items)[0].context, "T -- text\nQuestion: is it?\nAnswer:");
  EXPECT_THAT((*items)[0].choices, ElementsAre("no", "yes"));
  EXPECT_EQ((*items)[0].gold, 1);
  EXPECT_EQ((*items)[1].gold, 0);
  EXPECT_THAT(
      ParseBoolq(R"({"question":"q","passage":"p","label":"maybe"})", "b").status().message(),
      HasSubstr("label"));
}

TEST(Tasks, NamesAndSplits) {
  for (const char* name : {"hellaswag", "piqa", "arc-easy", "arc-challenge", "boolq", "wikitext"}) {
    absl::StatusOr<Task> t = ParseTask(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_STREQ(TaskName(*t), name);
  }
  EXPECT_FALSE(ParseTask("mmlu").ok());
  EXPECT_FALSE(ParseSplit("train").ok());
  EXPECT_FALSE(IsMultipleChoice(Task::kWikitext));
  EXPECT_TRUE(IsMultipleChoice(Task::kBoolq));
}

TEST(LoadMcTask, MissingFolderIsNotFound) {
  absl::StatusOr<std::vector<McItem>> items =
      LoadMcTask(Task::kPiqa, "/nonexistent/eval/piqa", Split::kDefault);
  EXPECT_EQ(items.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadMcTask(Task::kBoolq, "/nonexistent", Split::kTest).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadWikitext("/nonexistent", Split::kDev).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace chai::engine::eval
