// The netlink path against the kernel: what it installs lists exactly like `nft -f` of the
// compiled script; a batch the kernel rejects changes nothing; errors name the element.
#include <gtest/gtest.h>

#include "conformance/conformance_cases.h"
#include "kernel/node_harness.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/programmer.h"
#include "zonewall/dataplane/transport.h"
#include "zonewall/policy/loader.h"

namespace zonewall::testing {
namespace {

// A network namespace for the duration of a test.
class Netns {
 public:
  explicit Netns(const std::string& tag) : name_("zwt" + std::to_string(getpid()) + tag) {
    ok_ = run("ip netns add " + name_ + " 2>&1").exit_code == 0;
  }
  ~Netns() { run("ip netns del " + name_ + " 2>/dev/null"); }
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  bool ok() const { return ok_; }
  std::string list() const {
    return run("ip netns exec " + name_ + " nft list table inet zonewall 2>&1").out;
  }

 private:
  std::string name_;
  bool ok_ = false;
};

std::string bankDir() { return sourceDir() + "/examples/bank"; }

// A listing with its sets and chains in sorted order and swapped maps under their first name:
// what an incrementally updated table must equal (a rebuilt map is created anew, so it lists
// last and may carry its alternate name, "…_ranges_b", "…_default_b").
std::string canonicalListing(std::string listing) {
  for (std::string alt : {"_ranges_b", "_default_b"}) {
    for (size_t at = 0; (at = listing.find(alt, at)) != std::string::npos;)
      listing.erase(at + alt.size() - 2, 2);
  }
  auto open = listing.find('\n');
  auto close = listing.rfind('}');
  if (open == std::string::npos || close == std::string::npos || close < open) return listing;
  std::string body = listing.substr(open + 1, close - open - 1);
  std::vector<std::string> blocks;
  for (size_t pos = 0; pos < body.size();) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string block = body.substr(pos, end - pos);
    while (!block.empty() && block.front() == '\n') block.erase(block.begin());
    while (!block.empty() && block.back() == '\n') block.pop_back();
    if (!block.empty()) blocks.push_back(std::move(block));
    pos = end + 2;
  }
  std::sort(blocks.begin(), blocks.end());
  std::string out = listing.substr(0, open + 1);
  for (const auto& b : blocks) out += b + "\n\n";
  return out;
}

// The netlink path and `nft -f` install tables that `nft list` shows identically, for the
// bank example's nodes and every conformance scenario; applied one after the other, so all
// but the first are incremental updates (identical up to the order and names of rebuilt maps).
TEST(Netlink, ListsIdenticallyToNftScript) {
  ZONEWALL_REQUIRE_ROOT();
  Netns a("a");
  Netns b("b");
  ASSERT_TRUE(a.ok() && b.ok());
  std::vector<std::pair<std::string, std::string>> inputs;  // (dir, node)
  inputs.push_back({bankDir(), "node-a"});
  inputs.push_back({bankDir(), "node-b"});
  std::vector<std::unique_ptr<TempDir>> dirs;
  fs::path conf = conformanceFile();
  if (fs::exists(conf)) {
    YAML::Node root = YAML::LoadFile(conf.string());
    for (const Scenario& sc : loadScenarios(root)) {
      auto d = std::make_unique<TempDir>();
      d->write("inventory.yaml", inventoryYaml(root["model"], sc));
      d->write("policies.yaml", policiesYaml(root["model"], sc.policies));
      inputs.push_back({d->path().string(), ""});
      dirs.push_back(std::move(d));
    }
  }
  for (const auto& [dir, node] : inputs) {
    SCOPED_TRACE(dir + " node " + node);
    RunResult applied = run(zonewallBinary() + " apply " + dir + " --node '" + node + "' --netns " +
                            a.name() + " 2>&1");
    ASSERT_EQ(applied.exit_code, 0) << applied.out;
    TempDir tmp;
    fs::path script = tmp.path() / "t.nft";
    ASSERT_EQ(
        run(zonewallBinary() + " compile " + dir + " --node '" + node + "' > " + script.string())
            .exit_code,
        0);
    run("ip netns exec " + b.name() + " nft delete table inet zonewall 2>/dev/null");
    RunResult loaded = run("ip netns exec " + b.name() + " nft -f " + script.string() + " 2>&1");
    ASSERT_EQ(loaded.exit_code, 0) << loaded.out;
    std::string la = a.list();
    EXPECT_FALSE(la.empty());
    if (&dir == &inputs.front().first) {
      EXPECT_EQ(la, b.list());  // a table created whole lists exactly as nft's
    } else {
      EXPECT_EQ(canonicalListing(la), canonicalListing(b.list()));
    }
  }
}

dataplane::Ruleset bankRuleset(const std::string& node) {
  policy::Store store;
  zonewall::Diagnostics d;
  std::vector<policy::SourceText> sources;
  for (const auto& e : fs::recursive_directory_iterator(bankDir())) {
    if (e.path().extension() == ".yaml") {
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      sources.push_back({e.path().string(), ss.str()});
    }
  }
  std::sort(sources.begin(), sources.end(),
            [](const auto& x, const auto& y) { return x.name < y.name; });
  policy::loadSources(sources, store, d);
  compiler::Inventory inv(store);
  auto table = compiler::compileNode(compiler::lower(store), inv, node);
  return dataplane::buildRuleset(*table);
}

// A batch the kernel rejects half-way (an element whose verdict jumps to a chain that does not
// exist) changes nothing: the previous table stays, entire; the error names the element (the
// kernel's extended ack points at it inside its message) and the policy rule behind it.
TEST(Netlink, RejectedBatchChangesNothing) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("c");
  ASSERT_TRUE(ns.ok());
  auto transport = dataplane::openNetlink(ns.path());
  ASSERT_TRUE(transport.has_value()) << transport.error().str();
  dataplane::Ruleset good = bankRuleset("node-a");
  ASSERT_TRUE((*transport)
                  ->commit(dataplane::encodeRuleset(good, dataplane::TableMode::kReplace, 100))
                  .has_value());
  std::string before = ns.list();
  ASSERT_NE(before.find("table inet zonewall"), std::string::npos);

  dataplane::Ruleset bad = bankRuleset("node-b");
  auto* set = bad.findSet("ingress4_default");
  ASSERT_NE(set, nullptr);
  ASSERT_FALSE(set->elements.empty());
  ASSERT_GE(set->elements.size(), 3U)
      << "the refused element should not be the first of its message";
  set->elements.back().verdict = {dataplane::Verdict::Kind::kGoto, "no_such_chain"};
  const dataplane::Element& refused = set->elements.back();
  ASSERT_NE(refused.origin, 0U);
  std::string element =
      "element " + zonewall::formatAddr(refused.addr) + " of set ingress4_default";
  std::string rule = "decided by " + bad.origins[refused.origin - 1];
  auto r =
      (*transport)->commit(dataplane::encodeRuleset(bad, dataplane::TableMode::kReplace, 5000));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find(element + ", " + rule), std::string::npos) << r.error().str();
  std::printf("the refused batch: %s\n", r.error().str().c_str());
  EXPECT_NE(r.error().sys_errno, 0);
  EXPECT_EQ(ns.list(), before);  // the old table, entire

  // Element-level changes that fail are refused whole too.
  dataplane::Ruleset bad_update = good;
  auto* upd = bad_update.findSet("ingress4_default");
  upd->elements.back().verdict = {dataplane::Verdict::Kind::kGoto, "no_such_chain"};
  auto diff = dataplane::diffRulesets(good, bad_update);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  dataplane::ChainChanges& chains = diff->chains;
  ASSERT_FALSE(chains.swaps.empty());  // a default map change rebuilds it
  auto updates = dataplane::encodeUpdate(bad_update, *diff, {}, 9000);
  ASSERT_FALSE(updates.empty());
  auto r2 = (*transport)->commit(updates.front());  // the grow transaction fills the rebuilt map
  ASSERT_FALSE(r2.has_value());
  const dataplane::Element& refused2 = upd->elements.back();
  EXPECT_NE(r2.error().message.find("element " + zonewall::formatAddr(refused2.addr) +
                                    " of set ingress4_default, decided by " +
                                    bad_update.origins[refused2.origin - 1]),
            std::string::npos)
      << r2.error().str();
  EXPECT_EQ(ns.list(), before);
}

// Element-level updates move the kernel from one table to another with the same skeleton.
TEST(Netlink, ElementChangesReachTheTargetTable) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("d");
  Netns ref("e");
  ASSERT_TRUE(ns.ok() && ref.ok());
  auto t = dataplane::openNetlink(ns.path());
  auto tr = dataplane::openNetlink(ref.path());
  ASSERT_TRUE(t.has_value() && tr.has_value());
  dataplane::Ruleset from = bankRuleset("node-a");
  dataplane::Ruleset to = bankRuleset("node-b");
  ASSERT_TRUE(
      (*t)->commit(dataplane::encodeRuleset(from, dataplane::TableMode::kReplace, 1)).has_value());
  auto diff = dataplane::diffRulesets(from, to);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  std::vector<dataplane::SetChange>& changes = diff->sets;
  ASSERT_FALSE(changes.empty());
  for (const auto& b : dataplane::encodeUpdate(to, *diff, {}, 1000)) {
    auto r = (*t)->commit(b);
    ASSERT_TRUE(r.has_value()) << r.error().str();
  }
  ASSERT_TRUE(
      (*tr)->commit(dataplane::encodeRuleset(to, dataplane::TableMode::kReplace, 1)).has_value());
  EXPECT_EQ(canonicalListing(ns.list()), canonicalListing(ref.list()));
}

// A range map change rebuilds the map under its alternate name in two transactions (the
// lookups switch only once the new map is published); read-back follows the switch, and a
// rebuild left half-done is cleared by the next one.
TEST(Netlink, RangeMapChangesRebuildTheMap) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("s");
  ASSERT_TRUE(ns.ok());
  auto t = dataplane::openNetlink(ns.path());
  ASSERT_TRUE(t.has_value());
  dataplane::Ruleset base = bankRuleset("node-a");
  // 40 more range entries for one local pod (disjoint port ranges, a class of their own).
  dataplane::Ruleset big = base;
  auto* ranges = big.findSet("ingress4_ranges");
  auto* defaults = big.findSet("ingress4_default");
  ASSERT_TRUE(ranges != nullptr && defaults != nullptr && !defaults->elements.empty());
  for (std::uint16_t i = 0; i < 40; ++i) {
    ranges->elements.push_back({.addr = defaults->elements.front().addr,
                                .mark = 0x00aa0000,
                                .proto_lo = 6,
                                .proto_hi = 6,
                                .port_lo = static_cast<std::uint16_t>(20000 + i * 10),
                                .port_hi = static_cast<std::uint16_t>(20000 + i * 10 + 5),
                                .verdict = {dataplane::Verdict::Kind::kReturn, {}}});
  }
  ASSERT_TRUE(
      (*t)->commit(dataplane::encodeRuleset(big, dataplane::TableMode::kReplace, 1)).has_value());

  auto step = [&](dataplane::Ruleset want, size_t expect_swaps) {
    auto have = dataplane::readKernelState(**t, want);
    ASSERT_TRUE(have.has_value()) << have.error().str();
    ASSERT_TRUE(have->skeleton_matches);
    dataplane::alignSwappedSets(have->ruleset, want);
    auto diff = dataplane::diffRulesets(have->ruleset, want);
    ASSERT_TRUE(diff.has_value()) << diff.error().why;
    dataplane::ChainChanges& chains = diff->chains;
    EXPECT_EQ(chains.swaps.size(), expect_swaps);
    for (const auto& b : dataplane::encodeUpdate(want, *diff, have->stale_sets, 100)) {
      auto r = (*t)->commit(b);
      ASSERT_TRUE(r.has_value()) << r.error().str();
    }
    // What the kernel holds now is exactly `want`, whatever the map's name.
    auto after = dataplane::readKernelState(**t, want);
    ASSERT_TRUE(after.has_value());
    EXPECT_TRUE(after->skeleton_matches);
    EXPECT_TRUE(after->stale_sets.empty());
    dataplane::Ruleset aligned = want;
    dataplane::alignSwappedSets(after->ruleset, aligned);
    auto left_diff = dataplane::diffRulesets(after->ruleset, aligned);
    ASSERT_TRUE(left_diff.has_value()) << left_diff.error().why;
    std::vector<dataplane::SetChange>& left = left_diff->sets;
    dataplane::ChainChanges& left_chains = left_diff->chains;
    EXPECT_TRUE(left.empty());
    EXPECT_TRUE(left_chains.empty());
  };
  step(base, 1);  // 40 deletes: rebuilt as ingress4_ranges_b
  EXPECT_NE(ns.list().find("map ingress4_ranges_b {"), std::string::npos);
  EXPECT_EQ(ns.list().find("map ingress4_ranges {"), std::string::npos);
  EXPECT_NE(ns.list().find("vmap @ingress4_ranges_b"), std::string::npos);
  step(big, 1);   // 40 adds: rebuilt again, as ingress4_ranges
  step(base, 1);  // and back to ingress4_ranges_b
  // A rebuild whose switch never came: the map exists, nothing references it.
  {
    auto have = dataplane::readKernelState(**t, big);
    ASSERT_TRUE(have.has_value());
    dataplane::Ruleset want = big;
    dataplane::alignSwappedSets(have->ruleset, want);
    auto diff = dataplane::diffRulesets(have->ruleset, want);
    ASSERT_TRUE(diff.has_value()) << diff.error().why;
    dataplane::ChainChanges& chains = diff->chains;
    ASSERT_EQ(chains.swaps.size(), 1U);
    auto batches = dataplane::encodeUpdate(want, *diff, {}, 100);
    ASSERT_TRUE((*t)->commit(batches.front())
                    .has_value());  // grow only: the maps rebuilt, never switched to
    auto half = dataplane::readKernelState(**t, big);
    ASSERT_TRUE(half.has_value());
    EXPECT_EQ(half->stale_sets, (std::vector<std::string>{"ingress4_ranges", "ingress4_default"}));
    EXPECT_TRUE(half->skeleton_matches);  // the lookups still use the complete old map
  }
  step(big, 1);  // rebuilt as ingress4_ranges (the stale one cleared first)
  EXPECT_NE(ns.list().find("vmap @ingress4_ranges counter"), std::string::npos);
  EXPECT_EQ(ns.list().find("ingress4_ranges_b"), std::string::npos);
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// Reading the table back gives every element the encoder sent, for every kind of set.
TEST(Netlink, ReadBackDecodesEveryElement) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("f");
  ASSERT_TRUE(ns.ok());
  auto t = dataplane::openNetlink(ns.path());
  ASSERT_TRUE(t.has_value());
  for (const char* node : {"node-a", "node-b"}) {
    dataplane::Ruleset want = bankRuleset(node);
    ASSERT_TRUE((*t)->commit(dataplane::encodeRuleset(want, dataplane::TableMode::kReplace, 1))
                    .has_value());
    auto have = dataplane::readKernelState(**t, want);
    ASSERT_TRUE(have.has_value()) << have.error().str();
    EXPECT_TRUE(have->exists);
    EXPECT_TRUE(have->skeleton_matches);
    EXPECT_TRUE(have->drift.empty());
    auto diff = dataplane::diffRulesets(have->ruleset, want);
    ASSERT_TRUE(diff.has_value() && diff->chains.empty());
    std::vector<dataplane::SetChange>& changes = diff->sets;
    EXPECT_TRUE(changes.empty()) << dataplane::describeChanges(want, changes).front();
    size_t elements = 0;
    for (const auto& s : have->ruleset.sets) elements += s.elements.size();
    EXPECT_GT(elements, 50u);
  }
}

// verify reports drift that someone else made (a deleted element, a flushed map, an extra
// rule) and --repair brings the kernel back to the compiled table.
TEST(Netlink, VerifyReportsAndRepairsDrift) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("g");
  ASSERT_TRUE(ns.ok());
  std::string zw = zonewallBinary();
  std::string args = " " + bankDir() + " --node node-a --netns " + ns.name();
  ASSERT_EQ(run(zw + " verify" + args).exit_code, 1);  // no table yet
  ASSERT_EQ(run(zw + " apply" + args).exit_code, 0);
  RunResult ok = run(zw + " verify" + args);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  std::string clean = ns.list();

  run("ip netns exec " + ns.name() +
      " nft delete element inet zonewall ingress4_default { 10.244.0.10 }");
  run("ip netns exec " + ns.name() + " nft flush map inet zonewall egress4_exact");
  RunResult drift = run(zw + " verify" + args);
  EXPECT_EQ(drift.exit_code, 1);
  EXPECT_NE(drift.out.find("drift: + ingress4_default 10.244.0.10 : continue"), std::string::npos)
      << drift.out;
  EXPECT_NE(drift.out.find("drift: + egress4_exact"), std::string::npos) << drift.out;
  RunResult fixed = run(zw + " verify" + args + " --repair");
  EXPECT_EQ(fixed.exit_code, 0) << fixed.out;
  EXPECT_NE(fixed.out.find("element changes"), std::string::npos) << fixed.out;
  EXPECT_EQ(run(zw + " verify" + args).exit_code, 0);
  EXPECT_EQ(canonicalListing(ns.list()),
            canonicalListing(clean));  // the default map rebuilt: another name

  run("ip netns exec " + ns.name() + " nft add rule inet zonewall forward accept");
  RunResult extra = run(zw + " verify" + args);
  EXPECT_EQ(extra.exit_code, 1);
  EXPECT_NE(extra.out.find("drift: chain forward has "), std::string::npos) << extra.out;
  EXPECT_EQ(run(zw + " verify" + args + " --repair").exit_code, 0);
  EXPECT_EQ(canonicalListing(ns.list()), canonicalListing(clean));
}

// apply sends only element changes when the kernel holds zonewall's skeleton, and --dry-run
// shows them without changing anything.
TEST(Netlink, ApplyIsIncrementalAndDryRunChangesNothing) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("h");
  ASSERT_TRUE(ns.ok());
  std::string zw = zonewallBinary();
  std::string where = " --netns " + ns.name();
  RunResult first = run(zw + " apply " + bankDir() + " --node node-a" + where);
  EXPECT_NE(first.out.find("table created"), std::string::npos) << first.out;
  std::string a = ns.list();
  RunResult dry = run(zw + " apply " + bankDir() + " --node node-b --dry-run" + where);
  EXPECT_EQ(dry.exit_code, 0);
  EXPECT_NE(dry.out.find("element changes"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("+ "), std::string::npos);
  EXPECT_EQ(ns.list(), a);
  RunResult second = run(zw + " apply " + bankDir() + " --node node-b" + where);
  EXPECT_NE(second.out.find("element changes"), std::string::npos) << second.out;
  EXPECT_EQ(run(zw + " verify " + bankDir() + " --node node-b" + where).exit_code, 0);
  RunResult same = run(zw + " apply " + bankDir() + " --node node-b" + where);
  EXPECT_NE(same.out.find("nothing to do"), std::string::npos) << same.out;
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// The real kernel's transport, counting reads: the update path must not read.
class CountingTransport : public dataplane::Transport {
 public:
  explicit CountingTransport(std::unique_ptr<dataplane::Transport> t) : t_(std::move(t)) {}
  std::expected<void, zonewall::Error> commit(const dataplane::Batch& b) override {
    return t_->commit(b);
  }
  std::expected<dataplane::TableSnapshot, zonewall::Error> read(const std::string& table) override {
    ++reads;
    return t_->read(table);
  }
  int reads = 0;

 private:
  std::unique_ptr<dataplane::Transport> t_;
};

// The kernel holds exactly `want` (read through a transport of its own).
void expectKernelHolds(const std::string& netns_path, dataplane::Ruleset want) {
  auto t = dataplane::openNetlink(netns_path);
  ASSERT_TRUE(t.has_value());
  auto have = dataplane::readKernelState(**t, want);
  ASSERT_TRUE(have.has_value()) << have.error().str();
  ASSERT_TRUE(have->skeleton_matches);
  EXPECT_TRUE(have->stale_sets.empty());
  dataplane::alignSwappedSets(have->ruleset, want);
  auto diff = dataplane::diffRulesets(have->ruleset, want);
  ASSERT_TRUE(diff.has_value()) << diff.error().why;
  std::vector<dataplane::SetChange>& changes = diff->sets;
  dataplane::ChainChanges& chains = diff->chains;
  EXPECT_TRUE(changes.empty() && chains.empty())
      << dataplane::describeChanges(want, changes).size() << " differences";
}

// The agent's update path: after one read, every update is planned against the committed
// state in memory (range map swaps included) and the kernel always ends up holding the target;
// a failed commit makes the next plan read the kernel again.
TEST(Programmer, UpdatesWithoutReadingTheKernel) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("p");
  ASSERT_TRUE(ns.ok());
  auto real = dataplane::openNetlink(ns.path());
  ASSERT_TRUE(real.has_value());
  CountingTransport counting(std::move(*real));
  dataplane::Programmer programmer(counting);

  dataplane::Ruleset a = bankRuleset("node-a");
  dataplane::Ruleset more_ranges = a;  // a range map change: a swap
  auto* ranges = more_ranges.findSet("ingress4_ranges");
  for (std::uint16_t i = 0; i < 20; ++i) {
    ranges->elements.push_back({.addr = a.findSet("ingress4_default")->elements.front().addr,
                                .mark = 0x00aa0000,
                                .proto_lo = 17,
                                .proto_hi = 17,
                                .port_lo = static_cast<std::uint16_t>(30000 + i * 10),
                                .port_hi = static_cast<std::uint16_t>(30005 + i * 10),
                                .verdict = {dataplane::Verdict::Kind::kReturn, {}}});
  }
  dataplane::Ruleset flipped = more_ranges;  // element-level
  auto* def = flipped.findSet("ingress4_default");
  def->elements.front().verdict.kind =
      def->elements.front().verdict.kind == dataplane::Verdict::Kind::kReturn
          ? dataplane::Verdict::Kind::kContinue
          : dataplane::Verdict::Kind::kReturn;
  using Kind = dataplane::Programmer::Plan::Kind;
  std::pair<const dataplane::Ruleset*, Kind> steps[] = {
      {&a, Kind::kCreate}, {&more_ranges, Kind::kUpdate}, {&flipped, Kind::kUpdate},
      {&a, Kind::kUpdate}, {&more_ranges, Kind::kUpdate}, {&more_ranges, Kind::kNothing}};
  for (const auto& [want, kind] : steps) {
    auto plan = programmer.plan(*want);
    ASSERT_TRUE(plan.has_value()) << plan.error().str();
    EXPECT_EQ(plan->kind, kind);
    ASSERT_TRUE(programmer.commit(std::move(*plan)).has_value());
    expectKernelHolds(ns.path(), *want);
  }
  EXPECT_EQ(counting.reads, 1) << "updates must be planned against the committed state";

  // A commit the kernel refuses: the state is unknown, so the next plan reads.
  dataplane::Ruleset bad = a;
  bad.findSet("ingress4_default")->elements.back().verdict = {dataplane::Verdict::Kind::kGoto,
                                                              "no_such_chain"};
  auto bad_plan = programmer.plan(bad);
  ASSERT_TRUE(bad_plan.has_value());
  EXPECT_FALSE(programmer.commit(*bad_plan).has_value());
  EXPECT_FALSE(programmer.known().has_value());
  auto plan = programmer.plan(a);
  ASSERT_TRUE(plan.has_value());
  EXPECT_TRUE(plan->read_kernel);
  EXPECT_EQ(counting.reads, 2);
  ASSERT_TRUE(programmer.commit(std::move(*plan)).has_value());
  expectKernelHolds(ns.path(), a);
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// A set of the same name but another kind (an older zonewall's, someone's) is drift of the
// skeleton, however alike the rules look: the table is replaced, not edited element by element.
TEST(Netlink, ReadBackSeesASetOfAnotherKind) {
  ZONEWALL_REQUIRE_ROOT();
  Netns ns("k");
  ASSERT_TRUE(ns.ok());
  auto t = dataplane::openNetlink(ns.path());
  ASSERT_TRUE(t.has_value());
  dataplane::Ruleset a = bankRuleset("node-a");
  for (const auto& batch : dataplane::encodeCreate(a, 1))
    ASSERT_TRUE((*t)->commit(batch).has_value());
  auto same = dataplane::readKernelState(**t, a);
  ASSERT_TRUE(same.has_value());
  EXPECT_TRUE(same->skeleton_matches) << (same->drift.empty() ? "" : same->drift.front());

  dataplane::Ruleset b = a;  // the local set as a map: the rules that look it up read the same
  auto* local = b.findSet("ingress_local4");
  ASSERT_NE(local, nullptr);
  local->kind = dataplane::SetKind::kAddrVmap;
  for (auto& e : local->elements) e.verdict = {dataplane::Verdict::Kind::kReturn, {}};
  auto other = dataplane::readKernelState(**t, b);
  ASSERT_TRUE(other.has_value());
  EXPECT_FALSE(other->skeleton_matches);
  EXPECT_TRUE(std::ranges::any_of(other->drift, [](const std::string& d) {
    return d.starts_with("set ingress_local4 is defined differently");
  }));
  dataplane::Programmer programmer(**t);
  auto plan = programmer.plan(b);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->kind, dataplane::Programmer::Plan::Kind::kReplace);
  ASSERT_TRUE(programmer.commit(std::move(*plan)).has_value());
  expectKernelHolds(ns.path(), b);
}

}  // namespace
}  // namespace zonewall::testing
