// Calico's own selector tests, turned into zonewall's: what they assert are facts about the
// grammar, so zonewall's parser must agree with every one. Sources (projectcalico/calico,
// libcalico-go/lib/selector/): parser/parser_test.go (selectorTests, badSelectors,
// canonicalisationTests) and tokenizer/tokenizer_test.go (tokenTests).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "zonewall/policy/selector.h"

namespace zonewall::policy {
namespace {

struct MatchCase {
  std::string selector;
  std::vector<Labels> matches;
  std::vector<Labels> non_matches;
};

// parser_test.go, selectorTests: each selector with the label sets it must and must not match.
const std::vector<MatchCase> kSelectorTests = {
    {R"(a == "b")", {{{"a", "b"}}, {{"a", "b"}, {"c", "d"}}}, {{}, {{"a", "c"}}, {{"c", "d"}}}},
    {R"(a == "b" && c == "d")",
     {{{"a", "b"}, {"c", "d"}}},
     {{}, {{"a", "b"}, {"c", "e"}}, {{"a", "c"}, {"c", "d"}}, {{"c", "d"}}, {{"a", "b"}}}},
    {R"(a == "b" || c == "d")",
     {{{"a", "b"}, {"c", "d"}}, {{"a", "b"}}, {{"c", "d"}}},
     {{}, {{"a", "e"}, {"c", "e"}}, {{"c", "e"}}, {{"a", "e"}}}},
    {R"(a in {"'", '"', "c"})", {{{"a", "c"}}, {{"a", "\""}}, {{"a", "'"}}}, {{}, {{"a", "e"}}}},
    {R"(a not in {"'", '"', "c"})",
     {{}, {{"a", "e"}}},
     {{{"a", "c"}}, {{"a", "\""}}, {{"a", "'"}}}},
    {"a == 'a'", {{{"a", "a"}}}, {}},
    {R"(a == "a")", {{{"a", "a"}}}, {}},
    {R"(a != "b")", {{{"a", "a"}}}, {}},
    {R"(a != "a")", {{}}, {}},
    {R"(a contains "a")",
     {{{"a", "a"}}, {{"a", "bab"}}, {{"a", "aaa"}, {"b", "c"}}},
     {{}, {{"a", "b"}}, {{"b", "aaa"}}}},
    {R"(a starts with "a")",
     {{{"a", "a"}}, {{"a", "abb"}}, {{"a", "aaa"}, {"b", "c"}}},
     {{}, {{"a", "b"}}, {{"a", "baa"}}, {{"b", "aaa"}}}},
    {R"(a ends with "a")",
     {{{"a", "a"}}, {{"a", "bba"}}, {{"a", "aaa"}, {"b", "c"}}},
     {{}, {{"a", "b"}}, {{"a", "aab"}}, {{"b", "aaa"}}}},
    {R"(a in {"a"})", {{{"a", "a"}}}, {}},
    {R"(!a in {"a"})", {{{"a", "b"}}}, {}},
    {R"(a in {"a", "b"})", {{{"a", "a"}}}, {}},
    {R"(a in {"a", "b"})", {{{"a", "b"}}}, {}},
    {R"(a not in {"d", "e"})", {{{"a", "a"}}}, {}},
    {"has(a)", {{{"a", "b"}}}, {}},
    {"!has(a)", {{{"b", "b"}}}, {}},
    {"", {{}}, {}},
    {" ", {{}}, {}},
    {"", {{{"a", "b"}}}, {}},
    {"all()", {{}}, {}},
    {" all()", {{}}, {}},
    {" all()", {{{"a", "b"}}}, {}},
    {"global()", {{}}, {}},
    {" global()", {{}}, {}},
    {" global()", {{{"a", "b"}}}, {}},
    {"a == 'a'", {}, {{{"a", "b"}}}},
    {"a == 'a'", {}, {{}}},
    {R"(a != "a")", {}, {{{"a", "a"}}}},
    {"a != 'a'", {}, {{{"a", "a"}}}},
    {R"(a in {"a"})", {}, {{{"a", "b"}}}},
    {R"(a not in {"a"})", {}, {{{"a", "a"}}}},
    {R"(a in {"a", "b"})", {}, {{{"a", "c"}}}},
    {"has(b)", {}, {{{"a", "b"}}}},
    {"!!has(b)", {}, {{{"a", "b"}}}},
    {"! has(a)", {}, {{{"a", "b"}}}},
    {"!has(a)", {}, {{{"a", "b"}}}},
    {"!!! has(a)", {}, {{{"a", "b"}}}},
    {"!!!has(a)", {}, {{{"a", "b"}}}},
    {"!! ! has(a)", {}, {{{"a", "b"}}}},
    {"! !!has(a)", {}, {{{"a", "b"}}}},
    {"a == 'a1' && b == 'b1'", {{{"a", "a1"}, {"b", "b1"}}}, {}},
    {"a == 'a1' && b != 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"a != 'a1' && b == 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"a != 'a1' && b != 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"a != 'a1' && !b == 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"!a == 'a1' && b == 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"has(a) && !has(b)", {{{"a", "a"}}}, {}},
    {"!has(b) && has(a)", {{{"a", "a"}}}, {}},
    {"!(!has(a) || has(b))", {{{"a", "a"}}}, {}},
    {"!(has(b) || !has(a))", {{{"a", "a"}}}, {}},
    {"a == 'a1' || b == 'b1'", {{{"a", "a1"}, {"b", "b1"}}}, {}},
    {"a == 'a1' || b != 'b1'", {{{"a", "a1"}, {"b", "b1"}}}, {}},
    {"a != 'a1' || b == 'b1'", {{{"a", "a1"}, {"b", "b1"}}}, {}},
    {"a != 'a1' || b != 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
    {"! a == 'a1' || ! b == 'b1'", {}, {{{"a", "a1"}, {"b", "b1"}}}},
};

TEST(CalicoUpstreamSelector, ParserTestSelectorTests) {
  for (const MatchCase& c : kSelectorTests) {
    auto sel = parseSelector(c.selector);
    ASSERT_TRUE(sel.has_value()) << c.selector << ": " << sel.error().message;
    // ...and after canonicalising (parser_test.go round-trips through String()).
    auto again = parseSelector(sel->str());
    ASSERT_TRUE(again.has_value()) << sel->str();
    for (const Labels& l : c.matches) {
      EXPECT_TRUE(sel->matches(l)) << c.selector;
      EXPECT_TRUE(again->matches(l)) << sel->str();
    }
    for (const Labels& l : c.non_matches) {
      EXPECT_FALSE(sel->matches(l)) << c.selector;
      EXPECT_FALSE(again->matches(l)) << sel->str();
    }
  }
}

// parser_test.go, badSelectors; then tokenizer_test.go's inputs that must fail to tokenize.
TEST(CalicoUpstreamSelector, RefusesWhatCalicoRefuses) {
  const std::vector<std::string> bad = {
      // parser_test.go badSelectors
      "b == b", "b contains b", "b starts with b", "b ends with b", "'b1' == b", "b", "a b", "!",
      R"(foo == "bar" &)", R"(foo == "bar" |)", "foo != ||", R"(foo in {"", ||)", R"(foo in "")",
      R"("FOO)", R"("FOO')", "'FOO", "(", R"((a == "foo")", ")", "()", "%", R"(a == "b" && %)",
      R"(a == "b" || %)", "a ", "has(foo) &&",
      // tokenizer_test.go tokenTests with a nil result
      std::string(513, 'a') + R"( == "value")", R"(label == "value)", "label == 'value",
      R"(label = "value")", "all(", "global(", "has()", "has(foo", "has( foo ",
      R"(a == "b" & has(foo))", R"(a == "b" | has(foo))", R"(label starts foo "value")",
      R"(label inf "value")", R"(label ends foo "value")", R"(label ends withs "value")",
      R"(label squiggles "value")",
      // the tokenizer's rules: "has(" is one token, and only spaces and tabs are blanks
      "has (a)", "all ()", "a == 'b'\n"};
  for (const std::string& s : bad) {
    EXPECT_FALSE(parseSelector(s).has_value()) << "accepted: " << s;
  }
}

// tokenizer_test.go tokenTests that form whole selectors, and parser_test.go's
// canonicalisationTests inputs: accepted, with the meaning the tokens give them.
TEST(CalicoUpstreamSelector, AcceptsWhatCalicoAccepts) {
  struct Accepted {
    std::string selector;
    Labels labels;
    bool matches;
  };
  const std::vector<Accepted> ok = {
      {R"(a=="b")", {{"a", "b"}}, true},
      {R"(a!="b")", {{"a", "b"}}, false},
      {R"((a=="b"))", {{"a", "b"}}, true},
      {R"(label contains "value")", {{"label", "xvaluex"}}, true},
      {R"(contains contains "contains")", {{"contains", "contains"}}, true},
      {"contains contains 'contains'", {{"contains", "x"}}, false},
      {R"(label contains"value")", {{"label", "value"}}, true},
      {R"(label startswith "value")", {{"label", "values"}}, true},
      {R"(label endswith "value")", {{"label", "novalue"}}, true},
      {R"(label starts with "value")", {{"label", "valued"}}, true},
      {R"(startswith starts with "value")", {{"startswith", "value1"}}, true},
      {R"(label ends with "value")", {{"label", "avalue"}}, true},
      {R"(endswith ends with "value")", {{"endswith", "xvalue"}}, true},
      {R"(label starts  with "value")", {{"label", "value"}}, true},
      {R"(label ends  with "value")", {{"label", "value"}}, true},
      {std::string(512, 'a') + R"( == "value")", {{std::string(512, 'a'), "value"}}, true},
      {"has(calico/k8s_ns)", {{"calico/k8s_ns", "x"}}, true},
      {"has(calico/k8s_ns/role)", {{"calico/k8s_ns/role", "x"}}, true},
      {"has(calico/k8s_NS-.1/role)", {{"calico/k8s_NS-.1/role", "x"}}, true},
      {R"(calico/k8s_ns == "kube-system" && k8s-app == "kube-dns")",
       {{"calico/k8s_ns", "kube-system"}, {"k8s-app", "kube-dns"}},
       true},
      {"a not in {}", {{"a", "x"}}, true},
      {R"(a not in {"a"})", {{"a", "a"}}, false},
      {R"(a not in {"a","B"})", {{"a", "B"}}, false},
      {"global( )", {}, true},
      {"all( )", {}, true},
      {"! (has( b)||! has(a ))", {{"a", "1"}}, true},
      {R"(! (a == "b"&&! c != "d"))", {{"a", "b"}, {"c", "d"}}, false},
      {R"(! (a == "b"&&! c != "d"))", {{"a", "b"}, {"c", "e"}}, true},
      {R"(a!='"')", {{"a", "\""}}, false},
      {R"(a in {"z", "z", "x", "y", "x", "a"})", {{"a", "y"}}, true},
      // a trailing comma closes a set (parser.go reads "string ," then "}")
      {"a in {'x',}", {{"a", "x"}}, true},
      // "all", "has" and "global" are labels unless a '(' follows at once
      {"all == 'x'", {{"all", "x"}}, true},
      {"has in {'y'}", {{"has", "y"}}, true},
      {"global != 'z'", {{"global", "z"}}, false},
      {"a\t==\t'b'", {{"a", "b"}}, true},
  };
  for (const Accepted& c : ok) {
    auto sel = parseSelector(c.selector);
    ASSERT_TRUE(sel.has_value()) << c.selector << ": " << sel.error().message;
    EXPECT_EQ(sel->matches(c.labels), c.matches) << c.selector;
  }
}

}  // namespace
}  // namespace zonewall::policy
