#include "engine/eval/tasks.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "engine/eval/data_file.h"
#include "nlohmann/json.hpp"

namespace chai::engine::eval {
namespace {

using nlohmann::json;

// Lines of a text file without their "\n" / "\r\n"; a final newline does not
// start another line.
std::vector<absl::string_view> Lines(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (absl::string_view& l : lines) absl::ConsumeSuffix(&l, "\r");
  return lines;
}

absl::Status LineError(absl::string_view name, size_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, " line ", line + 1, ": ", what));
}

// One JSON object per non-blank line.
absl::StatusOr<std::vector<std::pair<size_t, json>>> ParseJsonl(absl::string_view text,
                                                                absl::string_view name) {
  std::vector<std::pair<size_t, json>> out;
  std::vector<absl::string_view> lines = Lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (absl::StripAsciiWhitespace(lines[i]).empty()) continue;
    json j = json::parse(lines[i].begin(), lines[i].end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return LineError(name, i, "not valid JSON");
    if (!j.is_object()) return LineError(name, i, "not a JSON object");
    out.emplace_back(i, std::move(j));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " has no items"));
  return out;
}

absl::StatusOr<std::string> StringField(const json& obj, const char* key, absl::string_view name,
                                        size_t line) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return LineError(name, line, absl::StrCat("field \"", key, "\" missing or not a string"));
  }
  return it->get<std::string>();
}

}  // namespace

absl::StatusOr<Task> ParseTask(absl::string_view name) {
  if (name == "hellaswag") return Task::kHellaSwag;
  if (name == "piqa") return Task::kPiqa;
  if (name == "arc-easy") return Task::kArcEasy;
  if (name == "arc-challenge") return Task::kArcChallenge;
  if (name == "boolq") return Task::kBoolq;
  if (name == "wikitext") return Task::kWikitext;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown task '", name, "' (hellaswag, piqa, arc-easy, arc-challenge, boolq or wikitext)"));
}

const char* TaskName(Task task) {
  switch (task) {
    case Task::kHellaSwag:
      return "hellaswag";
    case Task::kPiqa:
      return "piqa";
    case Task::kArcEasy:
      return "arc-easy";
    case Task::kArcChallenge:
      return "arc-challenge";
    case Task::kBoolq:
      return "boolq";
    case Task::kWikitext:
      return "wikitext";
  }
  return "?";
}

absl::StatusOr<Split> ParseSplit(absl::string_view name) {
  if (name == "test") return Split::kTest;
  if (name == "dev") return Split::kDev;
  return absl::InvalidArgumentError(absl::StrCat("unknown split '", name, "' (test or dev)"));
}

bool IsMultipleChoice(Task task) { return task != Task::kWikitext; }

std::string HellaSwagPreprocess(absl::string_view text) {
  std::string s = absl::StrReplaceAll(absl::StripAsciiWhitespace(text), {{" [title]", ". "}});
  // Python's re.sub("\\[.*?\\]", "", s): each "[" up to the nearest "]" goes;
  // "." does not match "\n", so a span never crosses a line break.
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return absl::StrReplaceAll(out, {{"  ", " "}});
}

absl::StatusOr<std::vector<McItem>> ParseHellaSwag(absl::string_view text, absl::string_view name) {
  std::vector<absl::string_view> lines = Lines(text);
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(name, " has no items"));
  if (lines.size() % 6 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " has ", lines.size(), " lines, not a multiple of 6 (context, label, 4 endings)"));
  }
  std::vector<McItem> items(lines.size() / 6);
  for (size_t i = 0; i < items.size(); ++i) {
    const size_t base = 6 * i;
    int32_t label = -1;
    if (!absl::SimpleAtoi(lines[base + 1], &label) || label < 0 || label > 3) {
      return LineError(name, base + 1, "gold label is not 0, 1, 2 or 3");
    }
    items[i].context = HellaSwagPreprocess(lines[base]);
    for (size_t c = 0; c < 4; ++c)
      items[i].choices.push_back(HellaSwagPreprocess(lines[base + 2 + c]));
    items[i].gold = label;
  }
  return items;
}

absl::StatusOr<std::vector<McItem>> ParsePiqa(absl::string_view jsonl, absl::string_view labels,
                                              absl::string_view name) {
  absl::StatusOr<std::vector<std::pair<size_t, json>>> rows = ParseJsonl(jsonl, name);
  if (!rows.ok()) return rows.status();
  std::vector<absl::string_view> label_lines = Lines(labels);
  if (label_lines.size() != rows->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", rows->size(), " items but ", label_lines.size(), " labels"));
  }
  std::vector<McItem> items;
  for (size_t i = 0; i < rows->size(); ++i) {
    const auto& [line, obj] = (*rows)[i];
    McItem item;
    absl::StatusOr<std::string> goal = StringField(obj, "goal", name, line);
    absl::StatusOr<std::string> sol1 = StringField(obj, "sol1", name, line);
    absl::StatusOr<std::string> sol2 = StringField(obj, "sol2", name, line);
    for (const auto* s : {&goal, &sol1, &sol2}) {
      if (!s->ok()) return s->status();
    }
    int32_t label = -1;
    if (!absl::SimpleAtoi(label_lines[i], &label) || (label != 0 && label != 1)) {
      return absl::InvalidArgumentError(absl::StrCat(name, " labels line ", i + 1, ": not 0 or 1"));
    }
    item.context = absl::StrCat("Question: ", *goal, "\nAnswer:");
    item.choices = {*std::move(sol1), *std::move(sol2)};
    item.gold = label;
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<std::vector<McItem>> ParseArc(absl::string_view jsonl, absl::string_view name) {
  absl::StatusOr<std::vector<std::pair<size_t, json>>> rows = ParseJsonl(jsonl, name);
  if (!rows.ok()) return rows.status();
  std::vector<McItem> items;
  for (const auto& [line, obj] : *rows) {
    auto q = obj.find("question");
    if (q == obj.end() || !q->is_object()) {
      return LineError(name, line, "field \"question\" missing or not an object");
    }
    absl::StatusOr<std::string> stem = StringField(*q, "stem", name, line);
    if (!stem.ok()) return stem.status();
    absl::StatusOr<std::string> key = StringField(obj, "answerKey", name, line);
    if (!key.ok()) return key.status();
    auto choices = q->find("choices");
    if (choices == q->end() || !choices->is_array() || choices->size() < 2 ||
        choices->size() > 26) {
      return LineError(name, line, "\"choices\" must be an array of 2 to 26 entries");
    }
    McItem item;
    item.gold = -1;
    for (const json& c : *choices) {
      if (!c.is_object()) return LineError(name, line, "a choice is not an object");
      absl::StatusOr<std::string> text = StringField(c, "text", name, line);
      if (!text.ok()) return text.status();
      absl::StatusOr<std::string> label = StringField(c, "label", name, line);
      if (!label.ok()) return label.status();
      // The harness takes choices.label.index(answerKey): the first match.
      if (*label == *key && item.gold < 0) item.gold = static_cast<int32_t>(item.choices.size());
      item.choices.push_back(*std::move(text));
    }
    if (item.gold < 0) {
      return LineError(name, line, absl::StrCat("answerKey \"", *key, "\" names no choice"));
    }
    item.context = absl::StrCat("Question: ", *stem, "\nAnswer:");
    items.push_back(std::move(item));
  }
  return items;
}

absl::StatusOr<std::vector<McItem>> ParseBoolq(absl::string_view jsonl, absl::string_view name) {
  absl::StatusOr<std::vector<std::pair<size_t, json>>> rows = ParseJsonl(jsonl, name);
  if (!rows.ok()) return rows.status();
  std::vector<McItem> items;
  for (const auto& [line, obj] : *rows) {
    absl::StatusOr<std::string> passage = StringField(obj, "passage", name, line);
    if (!passage.ok()) return passage.status();
    absl::StatusOr<std::string> question = StringField(obj, "question", name, line);
    if (!question.ok()) return question.status();
    auto label = obj.find("label");
    int32_t gold = -1;
    if (label != obj.end() && label->is_boolean()) {
      gold = label->get<bool>() ? 1 : 0;
    } else if (label != obj.end() && label->is_string()) {
      const std::string& s = label->get_ref<const std::string&>();
      if (s == "true") gold = 1;
      if (s == "false") gold = 0;
    }
    if (gold < 0) return LineError(name, line, "field \"label\" is not true or false");
    McItem item;
    item.context = absl::StrCat(*passage, "\nQuestion: ", *question, "?\nAnswer:");
    item.choices = {"no", "yes"};
    item.gold = gold;
    items.push_back(std::move(item));
  }
  return items;
}

namespace {

absl::StatusOr<std::string> ReadTaskFile(const std::string& dir, const std::string& name) {
  absl::StatusOr<std::string> path = FindDataFile(dir, name);
  if (!path.ok()) return path.status();
  return ReadDataFile(*path);
}

absl::Status NoSuchSplit(Task task, absl::string_view only) {
  return absl::InvalidArgumentError(
      absl::StrCat(TaskName(task), " has only a ", only, " split here"));
}

}  // namespace

absl::StatusOr<std::vector<McItem>> LoadMcTask(Task task, const std::string& dir, Split split) {
  switch (task) {
    case Task::kHellaSwag: {
      if (split == Split::kTest) return NoSuchSplit(task, "dev (validation)");
      const std::string file = "hellaswag_val_full.txt";
      absl::StatusOr<std::string> text = ReadTaskFile(dir, file);
      if (!text.ok()) return text.status();
      return ParseHellaSwag(*text, file);
    }
    case Task::kPiqa: {
      if (split == Split::kTest) return NoSuchSplit(task, "dev (validation)");
      absl::StatusOr<std::string> jsonl = ReadTaskFile(dir, "valid.jsonl");
      if (!jsonl.ok()) return jsonl.status();
      absl::StatusOr<std::string> labels = ReadTaskFile(dir, "valid-labels.lst");
      if (!labels.ok()) return labels.status();
      return ParsePiqa(*jsonl, *labels, "valid.jsonl");
    }
    case Task::kArcEasy:
    case Task::kArcChallenge: {
      const std::string file = absl::StrCat(task == Task::kArcEasy ? "ARC-Easy" : "ARC-Challenge",
                                            split == Split::kDev ? "-Dev" : "-Test", ".jsonl");
      absl::StatusOr<std::string> text = ReadTaskFile(dir, file);
      if (!text.ok()) return text.status();
      return ParseArc(*text, file);
    }
    case Task::kBoolq: {
      if (split == Split::kTest) return NoSuchSplit(task, "dev (validation)");
      absl::StatusOr<std::string> text = ReadTaskFile(dir, "val.jsonl");
      if (!text.ok()) return text.status();
      return ParseBoolq(*text, "val.jsonl");
    }
    case Task::kWikitext:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat(TaskName(task), " is not multiple choice"));
}

absl::StatusOr<std::string> LoadWikitext(const std::string& dir, Split split) {
  if (split == Split::kDev) return NoSuchSplit(Task::kWikitext, "test");
  absl::StatusOr<std::string> text = ReadTaskFile(dir, "wiki.test.raw");
  if (!text.ok()) return text.status();
  if (!text->empty() && text->back() == '\n') text->pop_back();
  if (text->empty()) return absl::InvalidArgumentError("wiki.test.raw is empty");
  return text;
}

}  // namespace chai::engine::eval
