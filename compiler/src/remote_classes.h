// The remote classifier: every address of the cluster — pod addresses, and the intervals that
// the predicates' ranges (ipBlocks, nets, network sets) cut the address space into — grouped
// into classes of equal membership in the rules' peer predicates. It owns the class
// invariants:
//   - one class per (family, membership); a class no atom has any more is dead until build;
//   - a class's id is a hash of its membership's predicate keys (a class keeps its id when
//     unrelated pods and policies change; a collision probes to the next free id), 0 is the
//     class of no predicate;
//   - a pod address whose class is not 0, or differs from its interval's, is listed in the
//     exact map, so that its class never depends on an interval lookup (the kernel's rbtree can
//     miss an address for a moment while a range is replaced; a hash lookup cannot);
//   - a predicate no rule needs any more stays until the next build: it only makes classes
//     finer, never changes a verdict.
// It writes the remote half of the node's table: remote_exact as it changes, remote_classes
// and remote_ranges on emit().
#pragma once

#include <algorithm>
#include <cstdint>
#include <expected>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/compiler/address_set.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/table.h"

namespace zonewall::compiler {

/// One remote class.
struct RemoteGroup {
  Family family;
  std::vector<std::uint32_t> preds;  ///< sorted predicate indices
  RemoteClassId id = kNoRemoteClass;
  size_t pod_members = 0;
  size_t interval_members = 0;
  bool alive() const { return pod_members + interval_members > 0; }
};

class RemoteClassifier {
 public:
  /// Classifies `inventory`'s addresses for the table `table` (whose remote fields it writes).
  RemoteClassifier(const Inventory& inventory, NodeTable& table) : inv_(inventory), table_(table) {}

  void clear();

  /// The index of predicate `e` (by its key); a new one is evaluated and kept for refine().
  std::uint32_t predicate(const AddrExprPtr& e);

  /// Classifies every atom from scratch.
  std::expected<void, Error> classifyAll();
  /// New predicates (since the last classify or refine) split the classes they cut.
  std::expected<void, Error> refine();
  /// Pod address `i` (an index of Inventory::addrs()) changed labels: its membership in every
  /// predicate, and so its class, recomputed.
  std::expected<void, Error> addressChanged(size_t i);
  /// Pod address `i` is a new slot of the inventory: classified.
  std::expected<void, Error> addressAdded(size_t i);
  /// Pod address `i`'s slot died: it leaves its class (dropDead() may then drop the class).
  void addressRemoved(size_t i);
  /// Many addresses about to be added or removed: the exact map is rewritten once, at
  /// endBatch(), instead of edited per address (each edit moves the sorted map).
  void beginBatch() { batch_ = true; }
  void endBatch();
  /// Classes that no atom has any more, dropped now (their ids free again).
  std::vector<std::uint32_t> dropDead();
  /// A dropped class keeps its index (paintings name classes by index) until compact(): past
  /// as many dead classes as live ones (and 16), a long run of changes would otherwise grow
  /// the class list without bound.
  bool wantsCompaction() const {
    return dead_.size() > std::max<size_t>(16, classes_.size() - dead_.size());
  }
  /// Renumbers the live classes densely, in their order; returns each old index's new one
  /// (kNoClass for a dropped class). Only between changes: nothing dirty.
  std::vector<std::uint32_t> compact();
  static constexpr std::uint32_t kNoClass = ~0U;  ///< of a dead slot, or a dropped class

  /// Classes made since clearDirty(), ascending (a class made later has a larger index): the
  /// pairs to paint. Some may be dead already (made, then emptied by a later split).
  const std::set<std::uint32_t>& dirty() const { return dirty_; }
  /// A class refine() made by splitting `parent` with the one predicate `pred` (new then): a
  /// program that does not name `pred` paints it as it paints `parent`.
  struct Split {
    std::uint32_t parent;
    std::uint32_t pred;
  };
  /// The dirty classes made by a split, by class.
  const std::unordered_map<std::uint32_t, Split>& splits() const { return splits_; }
  void clearDirty() {
    dirty_.clear();
    splits_.clear();
  }

  std::uint32_t size() const { return static_cast<std::uint32_t>(classes_.size()); }
  const RemoteGroup& operator[](std::uint32_t c) const { return classes_[c]; }

  /// Writes the table's remote_classes and remote_ranges.
  void emit() const;

 private:
  std::expected<std::uint32_t, Error> classFor(Family fam, const std::vector<std::uint32_t>& preds);
  std::expected<std::uint32_t, Error> classify(size_t i);
  void movePod(size_t i, std::uint32_t to);
  static bool needsExact(RemoteClassId pod_id, RemoteClassId interval_id);
  void updateExact(size_t i);
  size_t intervalOf(U128 v) const;
  void rebuildExact();
  std::expected<void, Error> classifyIntervals();

  const Inventory& inv_;
  NodeTable& table_;
  std::vector<AddrExprPtr> preds_;
  std::unordered_map<std::string, std::uint32_t> pred_index_;
  std::vector<AddrSet> pred_sets_;
  std::vector<std::uint32_t> new_preds_;
  std::vector<RemoteGroup> classes_;
  std::map<std::pair<Family, std::vector<std::uint32_t>>, std::uint32_t> class_index_;
  std::set<std::pair<Family, RemoteClassId>> used_ids_;
  std::set<std::uint32_t> dirty_;
  std::unordered_map<std::uint32_t, Split> splits_;
  std::set<std::uint32_t> dead_;
  std::vector<std::uint32_t> pod_class_;  ///< by address slot
  std::vector<U128> cuts_;                ///< where the intervals start, ascending
  std::vector<std::uint32_t> iv_class_;   ///< by interval
  /// The classes table_.remote_classes lists, as emit() last wrote them (a class's index
  /// keeps its predicates: they are its identity).
  mutable std::vector<std::uint32_t> listed_;
  bool batch_ = false;
};

}  // namespace zonewall::compiler
