// What differs between two rulesets (pure): the element-level changes that take the kernel
// from the table it holds to the new one, the chains that come and go, the swapped maps.
//
// An update reaches the kernel in up to four transactions (batch.h encodeUpdate), each atomic,
// and the Programmer waits out an RCU grace period after each one that changes or removes
// anything (not after the additive ones), so no packet is judged across more than one such
// commit. The kernel takes a packet's rules from the generation it entered in but reads every
// set in the live one; each step is ordered so that a packet judged while it commits still
// gets the old verdict or the new one:
//
//   old table ──1 chains──▶ ──2 grow──▶ ──3 switch──▶ ──4 prune──▶ new table
//
//   1 chains (additive)  new chains (a Log outcome's, a remote class's) with their rules. The
//                        kernel makes a chain with an empty rule blob for both generations and
//                        commits its rules into the next generation's only, so nothing may lead
//                        to a chain in the transaction that makes it.
//   2 grow (additive)    verdict entries under keys the old table does not have; the rebuilt
//                        swapped maps, filled; the old maps' bridges (MapSwap::bridges).
//                        Nothing reaches them yet, or they decide as the new table does.
//   3 switch             entries whose verdict changes; the remote class maps, local address
//                        sets and anti-spoofing set, whole; the swapped maps' lookup chains
//                        rewritten to name the rebuilt maps.
//   4 prune              entries the new table no longer has; the old swapped maps and any
//                        left-over ones; chains nothing jumps to any more.
//
// A direction's range map (pipapo) and default map are swapped, never edited (ruleset.h,
// isSwappedSetName). A packet classed by the new class maps but judged by the old lookup chain
// across the switch meets the old maps with a class or destination new with this update: the
// bridges give the old maps, under keys they lack, the new table's answers for exactly those.
#pragma once

#include <cstdint>
#include <expected>
#include <string>
#include <tuple>
#include <vector>

#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

/// One element-level change of a set.
struct SetChange {
  std::string set;
  std::vector<Element> add;
  std::vector<Element> remove;
};

/// A lookup chain's swapped maps (range and default map, see isSwappedSetName) rebuilt under
/// their alternate names, and the chain rewritten to name them.
struct MapSwap {
  std::vector<std::string> old_sets;
  std::vector<SetDef> replacements;  ///< named alternateSet(old), with every element
  ChainDef chain;                    ///< the lookup chain, its rules naming the replacements
  std::vector<SetChange> edits;      ///< what the rebuild changes, element by element (reports)
  /// Entries added to the old maps at the grow, under keys those maps do not have (they go
  /// whole at the prune, so they cost no pipapo delete): the range entries of new classes and
  /// of new local addresses, the defaults of new local addresses, and, where an address's
  /// default changes, the rest of the (protocol, port) space for each new class with the new
  /// default (the old default map keeps answering the old classes). Named like the old maps;
  /// empty when nothing needs them.
  std::vector<SetDef> bridges;
};

/// Chains that come and go on an update (a Log outcome's chain, a remote class's chain) and
/// swapped maps. No base chain is ever deleted and re-created on an update: that would leave
/// a moment in which the dying chain's rules see its sets emptied.
struct ChainChanges {
  std::vector<std::string> remove;
  std::vector<ChainDef> add;
  std::vector<MapSwap> swaps;
  std::vector<std::string> drop_sets;  ///< left-over maps of an unfinished swap
  bool empty() const { return remove.empty() && add.empty() && swaps.empty() && drop_sets.empty(); }
};

/// Everything an update changes.
struct RulesetDiff {
  std::vector<SetChange> sets;  ///< element changes of sets edited in place
  ChainChanges chains;
  bool empty() const { return sets.empty() && chains.empty(); }
};

/// Why two rulesets cannot be diffed element by element: their skeletons (fixed chains, rules,
/// set definitions) differ, and only a replace of the whole table will do.
struct SkeletonMismatch {
  std::string why;
};

/// The difference between two rulesets with the same skeleton.
std::expected<RulesetDiff, SkeletonMismatch> diffRulesets(const Ruleset& from, const Ruleset& to);

/// Gives `want`'s swapped maps the names `have` uses (after a swap, the alternate ones).
void alignSwappedSets(const Ruleset& have, Ruleset& want);

/// True for the chains that may come and go on an update (isLogChain, or a remote class's).
bool isDynamicChain(const std::string& name);
bool isLogChain(const std::string& name);

/// An element's identity in its set (everything but its verdict and origin).
inline auto elementKey(const Element& e) {
  return std::make_tuple(e.iface, e.addr, e.addr_hi, e.mark, e.proto_lo, e.proto_hi, e.port_lo,
                         e.port_hi);
}
/// The same identity by reference, for comparisons that must not copy.
inline auto elementKeyRef(const Element& e) {
  return std::tie(e.iface, e.addr, e.addr_hi, e.mark, e.proto_lo, e.proto_hi, e.port_lo, e.port_hi);
}

}  // namespace zonewall::dataplane
