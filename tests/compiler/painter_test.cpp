// The painter alone: a local class's program evaluated over protocol × port, table-driven.
// Each case is a program (tiers of rules: action, protocol range, port ranges) and the
// segments it must paint, written as "PROTO_LO-PROTO_HI PORT_LO-PORT_HI VERDICT by WHO
// [logged by WHO...]"; everything not listed has the default outcome.
#include "painter.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace zonewall::compiler {
namespace {

using policy::Action;

struct RuleSpec {
  Action action;
  Protocol proto_lo = 6;
  Protocol proto_hi = 6;
  std::vector<PortRange> ports{{0, 65535}};
};

struct TierSpec {
  std::vector<RuleSpec> rules;
  Action default_action = Action::kDeny;  // kPass: Calico's defaultAction: Pass
};

struct PaintCase {
  const char* name;
  std::vector<TierSpec> tiers;
  std::vector<std::string> painted;   // the segments, in order
  std::vector<std::uint32_t> only{};  // rule positions to paint; empty: all of them
  bool against_default = false;       // leave out what the program's default decides
};

// Attribution handles that read back as names: rule i is "r<i>", tier t's end "end<t>", and
// what applies after every tier "after".
constexpr AttributionHandle kAfter = 1000;
std::string who(AttributionHandle h) {
  if (h == kAfter) {
    return "after";
  }
  return h >= 100 ? fmt::format("end{}", h - 100) : fmt::format("r{}", h);
}

// Builds the program (its clauses kept alive in `l4s`) with its protocol segments.
LocalProgram program(const std::vector<TierSpec>& tiers, std::vector<L4Match>& l4s) {
  LocalProgram lp;
  size_t count = 0;
  for (const TierSpec& t : tiers) {
    count += t.rules.size();
  }
  l4s.reserve(count);  // the program points into it
  std::vector<int> cuts{0, 256};
  for (size_t t = 0; t < tiers.size(); ++t) {
    for (const RuleSpec& r : tiers[t].rules) {
      l4s.push_back(L4Match{{L4Clause{r.proto_lo, r.proto_hi, r.ports}}});
      const auto index = static_cast<AttributionHandle>(lp.rules.size());
      lp.rules.push_back({r.action, 0, &l4s.back(), index});
      cuts.push_back(r.proto_lo);
      cuts.push_back(r.proto_hi + 1);
    }
    lp.tiers.push_back(
        {tiers[t].default_action, 100 + t, static_cast<std::uint32_t>(lp.rules.size())});
  }
  lp.after_tiers = kAfter;
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    lp.psegs.push_back({static_cast<Protocol>(cuts[i]), static_cast<Protocol>(cuts[i + 1] - 1)});
  }
  return lp;
}

std::vector<std::string> describe(const std::vector<Segment>& segs, const OutcomeInterner& o) {
  std::vector<std::string> out;
  for (const Segment& s : segs) {
    const auto& [allow, attribution, logs] = o[s.outcome];
    std::string line = fmt::format("{}-{} {}-{} {} by {}", s.proto_lo, s.proto_hi, s.port_lo,
                                   s.port_hi, allow ? "allow" : "deny", who(attribution));
    for (AttributionHandle l : logs) {
      line += " logged by " + who(l);
    }
    out.push_back(line);
  }
  return out;
}

const PaintCase kCases[] = {
    {.name = "a tier that decides nothing denies all",
     .tiers = {{.rules = {}}},
     .painted = {"0-255 0-65535 deny by end0"}},
    {.name = "one allowed port, the rest of the tier denied",
     .tiers = {{.rules = {{.action = Action::kAllow, .ports = {{80, 80}}}}}},
     .painted = {"0-5 0-65535 deny by end0", "6-6 0-79 deny by end0", "6-6 80-80 allow by r0",
                 "6-6 81-65535 deny by end0", "7-255 0-65535 deny by end0"}},
    {.name = "the first matching rule wins",
     .tiers = {{.rules = {{.action = Action::kDeny, .ports = {{1, 1024}}},
                          {.action = Action::kAllow}}}},
     .painted = {"0-5 0-65535 deny by end0", "6-6 0-0 allow by r1", "6-6 1-1024 deny by r0",
                 "6-6 1025-65535 allow by r1", "7-255 0-65535 deny by end0"}},
    {.name = "pass goes on to the next tier",
     .tiers = {{.rules = {{.action = Action::kPass}}},
               {.rules = {{.action = Action::kAllow, .ports = {{443, 443}}}}}},
     .painted = {"0-5 0-65535 deny by end0", "6-6 0-442 deny by end1", "6-6 443-443 allow by r1",
                 "6-6 444-65535 deny by end1", "7-255 0-65535 deny by end0"}},
    {.name = "log records itself and decides nothing",
     .tiers = {{.rules = {{.action = Action::kLog, .ports = {{22, 22}}},
                          {.action = Action::kAllow, .proto_lo = 0, .proto_hi = 255}}}},
     .painted = {"0-5 0-65535 allow by r1", "6-6 0-21 allow by r1",
                 "6-6 22-22 allow by r1 logged by r0", "6-6 23-65535 allow by r1",
                 "7-255 0-65535 allow by r1"}},
    {.name = "a tier with defaultAction Pass hands on what it leaves",
     .tiers = {{.rules = {{.action = Action::kDeny, .ports = {{25, 25}}}},
                .default_action = Action::kPass}},
     .painted = {"0-5 0-65535 allow by after", "6-6 0-24 allow by after", "6-6 25-25 deny by r0",
                 "6-6 26-65535 allow by after", "7-255 0-65535 allow by after"}},
    {.name = "only the rules asked for are painted",
     .tiers = {{.rules = {{.action = Action::kDeny, .ports = {{80, 80}}},
                          {.action = Action::kAllow, .ports = {{80, 81}}}}}},
     .painted = {"0-5 0-65535 deny by end0", "6-6 0-79 deny by end0", "6-6 80-81 allow by r1",
                 "6-6 82-65535 deny by end0", "7-255 0-65535 deny by end0"},
     .only = {1}},
    {.name = "what the default decides is left out",
     .tiers = {{.rules = {{.action = Action::kAllow, .ports = {{80, 80}}}}}},
     .painted = {"6-6 80-80 allow by r0"},
     .against_default = true},
};

// A case prints as its name (the test's name carries it; its bytes would say nothing).
void PrintTo(const PaintCase& c, std::ostream* os) { *os << '"' << c.name << '"'; }

class Painter : public ::testing::TestWithParam<PaintCase> {};

// Each case paints exactly the segments it lists, in order, equal neighbours merged.
TEST_P(Painter, PaintsTheSegmentsOfItsProgram) {
  const PaintCase& c = GetParam();
  std::vector<L4Match> l4s;
  LocalProgram lp = program(c.tiers, l4s);
  OutcomeInterner outcomes;
  std::uint32_t default_outcome = kNoOutcome;
  if (c.against_default) {
    // A program's default: what it paints for a class none of its rules name.
    default_outcome = paint(lp, {{0, 255}}, {}, kNoOutcome, outcomes).front().outcome;
  }
  std::vector<std::uint32_t> positions = c.only;
  if (positions.empty()) {
    for (std::uint32_t i = 0; i < lp.rules.size(); ++i) {
      positions.push_back(i);
    }
  }
  EXPECT_EQ(describe(paint(lp, lp.psegs, positions, default_outcome, outcomes), outcomes),
            c.painted);
}

INSTANTIATE_TEST_SUITE_P(Cases, Painter, ::testing::ValuesIn(kCases), [](const auto& test) {
  std::string name = test.param.name;
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) {
      ch = '_';
    }
  }
  return name;
});

// Equal outcomes share an id; different logs make different outcomes.
TEST(OutcomeInterner, SameContentSameId) {
  OutcomeInterner o;
  std::uint32_t a = o.intern(true, 7, {});
  EXPECT_EQ(o.intern(true, 7, {}), a);
  EXPECT_NE(o.intern(true, 7, {3}), a);
  EXPECT_NE(o.intern(false, 7, {}), a);
  EXPECT_EQ(o.size(), 3U);
}

}  // namespace
}  // namespace zonewall::compiler
