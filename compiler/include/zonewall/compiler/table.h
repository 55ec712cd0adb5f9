// The node's classification table: what the compiler produces and the dataplane installs.
//
//   remote address ──▶ remote class (16 bits; exact map for pod IPs, interval map otherwise;
//                      absent = class 0, the class of addresses no rule peer names)
//   local address  ──▶ local class (per direction)
//   (local class, remote class, protocol range, port range) ──▶ outcome   [disjoint entries]
//   no entry        ──▶ the local class's default outcome
//
// "port" is the L4 destination port, or type << 8 | code for ICMP and ICMPv6. Every outcome
// names the rule (or default) that decided it. A packet's verdict is a fixed number of
// lookups, whatever the number of policies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zonewall/base/ip.h"
#include "zonewall/compiler/program.h"

namespace zonewall::compiler {

using RemoteClassId = std::uint16_t;
inline constexpr RemoteClassId kNoRemoteClass = 0;

struct Outcome {
  bool allow = false;
  std::uint32_t attribution = 0;    ///< into NodeTable::attributions
  std::vector<std::uint32_t> logs;  ///< Log rules hit before the decision, in order
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

struct Entry {
  std::uint32_t local_class = 0;
  RemoteClassId remote_class = 0;
  Protocol proto_lo = 0;
  Protocol proto_hi = 0;
  std::uint16_t port_lo = 0;
  std::uint16_t port_hi = 0;
  std::uint32_t outcome = 0;  ///< into NodeTable::outcomes
  friend bool operator==(const Entry&, const Entry&) = default;
};

struct LocalClass {
  std::uint32_t id = 0;
  Family family = Family::kV4;
  std::uint32_t default_outcome = 0;
  std::vector<Addr> addrs;  ///< sorted
};

struct RemoteClass {
  RemoteClassId id = 0;
  Family family = Family::kV4;
  std::vector<std::uint32_t> predicates;  ///< the rule peers it is in: NodeTable::predicates
};

/// A pod of this node: where its packets enter (its host veth) and the addresses they may
/// carry (anti-spoofing).
struct LocalEndpoint {
  std::string pod;    ///< "ns/name"
  std::string iface;  ///< host veth
  std::vector<Addr> addrs;
};

struct DirectionTable {
  std::vector<LocalClass> classes;  ///< by id - 1
  std::vector<Entry> entries;       ///< sorted by (local, remote, proto, port)
};

struct NodeTable {
  std::string node;
  std::vector<Attribution> attributions;
  std::vector<Outcome> outcomes;
  std::vector<RemoteClass> remote_classes;  ///< sorted by (family, id); class 0 not listed
  /// The canonical keys of the rule peers (remote predicates) classes are told apart by. It
  /// only grows while one NodeCompiler keeps the table (a key no class names any more stays).
  std::vector<std::string> predicates;
  /// Every pod address with a class (or whose class differs from its interval's), sorted.
  std::vector<std::pair<Addr, RemoteClassId>> remote_exact;
  std::vector<std::pair<Range, RemoteClassId>> remote_ranges;  ///< sorted, disjoint
  DirectionTable directions[2];                                ///< by Direction
  std::vector<LocalEndpoint> endpoints;                        ///< sorted by pod

  const DirectionTable& dir(Direction d) const { return directions[static_cast<int>(d)]; }
  RemoteClassId remoteClassOf(Addr a) const;
  const LocalClass* localClassOf(Direction d, Addr a) const;

  /// The outcome for a packet between `local` (on this node) and `remote`; nullptr when
  /// `local` is not one of this node's endpoints. `port` is type << 8 | code for ICMP.
  const Outcome* decide(Direction d, Addr local, Addr remote, Protocol proto,
                        std::uint16_t port) const;

  size_t entryCount() const { return directions[0].entries.size() + directions[1].entries.size(); }
};

}  // namespace zonewall::compiler
