// The compiler: lowered program + inventory → one node's classification table.
#pragma once

#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/table.h"

namespace zonewall::compiler {

/// The node name that makes every pod of the inventory local: one table for the whole cluster,
/// whose classes are the cluster's (what analysis reasons on). No node can have this name.
inline constexpr const char* kEveryNode = "*";

/// One node's compiler, kept alive so that a change recomputes only what it touches: the
/// agent's core. After any sequence of changes the table decides every packet as a fresh
/// compile of the same input would (class ids may differ where a fresh compile would have
/// merged classes that only dropped predicates still tell apart; build() canonicalizes).
/// A change that fails (past the table's limits) leaves the state unknown: build() again.
class NodeCompiler {
 public:
  NodeCompiler(const Inventory& inventory, std::string node);
  ~NodeCompiler();
  NodeCompiler(const NodeCompiler&) = delete;
  NodeCompiler& operator=(const NodeCompiler&) = delete;

  /// Compiles from scratch. Deterministic: the same inputs give an identical table.
  std::expected<void, Error> build(const Program& program);
  /// The program changed (policies added, replaced or removed; see ProgramBuilder).
  std::expected<void, Error> programChanged(const Program& program);
  /// Pod `pod` (index into the store) changed its labels; Inventory::relabel was called.
  std::expected<void, Error> podLabelsChanged(std::uint32_t pod);
  /// Pods were added, removed, readdressed or otherwise changed: Inventory::removePod killed
  /// the slots `removed`, Inventory::addPod made the slots `added` (any number of pods). The
  /// store entry of a removed pod must still name its namespace (a gone pod's entry is kept,
  /// not reused, until this returns); call Inventory::recycle() after.
  std::expected<void, Error> podsChanged(const std::vector<size_t>& removed,
                                         const std::vector<size_t>& added);

  const NodeTable& table() const;

 private:
  class State;
  std::unique_ptr<State> s_;
};

/// Compiles the table of `node` (pods whose spec.nodeName is `node`). Deterministic: the same
/// inputs give an identical table. Fails only past the table's fixed limits (65535 remote
/// classes per family).
std::expected<NodeTable, Error> compileNode(const Program& program, const Inventory& inventory,
                                            const std::string& node);

}  // namespace zonewall::compiler
