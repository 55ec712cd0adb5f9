// The cluster compiled for this node, kept alive between snapshots: the agent's use of the
// incremental compiler.
//
//   a snapshot's changes ──┬─ policies (NetworkPolicy, Calico NetworkPolicy,
//                          │  GlobalNetworkPolicy, AdminNetworkPolicy,
//                          │  BaselineAdminNetworkPolicy, ClusterNetworkPolicy added,
//                          │  changed, deleted)
//                          │     → ProgramBuilder upsert/erase → NodeCompiler::programChanged
//                          ├─ pods added, deleted, readdressed, relabelled; a local pod's
//                          │  endpoint record come or gone (its addresses); a namespace
//                          │  relabelled, added or deleted (its pods, re-added)
//                          │     → Inventory::removePod/addPod → NodeCompiler::podsChanged
//                          ├─ pods without an address before and after (created, not yet
//                          │  given one), nodes whose labels and addresses stay (a
//                          │  heartbeat) → nothing: the table stays
//                          └─ anything else (tiers, sets, nodes; a namespace with NetworkSets;
//                             a pod taking an address another pod holds, or declaring a named
//                             port no pod declared) → the whole store, compiled afresh
//
// Pure: no I/O, no clock. tests/agent/cluster_compiler_test.cpp checks that every path
// decides every packet as a fresh compile of the same cluster does.
#pragma once

#include <expected>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "zonewall/agent/cluster_state.h"
#include "zonewall/base/error.h"
#include "zonewall/compiler/table.h"

namespace zonewall::agent {

class ClusterCompiler {
 public:
  explicit ClusterCompiler(std::string node);
  ~ClusterCompiler();
  ClusterCompiler(const ClusterCompiler&) = delete;
  ClusterCompiler& operator=(const ClusterCompiler&) = delete;

  enum class Path : std::uint8_t {
    kFull,             ///< compiled afresh
    kPolicies,         ///< policies changed
    kPods,             ///< pods (or their endpoint records) changed
    kPodsAndPolicies,  ///< both, in one snapshot
    kUnchanged,        ///< only pods without addresses came or went: the table stays as it is
  };
  static const char* pathName(Path p);

  /// Whether `s` can be applied without the whole store (ClusterState::take's wants_full is
  /// the negation).
  bool incremental(const ClusterState::Snapshot& s) const;

  /// Applies a snapshot (with the whole store when !incremental(s)). On an error the kernel
  /// keeps its last table, and the next snapshot is compiled afresh.
  /// The snapshot's store is taken over (moved from).
  std::expected<Path, Error> apply(ClusterState::Snapshot& s);

  /// Objects the last applies left out, and why (a policy in a tier that does not exist, an
  /// address two pods claim).
  const std::vector<std::string>& dropped() const { return dropped_; }
  /// The table; only after a successful apply (hasTable()).
  const compiler::NodeTable& table() const;
  bool hasTable() const { return built_ != nullptr; }

 private:
  struct Built;
  bool inert(const ClusterState::Change& c) const;
  std::expected<void, Error> rebuild(ClusterState::Snapshot& s);
  std::expected<void, Error> applyPolicies(const ClusterState::Snapshot& s);
  std::expected<void, Error> applyPods(const ClusterState::Snapshot& s);

  const std::string node_;
  std::unique_ptr<Built> built_;
  std::vector<std::string> dropped_;
};

}  // namespace zonewall::agent
