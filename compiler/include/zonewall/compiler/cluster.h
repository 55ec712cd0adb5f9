// Every node's table of one cluster, asked about connections: a connection is allowed iff the
// source's egress and the destination's ingress allow it, each side decided by the table of
// the node its pod runs on (an address that is no pod's has no side to check). What `matrix`
// and `explain` answer from, and what the tests hold against the reference evaluator.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <string>

#include "zonewall/base/error.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/table.h"

namespace zonewall::compiler {

class ClusterTables {
 public:
  /// Compiles the table of every node that runs a pod of `inventory`.
  static std::expected<ClusterTables, Error> compile(const Program& program,
                                                     const Inventory& inventory);

  /// One side of a connection, decided by the table of `local`'s node.
  struct Side {
    const NodeTable* table = nullptr;  ///< `local`'s node's table; null: not a pod
    const Outcome* outcome = nullptr;  ///< null: no pod, or no table entry applies
    bool applies() const { return outcome != nullptr; }
  };
  Side decide(Direction d, Addr local, Addr remote, Protocol protocol, std::uint16_t port) const;

  /// Egress of `src` and ingress of `dst` both allow it (and both are of one family).
  bool connectionAllowed(Addr src, Addr dst, Protocol protocol, std::uint16_t port) const;

  /// The table of `node`, or null when no pod runs there.
  const NodeTable* table(const std::string& node) const;

 private:
  explicit ClusterTables(const Inventory& inventory) : inventory_(&inventory) {}
  const Inventory* inventory_;
  std::map<std::string, NodeTable> tables_;
};

}  // namespace zonewall::compiler
