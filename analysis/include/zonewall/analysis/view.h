// The cluster as analysis sees it: every pod address is an endpoint, and endpoints that no
// policy can tell apart form one class. The classes are the compiler's own: the cluster is
// compiled as one table in which every pod is local (compiler::kEveryNode), so an endpoint's
// class is (its egress local class, its ingress local class, its remote class). A flow from
// class a to class b is decided, over the whole (protocol, port) space, by a's egress entries
// towards b's remote class and b's ingress entries towards a's: the same lookups the kernel
// makes on each pod's node, so what analysis says is what the nodes enforce.
//
// What diff, check, paths and graph are built on; `matrix` and `explain` answer single flows
// from it. Pure: no I/O.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/table.h"
#include "zonewall/policy/model.h"

namespace zonewall::analysis {

using compiler::Attribution;
using compiler::Direction;
using compiler::Outcome;
using policy::Protocol;

/// A box of the (protocol, destination port) space on which one flow has one verdict. For
/// ICMP the port is type << 8 | code; protocols without ports span 0-65535.
struct FlowSegment {
  Protocol proto_lo = 0;
  Protocol proto_hi = 255;
  std::uint16_t port_lo = 0;
  std::uint16_t port_hi = 65535;
  const Outcome* egress = nullptr;   ///< the source's side
  const Outcome* ingress = nullptr;  ///< the destination's side
  bool allowed() const { return egress->allow && ingress->allow; }
};

class ClusterView {
 public:
  /// Compiles `store` (loaded and validated without errors; it must outlive the view).
  static std::expected<std::unique_ptr<ClusterView>, Error> build(const policy::Store& store);

  struct Endpoint {
    Addr addr;
    std::uint32_t pod = 0;  ///< index into store().pods
    std::uint32_t cls = 0;  ///< index into classes()
  };
  struct Class {
    Family family = Family::kV4;
    std::uint32_t egress = 0;  ///< local class ids in table()
    std::uint32_t ingress = 0;
    compiler::RemoteClassId remote = 0;
    std::vector<std::uint32_t> endpoints;  ///< indices into endpoints(), ascending
  };

  /// Every pod address, by address.
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  const std::vector<Class>& classes() const { return classes_; }
  /// The endpoint at `a`, if a pod has that address.
  const Endpoint* endpointAt(Addr a) const;

  /// The verdict of every (protocol, port) for flows from class `from` to class `to`, as
  /// disjoint segments covering the space (in protocol, then port order); empty when the two
  /// are of different families (no such flow).
  std::vector<FlowSegment> flows(std::uint32_t from, std::uint32_t to) const;
  /// One flow's segment: the one containing (protocol, port).
  std::optional<FlowSegment> flow(std::uint32_t from, std::uint32_t to, Protocol protocol,
                                  std::uint16_t port) const;

  /// One side's verdicts alone, as the boxes it allows, in protocol then port order, each
  /// packed as proto_lo << 56 | proto_hi << 48 | port_lo << 16 | port_hi: the egress of local
  /// class `local` towards remote class `remote`, or the ingress of `local` from `remote`
  /// (ids of table()). Two flows whose sides allow the same boxes have the same verdicts.
  std::vector<std::uint64_t> allowedBoxes(Direction d, std::uint32_t local,
                                          compiler::RemoteClassId remote) const;

  /// Whether the ingress of class `to` allows anything (any protocol, any port) from an
  /// address of remote class `remote` (e.g. one outside the cluster).
  bool ingressAllowsAny(std::uint32_t to, compiler::RemoteClassId remote) const;

  const Attribution& attribution(const Outcome& o) const {
    return table_.attributions[o.attribution];
  }
  const compiler::NodeTable& table() const { return table_; }
  const policy::Store& store() const { return store_; }
  const compiler::Inventory& inventory() const { return *inventory_; }
  const compiler::Program& program() const { return program_; }

 private:
  explicit ClusterView(const policy::Store& store);
  const policy::Store& store_;
  std::unique_ptr<compiler::Inventory> inventory_;
  compiler::Program program_;
  compiler::NodeTable table_;
  std::vector<Endpoint> endpoints_;
  std::vector<Class> classes_;
};

}  // namespace zonewall::analysis
