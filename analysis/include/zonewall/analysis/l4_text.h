// Protocols and ports as people write them: "TCP 8080", "TCP 80,443,1000-2000", "UDP (all
// ports)", "ICMP type 8", "protocols 7-16", "every protocol".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zonewall/compiler/program.h"

namespace zonewall::analysis {

/// Protocols [proto_lo, proto_hi] on `ports` (sorted, merged; ICMP: type << 8 | code).
struct L4Range {
  policy::Protocol proto_lo = 0;
  policy::Protocol proto_hi = 255;
  std::vector<compiler::PortRange> ports{{0, 65535}};
  friend bool operator==(const L4Range&, const L4Range&) = default;
};

/// Adds protocols [lo, hi] on ports [port_lo, port_hi] to `set` (sorted by protocol, disjoint
/// protocol ranges, adjacent ranges with the same ports merged); boxes must come in protocol,
/// then port order.
void addL4(std::vector<L4Range>& set, policy::Protocol lo, policy::Protocol hi,
           std::uint16_t port_lo, std::uint16_t port_hi);

/// The union of several sets, normalized (cut at every protocol boundary, ports merged).
std::vector<L4Range> unionL4(const std::vector<std::vector<L4Range>>& sets);

/// One protocol range: "TCP 8080", "TCP 80,443,1000-2000", "UDP (all ports)", "ICMP type 8",
/// "protocols 7-16", "every protocol".
std::string l4Text(const L4Range& r);
/// A set: its ranges joined, or "every protocol except ..." when that is shorter.
std::string l4Text(const std::vector<L4Range>& set);

}  // namespace zonewall::analysis
