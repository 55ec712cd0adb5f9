// Resource limits: input that would make the loader or the selector parser use unbounded
// memory, time or stack gets a clear error at its location, or finishes and means what it says.
// (The fuzz targets, fuzz/, look for more; these are the bounds README "Fuzzing" documents.)
#include <gtest/gtest.h>

#include <string>

#include "zonewall/base/json.h"
#include "zonewall/policy/loader.h"
#include "zonewall/policy/selector.h"

namespace zonewall::policy {
namespace {

Diagnostics load(const std::string& yaml) {
  Store store;
  Diagnostics diags;
  loadSources({{"in.yaml", yaml}}, store, diags);
  return diags;
}

std::string repeat(std::string_view s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(Limits, DeeplyNestedYamlIsAnErrorAtItsDepth) {
  for (const std::string& yaml : {"a: " + repeat("[", 100000), "a: " + repeat("{b: ", 100000)}) {
    Diagnostics d = load(yaml);
    ASSERT_EQ(d.all().size(), 1u);
    EXPECT_EQ(d.all()[0].rule_id, "yaml-syntax");
    EXPECT_EQ(d.all()[0].message, "YAML nested deeper than 500 levels") << d.all()[0].str();
    EXPECT_EQ(d.all()[0].loc.line, 1);
  }
}

// yaml-cpp 0.7's LoadAll allocated without end on this (jbeder/yaml-cpp#1040).
TEST(Limits, ALoneCommaIsAnErrorNotAnEndlessAllocation) {
  Diagnostics d = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n,\n");
  ASSERT_EQ(d.all().size(), 1u);
  EXPECT_EQ(d.all()[0].str(),
            "in.yaml:5:1: error: a document must be a Kubernetes object (a mapping) "
            "[invalid-object]");
}

TEST(Limits, SelectorNestingIsBounded) {
  auto deep = [](int n) { return repeat("(", n) + "a == 'x'" + repeat(")", n); };
  EXPECT_TRUE(parseSelector(deep(255)).has_value());
  for (const std::string& text : {deep(100000), repeat("!", 100000) + "has(a)"}) {
    auto s = parseSelector(text);
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().message, "selector nested deeper than 256 levels");
    EXPECT_EQ(s.error().offset, 256u);
  }
}

// A flat selector of 100,000 terms needs no depth: it parses, and means what it says.
TEST(Limits, SelectorOfAHundredThousandTermsParsesAndMatches) {
  std::string text = "a == 'x'" + repeat(" && b != 'y'", 99999);
  auto s = parseSelector(text);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_TRUE(s->matches(Labels{{"a", "x"}}));
  EXPECT_FALSE(s->matches(Labels{{"a", "x"}, {"b", "y"}}));
  auto any = parseSelector("a == 'x'" + repeat(" || a == 'y'", 99999));
  ASSERT_TRUE(any.has_value());
  EXPECT_TRUE(any->matches(Labels{{"a", "y"}}));
}

// JSON from runtimes and datastores (base/json.h): nesting is bounded as in Go's encoding/json,
// counted outside strings only; syntax errors and numbers past double are located errors.
TEST(Limits, JsonNestingAndNumbersAreBounded) {
  auto nest = [](int depth) { return repeat("[", depth) + repeat("]", depth); };
  EXPECT_TRUE(parseJson(nest(kMaxJsonDepth)).has_value());
  auto deep = parseJson("\n " + nest(kMaxJsonDepth + 1));
  ASSERT_FALSE(deep.has_value());
  EXPECT_EQ(deep.error().message, "nested deeper than 10000 levels");
  EXPECT_EQ(deep.error().loc.line, 2);
  EXPECT_EQ(deep.error().loc.col, kMaxJsonDepth + 2);
  auto in_strings = parseJson(R"({"a":")" + repeat("[{", 20000) + R"(\"[", "b":"\\"})");
  ASSERT_TRUE(in_strings.has_value()) << in_strings.error().str();
  EXPECT_EQ((*in_strings)["b"], "\\");
  auto syntax = parseJson("{\"a\":\n  [1,,2]}");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_EQ(syntax.error().loc.line, 2);
  EXPECT_EQ(syntax.error().loc.col, 6);  // the second comma
  EXPECT_TRUE(syntax.error().message.starts_with("syntax error")) << syntax.error().message;
  auto overflow = parseJson("[1E400]");
  ASSERT_FALSE(overflow.has_value());
  EXPECT_EQ(overflow.error().message, "number overflow parsing '1E400'");
}

}  // namespace
}  // namespace zonewall::policy
