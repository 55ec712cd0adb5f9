// Encode/decode round trips without a kernel, as libnftnl's own tests do: the batch is built,
// parsed back with libnftnl, and must describe exactly the ruleset it came from.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/harness.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::dataplane {
namespace {

using compiler::Cluster;
using compiler::ns;
using compiler::pod;

Ruleset rulesetOf(const std::string& yaml, const std::string& node) {
  Cluster c(yaml);
  return buildRuleset(c.table(node));
}

using Op = BatchMessage::Op;

// Whether a message of `b` does `op` to `object`.
bool has(const Batch& b, Op op, const std::string& object) {
  return std::ranges::any_of(
      b.contents, [&](const BatchMessage& m) { return m.op == op && m.object == object; });
}
size_t count(const Batch& b, Op op) {
  return static_cast<size_t>(
      std::ranges::count_if(b.contents, [&](const BatchMessage& m) { return m.op == op; }));
}
// The element of each one-element message of `b` that does `op` to set `set`.
std::vector<Element> elementsOf(const Batch& b, Op op, const std::string& set) {
  std::vector<Element> out;
  for (const BatchMessage& m : b.contents) {
    if (m.op != op || m.object != set) {
      continue;
    }
    EXPECT_EQ(m.elements, 1U) << m.text;
    if (m.first) {
      out.push_back(*m.first);
    }
  }
  return out;
}

std::vector<Element> sorted(std::vector<Element> v) {
  std::sort(v.begin(), v.end(), [](const Element& a, const Element& b) {
    return std::tie(a.iface, a.addr, a.addr_hi, a.mark, a.proto_lo, a.port_lo) <
           std::tie(b.iface, b.addr, b.addr_hi, b.mark, b.proto_lo, b.port_lo);
  });
  return v;
}

const std::string kCluster =
    ns("x") + ns("y") + pod("x/a", "app: a", "10.0.0.1,fd00::1", "n1") +
    pod("x/b", "app: b", "10.0.0.2", "n1") + pod("y/c", "app: c", "10.0.1.1,fd00::11", "n2") +
    "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p, namespace: "
    "x}\nspec:\n"
    "  podSelector: {matchLabels: {app: a}}\n  policyTypes: [Ingress, Egress]\n"
    "  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}, {ipBlock: {cidr: 192.0.2.0/24, "
    "except: [192.0.2.128/25]}}],"
    " ports: [{port: 80}, {port: 1000, endPort: 2000, protocol: UDP}]}]\n"
    "  egress: [{to: [{ipBlock: {cidr: \"fd00::/64\"}}]}]\n"
    "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: "
    "log-icmp}\nspec:\n"
    "  order: 1\n  selector: app == 'b'\n  ingress: [{action: Log, protocol: ICMP}, {action: Deny, "
    "protocol: ICMP, icmp: {type: 8}}]\n";

// Every set's elements, every chain and every rule come back from the bytes as they went in.
TEST(NetlinkEncode, BatchDecodesToTheRuleset) {
  Ruleset rs = rulesetOf(kCluster, "n1");
  Batch b = encodeRuleset(rs, TableMode::kCreate, 7);
  EXPECT_EQ(b.first_seq, 7u);
  EXPECT_EQ(b.contents.front().op, Op::kBegin);
  EXPECT_EQ(b.contents.back().op, Op::kEnd);
  auto d = decodeBatch(b, rs);
  ASSERT_TRUE(d.has_value()) << d.error().str();
  EXPECT_EQ(d->tables, std::vector<std::string>{"zonewall"});
  std::vector<std::string> chains;
  for (const ChainDef& c : rs.chains) chains.push_back(c.name);
  EXPECT_EQ(d->chains, chains);
  ASSERT_EQ(d->sets.size(), rs.sets.size());
  size_t elements = 0;
  for (size_t i = 0; i < rs.sets.size(); ++i) {
    SCOPED_TRACE(rs.sets[i].name);
    EXPECT_EQ(d->sets[i].name, rs.sets[i].name);
    EXPECT_EQ(sorted(d->sets[i].elements), sorted(rs.sets[i].elements));
    elements += rs.sets[i].elements.size();
  }
  EXPECT_GT(elements, 20u);
  for (const ChainDef& c : rs.chains) {
    SCOPED_TRACE(c.name);
    const auto& got = d->rules[c.name];
    ASSERT_EQ(got.size(), c.rules.size());
    for (size_t r = 0; r < c.rules.size(); ++r) EXPECT_EQ(got[r], ruleExpressions(c.rules[r]));
  }
}

// Replace mode deletes the old table in the same transaction, after making sure it exists.
TEST(NetlinkEncode, ReplaceIsOneTransaction) {
  Ruleset rs = rulesetOf(kCluster, "n1");
  Batch b = encodeRuleset(rs, TableMode::kReplace, 1);
  ASSERT_GE(b.contents.size(), 5u);
  EXPECT_EQ(b.contents[1].op, Op::kAddTable);
  EXPECT_EQ(b.contents[1].object, "zonewall");
  EXPECT_EQ(b.contents[2].op, Op::kDeleteTable);
  EXPECT_EQ(b.contents[2].object, "zonewall");
  EXPECT_EQ(b.contents[3].op, Op::kAddTable);
  EXPECT_EQ(b.contents[3].object, "zonewall");
  EXPECT_EQ(count(b, Op::kBegin), 1U);
  EXPECT_EQ(count(b, Op::kEnd), 1U);
}

// A replace builds the table aside (deleting a left-over aside first), then in place of the
// old one, and deletes the aside copy last: four transactions.
TEST(NetlinkEncode, ReplaceBuildsAsideFirst) {
  Ruleset rs = rulesetOf(kCluster, "n1");
  std::vector<Batch> b = encodeReplace(rs, 1);
  ASSERT_EQ(b.size(), 4u);
  auto is = [](const BatchMessage& m, Op op, const std::string& object) {
    return m.op == op && m.object == object;
  };
  EXPECT_TRUE(is(b[0].contents[1], Op::kAddTable, "zonewall_aside"));
  EXPECT_TRUE(is(b[0].contents[2], Op::kDeleteTable, "zonewall_aside"));
  EXPECT_TRUE(has(b[0], Op::kAddChain, "forward"));
  EXPECT_FALSE(has(b[0], Op::kDeleteTable, "zonewall"));
  EXPECT_FALSE(has(b[1], Op::kDeleteTable, "zonewall"));
  EXPECT_TRUE(is(b[2].contents[1], Op::kAddTable, "zonewall"));
  EXPECT_TRUE(is(b[2].contents[2], Op::kDeleteTable, "zonewall"));
  EXPECT_TRUE(has(b[2], Op::kAddChain, "forward"));
  EXPECT_TRUE(is(b[3].contents[b[3].contents.size() - 2], Op::kDeleteTable, "zonewall_aside"));
  for (size_t i = 1; i < b.size(); ++i)
    EXPECT_EQ(b[i].first_seq, b[i - 1].first_seq + b[i - 1].messages());
  // The aside copy is the same table under the other name: its batches decode to the ruleset.
  auto aside = decodeBatch(b[0], rs);
  ASSERT_TRUE(aside.has_value());
  EXPECT_EQ(aside->chains.size(), rs.chains.size());
  EXPECT_EQ(aside->sets.size(), rs.sets.size());
}

// The diff between two nodes' rulesets, applied as element changes, yields the target.
TEST(NetlinkEncode, DiffThenApplyReachesTarget) {
  Ruleset from = rulesetOf(kCluster, "n1");
  std::string changed = kCluster;
  changed.replace(changed.find("{port: 80}"), 10, "{port: 8080}");
  Ruleset to = rulesetOf(changed, "n1");
  auto diff = diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value() && diff->chains.empty());
  std::vector<SetChange>& changes = diff->sets;
  ASSERT_FALSE(changes.empty());
  for (size_t i = 0; i < from.sets.size(); ++i) {
    std::vector<Element> now = from.sets[i].elements;
    for (const SetChange& c : changes) {
      if (c.set != from.sets[i].name) continue;
      for (const Element& r : c.remove) std::erase(now, r);
      now.insert(now.end(), c.add.begin(), c.add.end());
    }
    EXPECT_EQ(sorted(now), sorted(to.sets[i].elements)) << from.sets[i].name;
  }
  // And the update's batches decode: no chain among them.
  for (const Batch& b : encodeUpdate(to, *diff, {}, 1)) {
    auto d = decodeBatch(b, to);
    ASSERT_TRUE(d.has_value());
    EXPECT_TRUE(d->chains.empty());
  }
}

// An update grows, switches, then prunes: entries under new keys first, changed verdicts and
// the selectors (class maps, local sets) at the switch, entries under keys that go last; a
// packet judged while one of them commits (rules from one generation, set lookups partly from
// the next) gets the old verdict or the new one.
TEST(NetlinkEncode, UpdatesGrowSwitchThenPrune) {
  Ruleset from = rulesetOf(kCluster, "n1");
  auto* first = from.findSet("ingress4_exact");
  ASSERT_FALSE(first->elements.empty());
  Element another = first->elements.front();
  another.port_lo = another.port_hi = 64000;
  first->elements.push_back(another);
  Ruleset to = from;
  auto* exact = to.findSet("ingress4_exact");
  Element gone = exact->elements[0];
  exact->elements.erase(exact->elements.begin());  // a key that goes
  Element flipped = exact->elements[0];
  bool was_allow = flipped.verdict.kind == Verdict::Kind::kReturn;
  exact->elements[0].verdict = {was_allow ? Verdict::Kind::kContinue : Verdict::Kind::kReturn,
                                {}};  // a changed verdict
  Element added = flipped;
  added.port_lo = added.port_hi = 65000;
  exact->elements.push_back(added);  // a new key
  auto* local = to.findSet("ingress_local4");
  ASSERT_FALSE(local->elements.empty());
  local->elements.pop_back();  // a selector change
  auto diff = diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  ChainChanges& chains = diff->chains;
  EXPECT_TRUE(chains.empty());
  std::vector<Batch> batches = encodeUpdate(to, *diff, {}, 1);
  ASSERT_EQ(batches.size(), 3U);
  // Only the grow may be followed at once by the next commit (it adds, and nothing else).
  EXPECT_TRUE(batches[0].additive);
  EXPECT_FALSE(batches[1].additive);
  EXPECT_FALSE(batches[2].additive);
  EXPECT_EQ(batches[1].first_seq, batches[0].first_seq + batches[0].messages());
  EXPECT_EQ(batches[2].first_seq, batches[1].first_seq + batches[1].messages());
  // grow: the new key only, added.
  EXPECT_EQ(elementsOf(batches[0], Op::kAddElements, "ingress4_exact"),
            std::vector<Element>{added});
  EXPECT_TRUE(elementsOf(batches[0], Op::kDeleteElements, "ingress4_exact").empty());
  EXPECT_TRUE(elementsOf(batches[0], Op::kDeleteElements, "ingress_local4").empty());
  // switch: the changed verdict (removed and added under its key), the local set's removal.
  EXPECT_EQ(elementsOf(batches[1], Op::kDeleteElements, "ingress4_exact"),
            std::vector<Element>{flipped});
  ASSERT_EQ(elementsOf(batches[1], Op::kAddElements, "ingress4_exact").size(), 1U);
  EXPECT_EQ(elementKey(elementsOf(batches[1], Op::kAddElements, "ingress4_exact").front()),
            elementKey(flipped));
  EXPECT_EQ(elementsOf(batches[1], Op::kDeleteElements, "ingress_local4").size(), 1U);
  // prune: the key that goes, removed, and nothing added.
  EXPECT_EQ(elementsOf(batches[2], Op::kDeleteElements, "ingress4_exact"),
            std::vector<Element>{gone});
  EXPECT_EQ(count(batches[2], Op::kAddElements), 0U);
}

// New chains (a Log outcome's, a new remote class's) are made a transaction before anything
// leads to them: the kernel runs no rule of a chain made in the transaction that just
// committed for a packet of the generation before, so a class chain made together with the
// class map entries that jump to it would leave such a packet unclassified.
TEST(NetlinkEncode, NewChainsComeATransactionBeforeTheirEntries) {
  const std::string gnp = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy";
  std::string without = kCluster.substr(0, kCluster.find(gnp));
  Ruleset from = rulesetOf(without, "n1");
  Ruleset to =
      rulesetOf(kCluster + gnp +
                    "\nmetadata: {name: log-web}\nspec:\n  order: 2\n  selector: app == 'a'\n"
                    "  ingress: [{action: Log, source: {nets: [198.51.100.0/24]}}, {action: Allow, "
                    "source: {nets: [198.51.100.0/24]}}]\n",
                "n1");
  auto diff = diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  ChainChanges& chains = diff->chains;
  ASSERT_TRUE(
      std::ranges::any_of(chains.add, [](const ChainDef& c) { return isLogChain(c.name); }));
  ASSERT_TRUE(
      std::ranges::any_of(chains.add, [](const ChainDef& c) { return c.name.starts_with("rc_"); }));
  std::vector<Batch> batches = encodeUpdate(to, *diff, {}, 1);
  ASSERT_GE(batches.size(), 3U);
  // The first transaction makes the chains and fills them, and nothing else.
  EXPECT_TRUE(batches[0].additive);
  for (const BatchMessage& m : batches[0].contents) {
    EXPECT_TRUE(m.op == Op::kBegin || m.op == Op::kEnd || m.op == Op::kAddChain ||
                m.op == Op::kAddRule)
        << m.text;
  }
  for (const ChainDef& c : chains.add) {
    EXPECT_TRUE(has(batches[0], Op::kAddChain, c.name)) << c.name;
  }
  // No later one makes a chain, and the later ones do name the new chains.
  bool named = false;
  for (size_t i = 1; i < batches.size(); ++i) {
    EXPECT_EQ(count(batches[i], Op::kAddChain), 0U) << "transaction " << i;
    auto d = decodeBatch(batches[i], to);
    ASSERT_TRUE(d.has_value()) << d.error().str();
    for (const SetDef& s : d->sets) {
      for (const Element& e : s.elements) {
        named |= std::ranges::any_of(chains.add,
                                     [&](const ChainDef& c) { return e.verdict.chain == c.name; });
      }
    }
  }
  EXPECT_TRUE(named);
}

// A packet judged across the switch may take its class from the new class maps and its
// verdict from the old lookup chain and maps: the old range map is bridged (entries added at
// the grow) with the new classes' answers — their range entries and, where a local address's
// default changes, the rest of the space with the new default — so it gets the new verdict.
TEST(NetlinkEncode, NewClassesAreBridgedIntoTheOldRangeMap) {
  // Before: x/a isolated for egress only, so its ingress default allows and no ingress peer
  // has a class. After: kCluster, whose ingress rules bring new classes and isolate x/a.
  std::string before = kCluster;
  before.replace(before.find("policyTypes: [Ingress, Egress]"), 30, "policyTypes: [Egress]");
  Ruleset from = rulesetOf(before, "n1");
  Ruleset to = rulesetOf(kCluster, "n1");
  auto diff = diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  ChainChanges& chains = diff->chains;
  auto sw = std::ranges::find_if(chains.swaps,
                                 [](const MapSwap& m) { return m.chain.name == "ingress4_rng"; });
  ASSERT_NE(sw, chains.swaps.end());
  ASSERT_EQ(sw->bridges.size(), 1U);  // no new local address: the default map needs none
  const SetDef& bridge = sw->bridges.front();
  EXPECT_EQ(bridge.name, "ingress4_ranges");  // the old map, named as the kernel has it
  std::set<std::uint32_t>
      new_marks;  // of IPv4 classes: kCluster's IPv6 peers have classes before and after
  for (const ChainDef& c : chains.add) {
    if (c.name.starts_with("rc_")) new_marks.insert(c.rules.front().mark_bits);
  }
  const zonewall::Addr kA = *zonewall::parseAddr("10.0.0.1");
  ASSERT_FALSE(new_marks.empty());
  const SetDef* ranges_new = to.findSet("ingress4_ranges");
  std::map<zonewall::Addr, Verdict> was, now;
  for (const Element& e : from.findSet("ingress4_default")->elements) was[e.addr] = e.verdict;
  for (const Element& e : to.findSet("ingress4_default")->elements) now[e.addr] = e.verdict;
  ASSERT_TRUE(was.contains(kA) && now.contains(kA));
  ASSERT_FALSE(was[kA] == now[kA]);  // x/a's ingress default changes
  // Every new range entry of a new class is in the bridge; every other bridge entry carries
  // its address's new default; per (changed address, new class) the bridge tiles the whole
  // (protocol, port) space.
  std::map<std::pair<zonewall::Addr, std::uint32_t>, std::uint64_t> volume;
  for (const Element& e : bridge.elements) {
    EXPECT_TRUE(new_marks.contains(e.mark));
    bool is_entry = std::ranges::find(ranges_new->elements, e) != ranges_new->elements.end();
    EXPECT_TRUE(is_entry || e.verdict == now[e.addr]);
    volume[{e.addr, e.mark}] +=
        std::uint64_t{e.proto_hi - e.proto_lo + 1U} * (e.port_hi - e.port_lo + 1U);
    for (const Element& o : bridge.elements) {
      bool overlap = &o != &e && o.addr == e.addr && o.mark == e.mark && o.proto_lo <= e.proto_hi &&
                     e.proto_lo <= o.proto_hi && o.port_lo <= e.port_hi && e.port_lo <= o.port_hi;
      EXPECT_FALSE(overlap);
    }
  }
  for (const Element& e : ranges_new->elements) {
    if (!new_marks.contains(e.mark)) continue;
    EXPECT_NE(std::ranges::find(bridge.elements, e), bridge.elements.end());
  }
  for (std::uint32_t mark : new_marks) {
    std::uint64_t v = volume[{kA, mark}];
    EXPECT_EQ(v, 256ULL * 65536ULL) << fmt::format("class 0x{:08x}", mark);
  }
  for (const auto& [key, v] : volume) {
    if (!(was[key.first] == now[key.first])) {
      EXPECT_EQ(v, 256ULL * 65536ULL);
    }
  }
  // The grow adds them to the old map; their keys carry new classes, so no old entry overlaps.
  std::vector<Batch> batches = encodeUpdate(to, *diff, {}, 1);
  bool grown = false;
  for (const Batch& b : batches) {
    auto d = decodeBatch(b, from);
    ASSERT_TRUE(d.has_value());
    for (const SetDef& s : d->sets) {
      if (s.name == "ingress4_ranges" && s.elements.size() == bridge.elements.size()) grown = true;
    }
  }
  EXPECT_TRUE(grown);
}

// A pod that becomes local in an update enters the local address set at the switch; a packet
// to it judged across the switch by the old lookup chain finds, in the old maps' bridges, its
// range entries and its default as the new table has them (not the old chain's final drop).
TEST(NetlinkEncode, NewLocalAddressesAreBridgedIntoTheOldMaps) {
  Ruleset from = rulesetOf(kCluster, "n1");
  Ruleset to = rulesetOf(kCluster + pod("x/d", "app: a", "10.0.0.4", "n1"), "n1");
  const zonewall::Addr kD = *zonewall::parseAddr("10.0.0.4");
  auto diff = diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  ChainChanges& chains = diff->chains;
  auto sw = std::ranges::find_if(chains.swaps,
                                 [](const MapSwap& m) { return m.chain.name == "ingress4_rng"; });
  ASSERT_NE(sw, chains.swaps.end());
  std::vector<Element> want_ranges, want_defaults;
  for (const Element& e : to.findSet("ingress4_ranges")->elements) {
    if (e.addr == kD) want_ranges.push_back(e);
  }
  for (const Element& e : to.findSet("ingress4_default")->elements) {
    if (e.addr == kD) want_defaults.push_back(e);
  }
  ASSERT_FALSE(want_ranges.empty());  // x/d is selected by p: its UDP port range has entries
  ASSERT_EQ(want_defaults.size(), 1U);
  std::map<std::string, std::vector<Element>> bridged;
  for (const SetDef& b : sw->bridges) bridged[b.name] = b.elements;
  EXPECT_EQ(sorted(bridged["ingress4_ranges"]), sorted(want_ranges));
  EXPECT_EQ(bridged["ingress4_default"], want_defaults);
  // Both are additions to the old maps, at the grow.
  std::vector<Batch> batches = encodeUpdate(to, *diff, {}, 1);
  size_t grow = 0;
  for (size_t i = 0; i < batches.size(); ++i) {
    auto d = decodeBatch(batches[i], from);
    ASSERT_TRUE(d.has_value());
    for (const SetDef& s : d->sets) {
      if (s.name == "ingress4_default" && s.elements == want_defaults) grow = i + 1;
    }
  }
  ASSERT_NE(grow, 0U);
  EXPECT_TRUE(batches[grow - 1].additive);
}

// A change to a direction's range map or default map rebuilds both under their alternate
// names (never element edits), and the other maps' changes stay element-level.
TEST(NetlinkEncode, RangeAndDefaultMapChangesBecomeASwap) {
  EXPECT_EQ(alternateSet("egress4_ranges"), "egress4_ranges_b");
  EXPECT_EQ(alternateSet("egress4_ranges_b"), "egress4_ranges");
  EXPECT_EQ(swapChainName("egress4_ranges_b"), "egress4_rng");
  EXPECT_EQ(swapChainName("egress4_default"), "egress4_rng");
  EXPECT_TRUE(isSwappedSetName("ingress6_default_b"));
  EXPECT_FALSE(isSwappedSetName("ingress6_exact"));

  Ruleset small = rulesetOf(kCluster, "n1");
  Ruleset big = small;
  auto* ranges = big.findSet("ingress4_ranges");
  const SetDef* defaults = big.findSet("ingress4_default");
  ASSERT_TRUE(ranges != nullptr && defaults != nullptr && !defaults->elements.empty());
  for (std::uint16_t i = 0; i < 12; ++i) {
    ranges->elements.push_back({.addr = defaults->elements.front().addr,
                                .mark = 0x00aa0000,
                                .proto_lo = 6,
                                .proto_hi = 6,
                                .port_lo = static_cast<std::uint16_t>(20000 + i * 10),
                                .port_hi = static_cast<std::uint16_t>(20005 + i * 10),
                                .verdict = {Verdict::Kind::kReturn, {}}});
  }
  auto diff = diffRulesets(big, small);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  std::vector<SetChange>& changes = diff->sets;
  ChainChanges& chains = diff->chains;
  ASSERT_EQ(chains.swaps.size(), 1U);
  EXPECT_TRUE(
      std::ranges::none_of(changes, [](const SetChange& c) { return isSwappedSetName(c.set); }));
  const MapSwap& sw = chains.swaps.front();
  EXPECT_EQ(sw.old_sets, (std::vector<std::string>{"ingress4_ranges", "ingress4_default"}));
  ASSERT_EQ(sw.replacements.size(), 2U);
  EXPECT_EQ(sw.replacements[0].name, "ingress4_ranges_b");
  EXPECT_EQ(sorted(sw.replacements[0].elements),
            sorted(small.findSet("ingress4_ranges")->elements));
  EXPECT_EQ(sw.replacements[1].name, "ingress4_default_b");
  EXPECT_EQ(sorted(sw.replacements[1].elements),
            sorted(small.findSet("ingress4_default")->elements));
  EXPECT_EQ(sw.chain.name, "ingress4_rng");
  ASSERT_EQ(sw.chain.rules.size(), 3U);  // the two range lookups, then the default
  EXPECT_EQ(sw.chain.rules[0].set, "ingress4_ranges_b");
  EXPECT_EQ(sw.chain.rules[1].set, "ingress4_ranges_b");
  EXPECT_EQ(sw.chain.rules[2].set, "ingress4_default_b");
  // A swap is a chain change: never expressed as element edits of the swapped maps.
  EXPECT_FALSE(chains.empty());

  std::vector<Batch> batches = encodeUpdate(small, *diff, {"ingress4_ranges_b"}, 1);
  ASSERT_GE(batches.size(), 2U);
  const Batch& grow = batches.front();
  const Batch& prune = batches.back();
  // A left-over of the same name goes first.
  EXPECT_TRUE(has(grow, Op::kDeleteSet, "ingress4_ranges_b"));
  EXPECT_TRUE(has(grow, Op::kAddSet, "ingress4_ranges_b"));
  EXPECT_TRUE(has(grow, Op::kAddSet, "ingress4_default_b"));
  EXPECT_FALSE(has(grow, Op::kFlushChain, "ingress4_rng"));
  EXPECT_TRUE(has(batches[batches.size() - 2], Op::kFlushChain, "ingress4_rng"));
  EXPECT_TRUE(has(prune, Op::kDeleteSet, "ingress4_ranges"));
  EXPECT_TRUE(has(prune, Op::kDeleteSet, "ingress4_default"));

  // Even one deleted range entry: a swap. A changed default alone: a swap too.
  Ruleset fewer = big;
  fewer.findSet("ingress4_ranges")->elements.pop_back();
  diff = diffRulesets(big, fewer);
  ASSERT_TRUE(diff.has_value());
  EXPECT_EQ(chains.swaps.size(), 1U);
  Ruleset other_default = big;
  auto* def = other_default.findSet("ingress4_default");
  bool was_allow = def->elements.front().verdict.kind == Verdict::Kind::kReturn;
  def->elements.front().verdict = {was_allow ? Verdict::Kind::kContinue : Verdict::Kind::kReturn,
                                   {}};
  diff = diffRulesets(big, other_default);
  ASSERT_TRUE(diff.has_value());
  EXPECT_EQ(chains.swaps.size(), 1U);
  EXPECT_TRUE(changes.empty());
}

// A new table comes in two transactions: the skeleton, every set, and the elements that do not
// depend on the local address sets (range maps, anti-spoofing, the remote class maps, whose
// elements jump) first, with the local sets empty; then the local sets and verdict maps.
TEST(NetlinkEncode, CreateFillsLocalSetsAndVerdictMapsLast) {
  Ruleset rs = rulesetOf(kCluster, "n1");
  std::vector<Batch> batches = encodeCreate(rs, 1);
  ASSERT_EQ(batches.size(), 2U);
  auto fills = [&](const Batch& b, const std::string& set) {
    return has(b, Op::kAddElements, set);
  };
  EXPECT_TRUE(has(batches[0], Op::kAddChain, "forward"));
  EXPECT_TRUE(has(batches[0], Op::kAddSet, "ingress4_exact"));
  EXPECT_TRUE(has(batches[0], Op::kAddSet, "ingress_local4"));
  ASSERT_FALSE(rs.findSet("ingress4_ranges")->elements.empty());
  ASSERT_FALSE(rs.findSet("ingress_local4")->elements.empty());
  for (const char* first : {"ingress4_ranges", "pod_src4", "remote4_exact"}) {
    EXPECT_TRUE(fills(batches[0], first)) << first;
    EXPECT_FALSE(fills(batches[1], first)) << first;
  }
  for (const char* second : {"ingress_local4", "ingress4_default", "ingress4_any"}) {
    if (rs.findSet(second)->elements.empty()) continue;
    EXPECT_FALSE(fills(batches[0], second)) << second;
    EXPECT_TRUE(fills(batches[1], second)) << second;
  }
  // The second adds elements only, none of which jumps (the kernel would walk the table).
  for (const BatchMessage& m : batches[1].contents) {
    if (m.op == Op::kBegin || m.op == Op::kEnd) continue;
    ASSERT_EQ(m.op, Op::kAddElements) << m.text;
    const SetDef* set = rs.findSet(m.object);
    ASSERT_NE(set, nullptr) << m.text;
    EXPECT_TRUE(std::ranges::none_of(set->elements, [](const Element& e) {
      return e.verdict.kind == Verdict::Kind::kJump || e.verdict.kind == Verdict::Kind::kGoto;
    })) << m.text;
  }
  EXPECT_EQ(batches[1].first_seq, batches[0].first_seq + batches[0].messages());
  // Every chain and set of the ruleset, once.
  size_t chains = 0;
  size_t sets = 0;
  for (const Batch& b : batches) {
    chains += count(b, Op::kAddChain);
    sets += count(b, Op::kAddSet);
  }
  EXPECT_EQ(chains, rs.chains.size());
  EXPECT_EQ(sets, rs.sets.size());
}

// Many elements split into many messages, each named for error reports.
TEST(NetlinkEncode, LargeSetsSpanMessages) {
  std::string yaml = ns("x");
  for (int i = 0; i < 600; ++i)
    yaml += pod("x/p" + std::to_string(i), "app: a",
                "10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1), "n1");
  Ruleset rs = rulesetOf(yaml, "n1");
  Batch b = encodeRuleset(rs, TableMode::kCreate, 1);
  size_t element_messages =
      static_cast<size_t>(std::ranges::count_if(b.contents, [](const BatchMessage& m) {
        return m.op == Op::kAddElements && m.object == "pod_src4";
      }));
  EXPECT_GE(element_messages, 5u);  // 600 addresses, 128 per message
  auto d = decodeBatch(b, rs);
  ASSERT_TRUE(d.has_value());
  const SetDef* local = rs.findSet("pod_src4");
  for (const SetDef& s : d->sets) {
    if (s.name == "pod_src4") {
      EXPECT_EQ(s.elements.size(), local->elements.size());
    }
  }
}

}  // namespace
}  // namespace zonewall::dataplane
