#include "zonewall/dataplane/diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "zonewall/compiler/program.h"

namespace zonewall::dataplane {

bool isLogChain(const std::string& name) { return name.starts_with("log_"); }
bool isDynamicChain(const std::string& name) { return isLogChain(name) || name.starts_with("rc_"); }

void alignSwappedSets(const Ruleset& have, Ruleset& want) {
  for (const SetDef& h : have.sets) {
    if (!isSwappedSetName(h.name)) continue;
    std::string alt = alternateSet(h.name);
    if (want.findSet(alt) != nullptr && want.findSet(h.name) == nullptr)
      renameSwappedSet(want, alt, h.name);
  }
}

namespace {

std::vector<const ChainDef*> fixedChains(const Ruleset& r) {
  std::vector<const ChainDef*> out;
  for (const ChainDef& c : r.chains) {
    if (!isDynamicChain(c.name)) out.push_back(&c);
  }
  return out;
}

// The first difference between two rulesets' skeletons (chains, rules, set definitions), or
// nothing.
std::optional<std::string> skeletonDifference(const Ruleset& a, const Ruleset& b) {
  auto ca = fixedChains(a);
  auto cb = fixedChains(b);
  if (a.table != b.table || a.class_mask != b.class_mask) return "another table or class mark mask";
  if (ca.size() != cb.size()) return fmt::format("{} chains instead of {}", cb.size(), ca.size());
  if (a.sets.size() != b.sets.size())
    return fmt::format("{} sets instead of {}", b.sets.size(), a.sets.size());
  for (size_t i = 0; i < ca.size(); ++i) {
    const ChainDef& x = *ca[i];
    const ChainDef& y = *cb[i];
    if (x.name != y.name || x.hook != y.hook || x.rules.size() != y.rules.size()) {
      return fmt::format("chain {} instead of {}", y.name, x.name);
    }
    for (size_t r = 0; r < x.rules.size(); ++r) {
      const Rule& p = x.rules[r];
      const Rule& q = y.rules[r];
      if (p.kind != q.kind || p.family != q.family || p.source != q.source || p.icmp != q.icmp ||
          p.mark_mask != q.mark_mask || p.mark_bits != q.mark_bits || p.icmp_type != q.icmp_type ||
          p.log_group != q.log_group || p.set != q.set || p.text != q.text ||
          !(p.verdict == q.verdict)) {
        return fmt::format("rule {} of chain {} differs", r, x.name);
      }
    }
  }
  for (size_t i = 0; i < a.sets.size(); ++i) {
    if (a.sets[i].name != b.sets[i].name || a.sets[i].kind != b.sets[i].kind ||
        a.sets[i].family != b.sets[i].family) {
      return fmt::format("set {} instead of {}", b.sets[i].name, a.sets[i].name);
    }
  }
  return std::nullopt;
}

// The (protocol, port) boxes that `taken` (disjoint boxes) leaves free: the protocol axis cut
// where a taken box starts or ends, then in each band the ports its boxes leave out.
std::vector<Element> complementBoxes(std::vector<Element> taken) {
  std::vector<unsigned> cuts{0, 256};
  for (const Element& e : taken) {
    cuts.push_back(e.proto_lo);
    cuts.push_back(e.proto_hi + 1U);
  }
  std::ranges::sort(cuts);
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  std::ranges::sort(taken, {}, [](const Element& e) { return e.port_lo; });
  std::vector<Element> out;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    auto lo = static_cast<std::uint8_t>(cuts[i]);
    auto hi = static_cast<std::uint8_t>(cuts[i + 1] - 1);
    std::vector<compiler::PortRange> used;  // a box never straddles a cut: it spans the band
    for (const Element& e : taken) {
      if (e.proto_lo <= hi && e.proto_hi >= lo) used.push_back({e.port_lo, e.port_hi});
    }
    for (compiler::PortRange free : compiler::complementPorts(used)) {
      out.push_back(
          Element{.proto_lo = lo, .proto_hi = hi, .port_lo = free.lo, .port_hi = free.hi});
    }
  }
  return out;
}

// The class mark a remote class chain sets.
std::uint32_t classMarkOf(const ChainDef& rc) {
  return rc.rules.empty() ? 0 : rc.rules.front().mark_bits;
}

// Fills sw.bridges (see MapSwap::bridges) for a swap of a lookup chain's maps.
void bridgeOldMaps(const Ruleset& from, const Ruleset& to, const std::vector<ChainDef>& new_chains,
                   MapSwap& sw) {
  const SetDef* ranges_old = nullptr;
  const SetDef* ranges_new = nullptr;
  const SetDef* default_old = nullptr;
  const SetDef* default_new = nullptr;
  for (const std::string& name : sw.old_sets) {
    (isRangeSetName(name) ? ranges_old : default_old) = from.findSet(name);
    (isRangeSetName(name) ? ranges_new : default_new) = to.findSet(name);
  }
  if (ranges_old == nullptr || ranges_new == nullptr || default_old == nullptr ||
      default_new == nullptr)
    return;
  std::set<std::uint32_t> marks;  // the new classes this family's class maps give
  if (std::ranges::any_of(new_chains, [](const ChainDef& c) { return !isLogChain(c.name); })) {
    std::set<std::string> classes;  // the class chains this family's class maps jump to
    for (const SetDef& s : to.sets) {
      if (s.family != ranges_new->family ||
          (s.kind != SetKind::kAddrIntervalVmap && s.kind != SetKind::kAddrVmap))
        continue;
      for (const Element& e : s.elements) {
        if (e.verdict.kind == Verdict::Kind::kJump) classes.insert(e.verdict.chain);
      }
    }
    for (const ChainDef& c : new_chains) {
      if (classes.contains(c.name)) marks.insert(classMarkOf(c));
    }
  }
  std::map<Addr, const Verdict*> was;  // the old defaults: every old local address
  for (const Element& e : default_old->elements) was[e.addr] = &e.verdict;

  SetDef ranges{ranges_old->name, ranges_old->kind, ranges_old->family, {}};
  SetDef defaults{default_old->name, default_old->kind, default_old->family, {}};
  // Entries of a new class or of a new local address: keys the old maps do not have.
  std::map<std::pair<Addr, std::uint32_t>, std::vector<Element>> taken;
  for (const Element& e : ranges_new->elements) {
    if (!marks.contains(e.mark) && was.contains(e.addr)) continue;
    ranges.elements.push_back(e);
    taken[{e.addr, e.mark}].push_back(e);
  }
  for (const Element& d : default_new->elements) {
    auto it = was.find(d.addr);
    if (it == was.end()) {
      defaults.elements.push_back(d);  // a new local address: its default, as the new table has it
      continue;
    }
    if (*it->second == d.verdict) continue;
    // A default that changes: the old default map answers for the old classes, so the new
    // classes get the rest of the space from the range map, with the new default.
    for (std::uint32_t mark : marks) {
      for (Element box : complementBoxes(taken[{d.addr, mark}])) {
        box.addr = d.addr;
        box.mark = mark;
        box.verdict = d.verdict;
        box.origin = d.origin;
        ranges.elements.push_back(box);
      }
    }
  }
  for (SetDef* b : {&ranges, &defaults}) {
    if (!b->elements.empty()) sw.bridges.push_back(std::move(*b));
  }
}
// The elements of a set, ordered by identity: in the order given when it already is (the
// ruleset builder emits most sets so), else sorted.
std::vector<const Element*> byKey(const std::vector<Element>& elements) {
  std::vector<const Element*> out;
  out.reserve(elements.size());
  for (const Element& e : elements) out.push_back(&e);
  auto less = [](const Element* x, const Element* y) {
    return elementKeyRef(*x) < elementKeyRef(*y);
  };
  if (!std::is_sorted(out.begin(), out.end(), less)) {
    std::sort(out.begin(), out.end(), less);
  }
  return out;
}

// What turns `from` into `to`: one merge of the two in identity order (no copies of keys, no
// trees: a set of 150k elements diffs in a few milliseconds).
void diffElements(const std::vector<Element>& from, const std::vector<Element>& to, SetChange& c) {
  std::vector<const Element*> a = byKey(from);
  std::vector<const Element*> b = byKey(to);
  size_t i = 0;
  size_t j = 0;
  while (i < a.size() || j < b.size()) {
    if (j == b.size() || (i < a.size() && elementKeyRef(*a[i]) < elementKeyRef(*b[j]))) {
      c.remove.push_back(*a[i++]);
    } else if (i == a.size() || elementKeyRef(*b[j]) < elementKeyRef(*a[i])) {
      c.add.push_back(*b[j++]);
    } else {
      if (!(a[i]->verdict == b[j]->verdict)) {
        c.remove.push_back(*a[i]);  // a changed verdict: delete and add in one batch
        c.add.push_back(*b[j]);
      }
      ++i;
      ++j;
    }
  }
}

}  // namespace

std::expected<RulesetDiff, SkeletonMismatch> diffRulesets(const Ruleset& from, const Ruleset& to) {
  if (auto difference = skeletonDifference(from, to)) {
    return std::unexpected(SkeletonMismatch{std::move(*difference)});
  }
  RulesetDiff out;
  std::vector<SetChange>& changes = out.sets;
  // Dynamic chains are named by what they do, so a name present on both sides is the same chain.
  ChainChanges cc;
  std::set<std::string> have;
  std::set<std::string> want;
  for (const ChainDef& c : from.chains) {
    if (isDynamicChain(c.name)) have.insert(c.name);
  }
  for (const ChainDef& c : to.chains) {
    if (!isDynamicChain(c.name)) continue;
    want.insert(c.name);
    if (!have.contains(c.name)) cc.add.push_back(c);
  }
  for (const std::string& n : have) {
    if (!want.contains(n)) cc.remove.push_back(n);
  }
  std::map<std::string, std::vector<SetChange>> swapped;  // lookup chains whose maps are rebuilt
  for (size_t i = 0; i < from.sets.size(); ++i) {
    const SetDef& a = from.sets[i];
    const SetDef& b = to.sets[i];
    // Most sets do not change at all: equal element for element, nothing to look at.
    if (a.elements.size() == b.elements.size() &&
        std::equal(a.elements.begin(), a.elements.end(), b.elements.begin())) {
      continue;
    }
    SetChange c{a.name, {}, {}};
    diffElements(a.elements, b.elements, c);
    // A range or default map is never edited in place (see isSwappedSetName): the maps of
    // its lookup chain are rebuilt under their other names, and the chain rewritten.
    if (isSwappedSetName(b.name) && (!c.add.empty() || !c.remove.empty())) {
      swapped[swapChainName(b.name)].push_back(std::move(c));
      continue;
    }
    if (!c.add.empty() || !c.remove.empty()) changes.push_back(std::move(c));
  }
  for (auto& [name, edits] : swapped) {
    const ChainDef* chain = to.findChain(name);
    if (chain == nullptr) {
      return std::unexpected(SkeletonMismatch{"no lookup chain " + name});
    }
    MapSwap sw{.old_sets = {},
               .replacements = {},
               .chain = withAlternateSets(*chain),
               .edits = std::move(edits)};
    for (const Rule& r : chain->rules) {
      const SetDef* s = isSwappedSetName(r.set) ? to.findSet(r.set) : nullptr;
      if (s == nullptr || std::ranges::find(sw.old_sets, s->name) != sw.old_sets.end()) continue;
      sw.old_sets.push_back(s->name);
      sw.replacements.push_back(*s);
      sw.replacements.back().name = alternateSet(s->name);
    }
    bridgeOldMaps(from, to, cc.add, sw);
    cc.swaps.push_back(std::move(sw));
  }
  out.chains = std::move(cc);
  return out;
}

}  // namespace zonewall::dataplane
