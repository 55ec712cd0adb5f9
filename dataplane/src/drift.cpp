#include "zonewall/dataplane/drift.h"

#include <fmt/format.h>

#include <algorithm>

#include "set_codec.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"

namespace zonewall::dataplane {
namespace {

// Swapped maps may live under their alternate names: follows what the kernel's lookup chains
// reference, renaming `want`'s maps (a copy of `expected`) to match, and notes a map that
// nothing references (a swap whose switch never came) so that the next swap can clear it.
void followSwaps(const TableSnapshot& snap, const Ruleset& expected, Ruleset& want,
                 KernelState& st) {
  for (const ChainDef& c : expected.chains) {
    if (std::ranges::none_of(c.rules, [](const Rule& r) { return isSwappedSetName(r.set); })) {
      continue;
    }
    ChainDef alt = withAlternateSets(c);
    auto it = snap.rules.find(c.name);
    static const std::vector<std::vector<std::string>> kNone;
    const auto& have = it == snap.rules.end() ? kNone : it->second;
    bool alt_referenced =
        have.size() == alt.rules.size() &&
        std::equal(alt.rules.begin(), alt.rules.end(), have.begin(),
                   [](const Rule& r, const auto& h) { return ruleExpressions(r) == h; });
    for (size_t i = 0; i < c.rules.size(); ++i) {
      const std::string& first = c.rules[i].set;
      if (first == alt.rules[i].set) {
        continue;
      }
      const std::string& second = alt.rules[i].set;
      const std::string& unused = alt_referenced ? first : second;
      if (snap.sets.contains(unused) &&
          std::ranges::find(st.stale_sets, unused) == st.stale_sets.end()) {
        st.stale_sets.push_back(unused);
      }
      if (alt_referenced) {
        renameSwappedSet(want, first, second);
      }
    }
  }
}

// The chains and rules: missing, extra or different ones make the skeleton differ.
void compareChains(const TableSnapshot& snap, const Ruleset& want, KernelState& st) {
  for (const ChainDef& c : want.chains) {
    if (isDynamicChain(c.name) && !snap.chains.contains(c.name)) {
      continue;  // an update adds it
    }
    if (!snap.chains.contains(c.name)) {
      st.drift.push_back("chain " + c.name + " is missing");
      st.skeleton_matches = false;
      continue;
    }
    auto it = snap.rules.find(c.name);
    const size_t have_rules = it == snap.rules.end() ? 0 : it->second.size();
    if (have_rules != c.rules.size()) {
      st.drift.push_back(
          fmt::format("chain {} has {} rules, expected {}", c.name, have_rules, c.rules.size()));
      st.skeleton_matches = false;
      continue;
    }
    for (size_t i = 0; i < c.rules.size(); ++i) {
      if (it->second[i] != ruleExpressions(c.rules[i])) {
        st.drift.push_back(fmt::format("rule {} of chain {} differs", i, c.name));
        st.skeleton_matches = false;
      }
    }
  }
  for (const std::string& c : snap.chains) {
    if (isDynamicChain(c)) {
      continue;  // an update removes it
    }
    if (want.findChain(c) == nullptr) {
      st.drift.push_back("unexpected chain " + c);
      st.skeleton_matches = false;
    }
  }
}

// The sets: each expected one with the elements the kernel holds, decoded as its kind.
void compareSets(const TableSnapshot& snap, const Ruleset& want, KernelState& st) {
  for (const SetDef& s : want.sets) {
    SetDef got{s.name, s.kind, s.family, {}};
    auto it = snap.sets.find(s.name);
    if (it == snap.sets.end()) {
      st.drift.push_back("set " + s.name + " is missing");
      st.skeleton_matches = false;
    } else if (SetShape want_shape = shapeOf(s); it->second.shape != want_shape) {
      // Same name, another kind of set (someone's, an older zonewall's): its elements would
      // not decode, and element changes would be refused.
      const SetShape& have_shape = it->second.shape;
      st.drift.push_back(fmt::format(
          "set {} is defined differently (flags {:#x}, key {} bytes; expected {:#x}, {} bytes)",
          s.name, have_shape.flags, have_shape.key_len, want_shape.flags, want_shape.key_len));
      st.skeleton_matches = false;
    } else {
      got.elements = decodeElements(s, it->second.elements);
    }
    st.ruleset.sets.push_back(std::move(got));
  }
}

}  // namespace

KernelState analyzeSnapshot(const Ruleset& expected, const TableSnapshot& snap) {
  KernelState st;
  st.ruleset.table = expected.table;
  st.ruleset.class_mask = expected.class_mask;
  // A left-over aside table of an interrupted replace judges packets too.
  st.aside_exists = snap.aside_exists;
  if (st.aside_exists) {
    st.drift.push_back("table inet " + asideTable(expected.table) +
                       " is left from an interrupted replace");
  }
  if (!snap.exists) {
    return st;
  }
  st.exists = true;
  Ruleset want = expected;
  followSwaps(snap, expected, want, st);
  st.skeleton_matches = true;
  compareChains(snap, want, st);
  compareSets(snap, want, st);
  if (st.skeleton_matches) {
    // The fixed chains as expected; the dynamic chains as the kernel has them.
    for (const ChainDef& c : want.chains) {
      if (!isDynamicChain(c.name)) {
        st.ruleset.chains.push_back(c);
      }
    }
    for (const std::string& c : snap.chains) {
      if (isDynamicChain(c)) {
        st.ruleset.chains.push_back(ChainDef{c, {}, {}});
      }
    }
  }
  return st;
}

TableSnapshot snapshotOf(const Ruleset& rs) {
  TableSnapshot snap;
  snap.exists = true;
  for (const ChainDef& c : rs.chains) {
    snap.chains.insert(c.name);
    auto& rules = snap.rules[c.name];
    for (const Rule& r : c.rules) {
      rules.push_back(ruleExpressions(r));
    }
  }
  for (const SetDef& s : rs.sets) {
    SetSnapshot& out = snap.sets[s.name];
    out.shape = shapeOf(s);
    for (const Element& e : s.elements) {
      for (const RawElement& raw : netlinkElements(s, e, false)) {
        out.elements.push_back({.key = raw.key,
                                .key_end = raw.key_end,
                                .flags = raw.flags,
                                .verdict = raw.verdict != nullptr ? *raw.verdict : Verdict{}});
      }
    }
  }
  return snap;
}

std::expected<KernelState, Error> readKernelState(Transport& transport, const Ruleset& expected) {
  auto snap = transport.read(expected.table);
  if (!snap) {
    return std::unexpected(snap.error());
  }
  return analyzeSnapshot(expected, *snap);
}

}  // namespace zonewall::dataplane
