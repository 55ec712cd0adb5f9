// This node's half of the pod network, as flanneld runs it: take this node's subnet from a
// subnet manager (etcd, the Kubernetes API, or configuration), write subnet.env for the CNI
// plugin, run the backend (vxlan or host-gw) to every other node's lease, masquerade pod
// traffic leaving the cluster network, renew before expiry, and follow the other leases as
// they come, change and go.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <expected>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "zonewall/agent/leases.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/agent/overlay.h"

namespace zonewall::agent {

/// The interface the pod network runs over and this node's address on it, found as flanneld
/// finds them (pkg/ipmatch LookupExtIface): `iface` names the interface or is an address one
/// holds; empty, it is the interface of the default IPv4 route. The address is the
/// interface's first IPv4 address (or `iface` itself when it is one).
struct ExternalInterface {
  std::string name;
  Addr addr;
  std::optional<Addr> addr6;  ///< its first global IPv6 address (dual stack)
};
std::expected<ExternalInterface, Error> lookupExternalInterface(const std::string& iface);

struct NodeNetworkOptions {
  /// Renew this long before expiry (Flannel's --subnet-lease-renew-margin, 60 min), at most
  /// half the TTL.
  std::chrono::seconds renew_margin = std::chrono::minutes(60);
  std::string iface;                ///< the underlay interface (Flannel's --iface); "" for static
  Addr public_ip;                   ///< this node's address on it (the lease's PublicIP)
  std::optional<Addr> public_ipv6;  ///< PublicIPv6, for a network with EnableIPv6
  std::string subnet_file = "/run/flannel/subnet.env";
  /// Flannel's --ip-masq: masquerade pod traffic leaving the cluster network (table
  /// `masq_table`), and say so in subnet.env.
  bool ip_masq = false;
  std::string masq_table = "zonewall-masq";
  /// How often the kernel's overlay entries are read and repaired (a route deleted by hand
  /// comes back); 0: never.
  std::chrono::seconds check_interval{10};
};

class NodeNetwork {
 public:
  /// Leases the subnet (this node's own from a previous run, else the one subnet.env names if
  /// free, else a new one), brings the backend up to every other lease and writes
  /// subnet.env; then follows the leases and renews in the background until destroyed. The
  /// lease is kept on exit: a restarted agent takes it back.
  static std::expected<std::unique_ptr<NodeNetwork>, Error> start(
      std::unique_ptr<SubnetManager> manager, NodeNetworkOptions options, Metrics& metrics);
  ~NodeNetwork();
  NodeNetwork(const NodeNetwork&) = delete;
  NodeNetwork& operator=(const NodeNetwork&) = delete;

  SubnetLease lease() const;

 private:
  NodeNetwork(std::unique_ptr<SubnetManager> manager, NodeNetworkOptions options, Metrics& metrics);
  std::expected<int, Error> startBackends(LeaseAttrs& attrs);
  std::expected<void, Error> masquerade();
  /// Every lease as the manager sees it now: this node's checked, the others routed to.
  void onLeases(const std::vector<SubnetLease>& leases);
  /// Makes the overlays hold exactly the other leases' entries.
  void syncOverlays(const std::vector<SubnetLease>& leases, const SubnetLease& own);
  void checkLoop();
  void renewLoop();

  std::unique_ptr<SubnetManager> manager_;  ///< acquire and renew (the renewer's thread)
  NodeNetworkOptions options_;
  Metrics& metrics_;
  NetworkConfig config_;
  mutable std::mutex mu_;
  std::condition_variable wake_renewer_;
  SubnetLease lease_;
  std::chrono::system_clock::duration lease_ttl_{};  ///< as granted
  bool reclaim_ = false;  ///< our key vanished from etcd: claim it again (the renewer does)
  bool lost_ = false;
  std::optional<Overlay> overlay_;   ///< IPv4; none for a single node
  std::optional<Overlay> overlay6_;  ///< IPv6, when the network enables it
  std::mutex overlay_mu_;            ///< the overlays and `leases_`: the follower and the checker
  std::vector<SubnetLease> leases_;  ///< the last set the manager reported
  std::atomic<bool> stop_{false};
  std::thread follower_, renewer_, checker_;
};

}  // namespace zonewall::agent
