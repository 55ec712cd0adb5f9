// Resource limits: input that would make the loader or the selector parser use unbounded
// memory, time or stack gets a clear error at its location, or finishes and means what it says.
// (The fuzz targets, fuzz/, look for more; these are the bounds README "Fuzzing" documents.)
#include <gtest/gtest.h>

#include <string>

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

}  // namespace
}  // namespace zonewall::policy
