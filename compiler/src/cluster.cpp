#include "zonewall/compiler/cluster.h"

#include <set>

#include "zonewall/compiler/compile.h"

namespace zonewall::compiler {

std::expected<ClusterTables, Error> ClusterTables::compile(const Program& program,
                                                           const Inventory& inventory) {
  ClusterTables out(inventory);
  std::set<std::string> nodes;
  for (const auto& p : inventory.store().pods) {
    nodes.insert(p.node);
  }
  for (const std::string& n : nodes) {
    auto t = compileNode(program, inventory, n);
    if (!t) {
      return std::unexpected(t.error());
    }
    out.tables_.emplace(n, std::move(*t));
  }
  return out;
}

ClusterTables::Side ClusterTables::decide(Direction d, Addr local, Addr remote, Protocol protocol,
                                          std::uint16_t port) const {
  Side s;
  const policy::Pod* pod = inventory_->podAt(local);
  if (pod == nullptr) {
    return s;
  }
  s.table = table(pod->node);
  if (s.table != nullptr) {
    s.outcome = s.table->decide(d, local, remote, protocol, port);
  }
  return s;
}

bool ClusterTables::connectionAllowed(Addr src, Addr dst, Protocol protocol,
                                      std::uint16_t port) const {
  if (src.family() != dst.family()) {
    return false;
  }
  Side e = decide(Direction::kEgress, src, dst, protocol, port);
  if (e.applies() && !e.outcome->allow) {
    return false;
  }
  Side i = decide(Direction::kIngress, dst, src, protocol, port);
  return !(i.applies() && !i.outcome->allow);
}

const NodeTable* ClusterTables::table(const std::string& node) const {
  auto it = tables_.find(node);
  return it == tables_.end() ? nullptr : &it->second;
}

}  // namespace zonewall::compiler
