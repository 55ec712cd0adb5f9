// This node's half of the pod network, as flanneld runs it: lease a subnet in etcd (Flannel's
// layout), write subnet.env for the CNI plugin, run the vxlan overlay to every other node's
// lease, renew before expiry, follow the other leases as they come, change and go.
#pragma once

#include <atomic>
#include <chrono>
#include <expected>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "zonewall/agent/leases.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/agent/overlay.h"

namespace zonewall::agent {

struct NodeNetworkOptions {
  EtcdEndpoint etcd;
  std::string prefix = "/coreos.com/network";
  std::chrono::seconds ttl = EtcdSubnetManager::kFlannelTtl;
  /// Renew this long before expiry (Flannel's --subnet-lease-renew-margin, 60 min), at most
  /// half the TTL.
  std::chrono::seconds renew_margin = std::chrono::minutes(60);
  std::string iface;  ///< the underlay interface (Flannel's --iface)
  Addr public_ip;     ///< this node's address on it (the lease's PublicIP)
  std::string subnet_file = "/run/flannel/subnet.env";
  bool ip_masq = false;
};

class NodeNetwork {
 public:
  /// Leases the subnet (this node's own from a previous run, else the one subnet.env names if
  /// free, else a new one), brings the overlay up to every other lease and writes
  /// subnet.env; then follows the leases and renews in the background until destroyed. The
  /// lease is kept on exit: a restarted agent takes it back.
  static std::expected<std::unique_ptr<NodeNetwork>, Error> start(NodeNetworkOptions options,
                                                                  Metrics& metrics);
  ~NodeNetwork();
  NodeNetwork(const NodeNetwork&) = delete;
  NodeNetwork& operator=(const NodeNetwork&) = delete;

  SubnetLease lease() const;

 private:
  NodeNetwork(NodeNetworkOptions options, Metrics& metrics);
  /// Lists the leases and syncs the overlay to them; the revision they were read at.
  std::expected<std::int64_t, Error> resync();
  void followLeases();
  void renewLoop();

  NodeNetworkOptions options_;
  Metrics& metrics_;
  NetworkConfig config_;
  mutable std::mutex mu_;
  SubnetLease lease_;
  std::unique_ptr<EtcdSubnetManager> manager_;  ///< renewals (its own connection)
  std::unique_ptr<VxlanOverlay> overlay_;
  std::atomic<bool> stop_{false};
  std::thread watcher_, renewer_;
};

}  // namespace zonewall::agent
