#include "zonewall/policy/selector.h"

#include <gtest/gtest.h>

namespace zonewall::policy {
namespace {

Selector parse(const std::string& s) {
  auto sel = parseSelector(s);
  EXPECT_TRUE(sel.has_value()) << s << ": " << sel.error().message << " at " << sel.error().offset;
  return sel.value_or(Selector());
}

struct Case {
  const char* selector;
  bool expected;
};

// Every operator of the Calico grammar against one label set.
TEST(Selector, EvaluatesTheFullGrammar) {
  Labels l{{"app", "web"}, {"zone", "secure"}, {"tier", "frontend-v2"}};
  const Case cases[] = {
      {.selector = "all()", .expected = true},
      {.selector = "", .expected = true},
      // Calico's GlobalNode evaluates true (libcalico-go/lib/selector/parser/ast.go).
      {.selector = "global()", .expected = true},
      {.selector = "app == 'web'", .expected = true},
      {.selector = "app == \"db\"", .expected = false},
      {.selector = "app != 'db'", .expected = true},
      {.selector = "missing != 'x'", .expected = true},
      {.selector = "app in {'web', 'api'}", .expected = true},
      {.selector = "app not in {'web'}", .expected = false},
      {.selector = "missing not in {'web'}", .expected = true},
      {.selector = "has(zone)", .expected = true},
      {.selector = "!has(zone)", .expected = false},
      {.selector = "! has(missing)", .expected = true},
      {.selector = "tier contains 'end'", .expected = true},
      {.selector = "tier starts with 'front'", .expected = true},
      {.selector = "tier ends with 'v2'", .expected = true},
      {.selector = "tier ends with 'v3'", .expected = false},
      {.selector = "missing contains ''", .expected = false},
      {.selector = "app == 'web' && zone == 'public'", .expected = false},
      {.selector = "app == 'web' || zone == 'public'", .expected = true},
      {.selector = "!(app == 'web' && zone == 'secure')", .expected = false},
      {.selector = "app == 'x' || app == 'y' && zone == 'secure'", .expected = false},
      {.selector = "(app == 'x' || app == 'web') && zone == 'secure'", .expected = true},
      {.selector = "app in {}", .expected = false},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse(c.selector).matches(l), c.expected) << c.selector;
  }
}

// Keys may carry DNS prefixes; keywords are whole words.
TEST(Selector, LabelKeysAndKeywords) {
  Labels l{{"projectcalico.org/namespace", "x"}, {"index", "1"}, {"in", "y"}};
  EXPECT_TRUE(parse("projectcalico.org/namespace == 'x'").matches(l));
  EXPECT_TRUE(parse("index == '1'").matches(l));
  EXPECT_TRUE(parse("in == 'y'").matches(l));
}

// Canonical text: equal selectors print equal.
TEST(Selector, CanonicalText) {
  EXPECT_EQ(parse("app   ==  \"web\"").str(), "app == 'web'");
  EXPECT_EQ(parse("x in {'b','a','b'}").str(), "x in {'a', 'b'}");
  EXPECT_EQ(parse("a == 'x' && (b == 'y' || c == 'z')").str(),
            "a == 'x' && (b == 'y' || c == 'z')");
  EXPECT_EQ(parse("").str(), "all()");
}

struct BadCase {
  const char* selector;
  size_t offset;
};

// Parse errors point at the offending character.
TEST(Selector, ReportsErrorOffsets) {
  const BadCase cases[] = {
      {.selector = "app ==", .offset = 6},
      {.selector = "app = 'x'", .offset = 4},
      {.selector = "app == 'x' &&", .offset = 13},
      {.selector = "(app == 'x'", .offset = 11},
      {.selector = "app == 'x')", .offset = 10},
      {.selector = "has(app", .offset = 7},
      {.selector = "app in {'a' 'b'}", .offset = 12},
      {.selector = "app == 'unterminated", .offset = 7},
      {.selector = "app not 'x'", .offset = 8},
      {.selector = "app starts 'x'", .offset = 11},
  };
  for (const BadCase& c : cases) {
    auto sel = parseSelector(c.selector);
    ASSERT_FALSE(sel.has_value()) << c.selector;
    EXPECT_EQ(sel.error().offset, c.offset) << c.selector << ": " << sel.error().message;
  }
}

// Calico's tokenizer accepts both spellings of its two-word operators ("not in"/"notin",
// "starts with"/"startswith", "ends with"/"endswith"), extra blanks between the words, and the
// operator words as label names; "starts" or "ends" without "with" is an error. Cases from
// projectcalico/calico libcalico-go/lib/selector/tokenizer/tokenizer_test.go (tokenTests),
// each checked here by what it parses to.
TEST(Selector, AcceptsCalicosOperatorSpellings) {
  struct Spelling {
    const char* selector;
    const char* canonical;  // nullptr: Calico refuses it
  };
  const Spelling cases[] = {
      {"label startswith \"value\"", "label starts with 'value'"},
      {"label endswith \"value\"", "label ends with 'value'"},
      {"label starts with \"value\"", "label starts with 'value'"},
      {"label ends with \"value\"", "label ends with 'value'"},
      {"startswith starts with \"value\"", "startswith starts with 'value'"},
      {"endswith ends with \"value\"", "endswith ends with 'value'"},
      {"label starts  with \"value\"", "label starts with 'value'"},
      {"label ends  with \"value\"", "label ends with 'value'"},
      {"contains contains \"contains\"", "contains contains 'contains'"},
      {"label contains\"value\"", "label contains 'value'"},
      {"a not in {\"a\",\"B\"}", "a not in {'B', 'a'}"},
      {"a notin {\"a\",\"B\"}", "a not in {'B', 'a'}"},
      {"a notin{}", "a not in {}"},
      {"label starts foo \"value\"", nullptr},
      {"label ends foo \"value\"", nullptr},
      {"label squiggles \"value\"", nullptr},
  };
  for (const Spelling& c : cases) {
    auto sel = parseSelector(c.selector);
    if (c.canonical == nullptr) {
      EXPECT_FALSE(sel.has_value()) << c.selector;
      continue;
    }
    ASSERT_TRUE(sel.has_value()) << c.selector << ": " << sel.error().message;
    EXPECT_EQ(sel->str(), c.canonical) << c.selector;
  }
  // One spelling or the other, the same match.
  const Labels labels{{"label", "value-1"}, {"a", "x"}};
  EXPECT_TRUE(parse("label startswith 'value'").matches(labels));
  EXPECT_FALSE(parse("label endswith 'value'").matches(labels));
  EXPECT_TRUE(parse("a notin {'b'}").matches(labels));
}

}  // namespace
}  // namespace zonewall::policy
