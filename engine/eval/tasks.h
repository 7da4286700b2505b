// The evaluation tasks of `chai eval` and their data: parsing each task's
// files (the folder layouts of ../shared/data/eval/<task>/, see each
// SOURCE.md) into the prompts lm-evaluation-harness builds for it.
//
// Multiple-choice items carry the harness's strings exactly (zero-shot, its
// task YAMLs): the context is doc_to_text, the choices doc_to_choice WITHOUT
// the target delimiter (the scorer prepends " "), gold doc_to_target:
//   hellaswag      context = preprocess(activity_label + ": " + ctx),
//                  choices = preprocess(ending) x 4 (hellaswag/utils.py).
//                  The llama.cpp text layout has ctx_a and ctx_b joined
//                  already, so the harness's capitalisation of ctx_b cannot
//                  be redone (SOURCE.md); the bracket preprocessing is.
//   piqa           "Question: {goal}\nAnswer:", [sol1, sol2]
//   arc-easy/-challenge  "Question: {question}\nAnswer:", choices.text,
//                  gold = index of answerKey among choices.label
//   boolq          "{passage}\nQuestion: {question}?\nAnswer:", ["no", "yes"]
// Splits: ARC has test and dev (default test); HellaSwag, PIQA and BoolQ
// ship only their validation split ("dev"); WikiText-2 only "test".
//
// Data files are untrusted: every malformed line (bad JSON, missing or
// mistyped fields, labels out of range, wrong line counts) is an
// INVALID_ARGUMENT naming the file and line; nothing crashes.
//
// Thread-safety: pure functions.
#ifndef CHAI_ENGINE_EVAL_TASKS_H_
#define CHAI_ENGINE_EVAL_TASKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace chai::engine::eval {

enum class Task { kHellaSwag, kPiqa, kArcEasy, kArcChallenge, kBoolq, kWikitext };
enum class Split { kDefault, kTest, kDev };

// "hellaswag", "piqa", "arc-easy", "arc-challenge", "boolq", "wikitext".
absl::StatusOr<Task> ParseTask(absl::string_view name);
const char* TaskName(Task task);
// "test" / "dev".
absl::StatusOr<Split> ParseSplit(absl::string_view name);
bool IsMultipleChoice(Task task);

struct McItem {
  std::string context;
  std::vector<std::string> choices;  // >= 2, without the leading " "
  int32_t gold = 0;                  // index into choices
};

// HellaSwag's text clean-up, as lm-evaluation-harness's hellaswag/utils.py
// preprocess(): strip, " [title]" -> ". ", drop "[...]" spans (shortest
// match), then one pass replacing "  " with " ". Python's strip() also drops
// non-ASCII whitespace; this strips ASCII whitespace only (the data is ASCII
// at its ends).
std::string HellaSwagPreprocess(absl::string_view text);

// Parsers over file contents (`name` is used in error messages).
absl::StatusOr<std::vector<McItem>> ParseHellaSwag(absl::string_view text, absl::string_view name);
absl::StatusOr<std::vector<McItem>> ParsePiqa(absl::string_view jsonl, absl::string_view labels,
                                              absl::string_view name);
absl::StatusOr<std::vector<McItem>> ParseArc(absl::string_view jsonl, absl::string_view name);
absl::StatusOr<std::vector<McItem>> ParseBoolq(absl::string_view jsonl, absl::string_view name);

// Loads a multiple-choice task from its folder. INVALID_ARGUMENT when the
// task has no such split or is not multiple choice; NOT_FOUND when a file is
// missing; parse errors as above.
absl::StatusOr<std::vector<McItem>> LoadMcTask(Task task, const std::string& dir, Split split);

// WikiText-2's raw test text (wiki.test.raw[.bz2]) as llama.cpp's
// perplexity tool reads a prompt file: the whole file, one trailing newline
// dropped.
absl::StatusOr<std::string> LoadWikitext(const std::string& dir, Split split);

}  // namespace chai::engine::eval

#endif  // CHAI_ENGINE_EVAL_TASKS_H_
