// libFuzzer target for the evaluation data readers: bz2 decompression and
// the HellaSwag, PIQA, ARC and BoolQ parsers, fed the same bytes.
//
// Every input must be rejected with a non-empty status or parse into items
// whose invariants hold (checked with __builtin_trap so libFuzzer keeps the
// input): at least 2 choices (4 for HellaSwag, 2 for PIQA/BoolQ) and a gold
// index inside them; decompression never exceeds its cap.
//
// Seeds: tests/fuzz/eval_data/. Run: tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/strings/string_view.h"
#include "engine/eval/data_file.h"
#include "engine/eval/tasks.h"

namespace {

using chai::engine::eval::McItem;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckItems(const absl::StatusOr<std::vector<McItem>>& items, size_t choices) {
  if (!items.ok()) {
    Check(!items.status().message().empty());
    return;
  }
  Check(!items->empty());
  for (const McItem& it : *items) {
    Check(it.choices.size() >= 2);
    if (choices > 0) Check(it.choices.size() == choices);
    Check(it.gold >= 0 && it.gold < static_cast<int32_t>(it.choices.size()));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace ev = chai::engine::eval;
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  constexpr int64_t kCap = 1 << 20;
  absl::StatusOr<std::string> text = ev::DecompressBz2(in, kCap);
  if (text.ok()) Check(static_cast<int64_t>(text->size()) <= kCap);
  CheckItems(ev::ParseHellaSwag(in, "fuzz"), 4);
  CheckItems(ev::ParseArc(in, "fuzz"), 0);
  CheckItems(ev::ParseBoolq(in, "fuzz"), 2);
  // PIQA: the first line is the label file, the rest the JSONL.
  const size_t nl = in.find('\n');
  if (nl != absl::string_view::npos) {
    CheckItems(ev::ParsePiqa(in.substr(nl + 1), in.substr(0, nl), "fuzz"), 2);
  }
  CheckItems(ev::ParsePiqa(in, "0\n", "fuzz"), 2);
  return 0;
}
