#include "engine/serving/stop_strings.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace chai::engine {
namespace {

// Feeds `deltas` one at a time; returns everything emitted and whether (and
// at which delta) the matcher stopped.
struct Fed {
  std::string text;
  int stopped_at = -1;
};
Fed Feed(StopStringMatcher& m, const std::vector<std::string>& deltas,
         std::vector<std::string>* per_delta = nullptr) {
  Fed fed;
  for (size_t i = 0; i < deltas.size(); ++i) {
    StopStringMatcher::Result r = m.Push(deltas[i]);
    fed.text += r.text;
    if (per_delta != nullptr) per_delta->push_back(r.text);
    if (r.stopped) {
      fed.stopped_at = static_cast<int>(i);
      return fed;
    }
  }
  fed.text += m.Flush();
  return fed;
}

TEST(StopStringMatcherTest, NoStopsPassesThrough) {
  StopStringMatcher m({});
  std::vector<std::string> out;
  Fed fed = Feed(m, {"Hello", ", ", "world"}, &out);
  EXPECT_EQ(fed.text, "Hello, world");
  EXPECT_EQ(out, (std::vector<std::string>{"Hello", ", ", "world"}));
  EXPECT_EQ(fed.stopped_at, -1);
}

TEST(StopStringMatcherTest, CutsExactlyInsideOneDelta) {
  StopStringMatcher m({"STOP"});
  Fed fed = Feed(m, {"abc", "deSTOPfg", "never"});
  EXPECT_EQ(fed.text, "abcde");
  EXPECT_EQ(fed.stopped_at, 1);
}

TEST(StopStringMatcherTest, StopSpanningDeltasNeverLeaks) {
  StopStringMatcher m({"\nUser:"});
  std::vector<std::string> out;
  Fed fed = Feed(m, {"Sure.", "\nUs", "er", ":", " hi"}, &out);
  EXPECT_EQ(fed.text, "Sure.");
  EXPECT_EQ(fed.stopped_at, 3);
  // The partial "\nUs" and "er" were held back, not emitted.
  EXPECT_EQ(out, (std::vector<std::string>{"Sure.", "", "", ""}));
}

TEST(StopStringMatcherTest, HeldPrefixReleasedWhenItDiverges) {
  StopStringMatcher m({"###"});
  std::vector<std::string> out;
  Fed fed = Feed(m, {"a#", "#", "b", "c"}, &out);
  EXPECT_EQ(fed.stopped_at, -1);
  EXPECT_EQ(fed.text, "a##bc");
  EXPECT_EQ(out, (std::vector<std::string>{"a", "", "##b", "c"}));
}

TEST(StopStringMatcherTest, FlushReturnsHeldTextAtEnd) {
  StopStringMatcher m({"END"});
  Fed fed = Feed(m, {"the E", "N"});
  EXPECT_EQ(fed.stopped_at, -1);
  EXPECT_EQ(fed.text, "the EN");
}

TEST(StopStringMatcherTest, EarliestOfSeveralStopsWins) {
  StopStringMatcher m({"world", "lo, w"});
  Fed fed = Feed(m, {"hel", "lo, world"});
  EXPECT_EQ(fed.text, "hel");
  EXPECT_EQ(fed.stopped_at, 1);
}

TEST(StopStringMatcherTest, MultibyteStopString) {
  StopStringMatcher m({"\xE2\x82\xAC!"});  // "€!"
  std::vector<std::string> out;
  Fed fed = Feed(m, {"5 ", "\xE2\x82\xAC", "!", "x"}, &out);
  EXPECT_EQ(fed.text, "5 ");
  EXPECT_EQ(fed.stopped_at, 2);
  EXPECT_EQ(out[1], "");  // the euro sign was held back whole
}

TEST(StopStringMatcherTest, StopAtVeryStart) {
  StopStringMatcher m({"x"});
  Fed fed = Feed(m, {"xyz"});
  EXPECT_EQ(fed.text, "");
  EXPECT_EQ(fed.stopped_at, 0);
}

}  // namespace
}  // namespace chai::engine
