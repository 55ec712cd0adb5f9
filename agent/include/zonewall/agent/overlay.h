// Flannel's backends on this node, through libnl-3 (flannel-io/flannel pkg/backend):
// - vxlan: one VXLAN device `flannel.<VNI>` (learning off, the node's public address as the
//   tunnel source, MTU = underlay − 50, the leased subnet's network address /32 on it; for a
//   dual-stack network also `flannel-v6.<VNI>` over the IPv6 underlay, MTU − 70, /128), and
//   for each remote node's lease: a permanent neighbour (its subnet address → its VTEP MAC),
//   an FDB entry (VTEP MAC → its public address) and the route to its subnet via that
//   address, onlink.
// - host-gw: for each remote node's lease, the route to its subnet via its public address on
//   the underlay (the nodes share a link); nothing else is touched on that interface.
// Remote nodes come and go by lease; sync() touches only what changed.
#pragma once

#include <array>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/base/ip.h"

namespace zonewall::agent {

using Mac = std::array<std::uint8_t, 6>;
std::string formatMac(const Mac& m);
std::optional<Mac> parseMac(std::string_view text);

struct VxlanSpec {
  int vni = 1;
  int port = 0;          ///< 0: the kernel's default (8472, as Flannel)
  std::string underlay;  ///< the interface that carries the tunnel
  Addr local;            ///< this node's public address (PublicIP, or PublicIPv6: IPv6 device)
  /// flannel.<VNI>, or flannel-v6.<VNI> for the IPv6 device of a dual-stack network.
  std::string name() const {
    return (local.family() == Family::kV6 ? "flannel-v6." : "flannel.") + std::to_string(vni);
  }
};

/// A remote node as its lease describes it (for an IPv6 overlay: its IPv6 subnet, PublicIPv6
/// and BackendV6Data's VtepMAC).
struct Peer {
  Cidr subnet;
  Addr public_ip;
  Mac vtep_mac{};  ///< vxlan: its VTEP's MAC (BackendData VtepMAC)
  friend bool operator==(const Peer&, const Peer&) = default;
};

class Overlay {
 public:
  /// vxlan: creates the device or adopts one that fits (a restarted agent keeps its MAC, so
  /// the other nodes' FDB entries stay right); sets its MTU and brings it up. Its MAC goes
  /// into the lease this node claims.
  static std::expected<Overlay, Error> vxlan(const VxlanSpec& spec);
  /// host-gw over `underlay`: only routes to subnets inside `network` are ever read or
  /// changed there (the underlay's own routes are not the overlay's).
  static std::expected<Overlay, Error> hostGw(const std::string& underlay, const Cidr& network);
  /// vxlan: puts the leased subnet's network address on the device (/32, /128); host-gw:
  /// nothing.
  std::expected<void, Error> assign(const Cidr& subnet);
  ~Overlay();
  Overlay(Overlay&&) noexcept;
  Overlay& operator=(Overlay&&) noexcept;

  bool isVxlan() const;
  const Mac& mac() const;  ///< vxlan: the VTEP's MAC
  /// What pods get: underlay − 50 for vxlan (− 70 over IPv6), the underlay's for host-gw.
  int mtu() const;
  int ifindex() const;  ///< the device routes go through

  struct Changes {
    int added = 0;
    int removed = 0;
    int unchanged = 0;
  };
  /// Makes the kernel hold exactly `peers`' neighbours, FDB entries and routes on the device:
  /// the first call reads what is there (from a previous run) and fixes only the difference;
  /// later ones diff against what they programmed.
  std::expected<Changes, Error> sync(const std::vector<Peer>& peers);
  /// Forgets what it programmed: the next sync reads the kernel again and repairs whatever
  /// someone else changed (Flannel re-checks host-gw routes every 10 s).
  void forget();

 private:
  struct Impl;
  explicit Overlay(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zonewall::agent
