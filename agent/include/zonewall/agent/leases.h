// Node subnet leases, Flannel's way and on Flannel's wire (flannel-io/flannel pkg/subnet,
// pkg/lease, pkg/subnet/etcd): the network config at <prefix>/config, one key per lease at
// <prefix>/subnets/<a.b.c.d>-<len>[&<v6>-<len>] holding the node's attributes as JSON and
// bound to an etcd lease, and subnet.env for the CNI plugin. A node running flanneld and a
// node running zonewall-agent read and write the same keys.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/agent/etcd.h"
#include "zonewall/base/error.h"
#include "zonewall/base/ip.h"

namespace zonewall::agent {

/// Flannel's network config (subnet.Config), after CheckNetworkConfig's defaulting.
struct NetworkConfig {
  bool enable_ipv4 = true;
  bool enable_ipv6 = false;
  Cidr network;  ///< IPv4
  Cidr ipv6_network;
  int subnet_len = 0;           ///< default: 24, or network+2 for a network smaller than /22
  int ipv6_subnet_len = 0;      ///< default: 64, or network+2
  Addr subnet_min, subnet_max;  ///< default: the second subnet, the last one
  Addr ipv6_subnet_min, ipv6_subnet_max;
  std::string backend_type = "udp";  ///< Backend.Type; Flannel's default when Backend is absent
  int vni = 1;                       ///< vxlan Backend.VNI
  int port = 0;                      ///< vxlan Backend.Port; 0 = the kernel's default (8472)
  std::string backend_json;          ///< Backend as written
};

/// Parses Flannel's config JSON (field names case-insensitive, as Go's encoding/json reads
/// them) and applies CheckNetworkConfig: its defaults and its errors, word for word.
std::expected<NetworkConfig, Error> parseNetworkConfig(const std::string& json_text);

/// What a lease says about its node (lease.LeaseAttrs): the JSON value of its key.
struct LeaseAttrs {
  Addr public_ip;
  std::optional<Addr> public_ipv6;
  std::string backend_type;
  std::string backend_data;     ///< raw JSON, e.g. {"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}
  std::string backend_v6_data;  ///< raw JSON

  std::string toJson() const;
  static std::expected<LeaseAttrs, Error> fromJson(const std::string& text);
  friend bool operator==(const LeaseAttrs&, const LeaseAttrs&) = default;
};

struct SubnetLease {
  std::optional<Cidr> subnet;  ///< IPv4
  std::optional<Cidr> ipv6_subnet;
  LeaseAttrs attrs;
  std::int64_t etcd_lease = 0;
  std::chrono::system_clock::time_point expiration;  ///< set by acquire/renew (granted TTL)

  std::string key() const;  ///< "10.5.34.0-24", "10.5.34.0-24&fc00:0:0:1::-64"
};

/// Flannel's MakeSubnetKey / ParseSubnetKey.
std::string subnetKey(const std::optional<Cidr>& v4, const std::optional<Cidr>& v6);
bool parseSubnetKey(const std::string& key, std::optional<Cidr>& v4, std::optional<Cidr>& v6);

/// Where this node's subnet and the other nodes' leases come from (Flannel's subnet.Manager):
/// etcd (below), the Kubernetes API (kubeSubnetManager) or this node's configuration alone
/// (staticSubnetManager). Not thread-safe: one thread acquires and renews; follow() runs on
/// another with connections of its own.
class SubnetManager {
 public:
  virtual ~SubnetManager() = default;
  virtual std::string name() const = 0;
  virtual std::expected<NetworkConfig, Error> config() = 0;
  /// This node's lease; `previous` is the subnet an old subnet.env names.
  virtual std::expected<SubnetLease, Error> acquire(const NetworkConfig& config,
                                                    const LeaseAttrs& attrs,
                                                    const std::optional<Cidr>& previous) = 0;
  /// Whether leases expire unless renewed (etcd), so that renew() must run before expiry.
  virtual bool expires() const { return false; }
  virtual std::expected<void, Error> renew(SubnetLease& /*lease*/) { return {}; }
  /// Gives the lease up (a node leaving, or a claim that must not be kept).
  virtual std::expected<void, Error> release(const SubnetLease& /*lease*/) { return {}; }
  /// Follows every lease of the network, this node's included, until `stop`: `on_leases`
  /// gets the whole set after the first read and after every change. Errors are logged and
  /// retried with backoff; it returns only when stopped.
  virtual void follow(const std::function<void(const std::vector<SubnetLease>&)>& on_leases,
                      const std::atomic<bool>& stop) = 0;
};

/// The leases of one network in etcd, as Flannel's etcd subnet manager keeps them.
class EtcdSubnetManager final : public SubnetManager {
 public:
  static constexpr std::chrono::seconds kFlannelTtl{24 * 3600};
  EtcdSubnetManager(EtcdEndpoint endpoint, std::string prefix = "/coreos.com/network",
                    std::chrono::seconds ttl = kFlannelTtl);

  std::string name() const override { return "etcd"; }
  std::expected<NetworkConfig, Error> config() override;
  /// Every lease in the network and the revision they were read at: one range read, no
  /// per-lease TTL query (a listed lease's `expiration` is left unset; nothing here needs it).
  std::expected<std::pair<std::vector<SubnetLease>, std::int64_t>, Error> leases();
  /// Flannel's AcquireLease: this node's own lease if one has its PublicIP (taken back,
  /// renewed); else `previous` (from an old subnet.env) if still free; else a free subnet at
  /// random among the first 100 — claimed by a create-if-absent transaction, retried when
  /// another node won the race. "out of subnets" when none is left.
  std::expected<SubnetLease, Error> acquire(
      const NetworkConfig& config, const LeaseAttrs& attrs,
      const std::optional<Cidr>& previous = std::nullopt) override;
  bool expires() const override { return true; }
  /// Flannel's RenewLease: the key written again under a fresh etcd lease of the full TTL.
  /// An error leaves `lease` as it was (keep it, retry).
  std::expected<void, Error> renew(SubnetLease& lease) override;
  /// Whether `lease` still holds its key (false: it expired and may have been taken).
  std::expected<bool, Error> stillHeld(const SubnetLease& lease);
  /// Removes the lease (a node leaving).
  std::expected<void, Error> release(const SubnetLease& lease) override;

  /// Watches the leases from `revision` (as leases() returned it): `on_change(lease, removed)`.
  /// Returns the revision to resume at, or EtcdClient::kCompacted (list again).
  std::expected<std::int64_t, Error> watch(
      std::int64_t revision, const std::function<bool(const SubnetLease&, bool removed)>& on_change,
      const std::atomic<bool>& stop);
  /// leases(), then watch() from that revision, the set kept up to date event by event (a
  /// compaction or a lost connection lists again), on a connection of its own.
  void follow(const std::function<void(const std::vector<SubnetLease>&)>& on_leases,
              const std::atomic<bool>& stop) override;

  const std::string& prefix() const { return prefix_; }

 private:
  std::expected<SubnetLease, Error> write(const SubnetLease& lease, bool create);
  EtcdEndpoint endpoint_;
  std::string prefix_;
  std::chrono::seconds ttl_;
  EtcdClient etcd_;
};

/// Flannel's kube subnet manager (pkg/subnet/kube): the network config from net-conf.json
/// (the kube-flannel ConfigMap's file); this node's subnet is its `spec.podCIDR(s)`, which
/// must lie inside the network; its lease is the node's annotations
/// (`<prefix>/backend-type`, `backend-data`, `public-ip`, `kube-subnet-manager: "true"`,
/// written through the nodes/status subresource as Flannel does, honouring
/// `public-ip-overwrite`), and the other nodes' leases are read from theirs.
struct KubeSubnetOptions {
  std::string node;
  std::string net_conf = "/etc/kube-flannel/net-conf.json";
  std::string annotation_prefix = "flannel.alpha.coreos.com";
  /// Set the node's NetworkUnavailable condition to False once the lease is taken.
  bool set_network_unavailable = true;
};
struct KubeConfig;
class Metrics;
std::expected<std::unique_ptr<SubnetManager>, Error> kubeSubnetManager(const KubeConfig& kube,
                                                                       KubeSubnetOptions options,
                                                                       Metrics& metrics);
/// Flannel's annotation names for a prefix (newAnnotations): errors as Flannel's.
std::expected<std::string, Error> annotationPrefix(const std::string& prefix);

/// One node alone (the embedded default): the network config as given, this node's subnet
/// from configuration, no datastore, no other nodes.
std::unique_ptr<SubnetManager> staticSubnetManager(NetworkConfig config, Cidr subnet);

/// Writes Flannel's subnet.env (FLANNEL_NETWORK, FLANNEL_SUBNET as the subnet's first host
/// address, the IPv6 pair when enabled, FLANNEL_MTU, FLANNEL_IPMASQ) atomically: a temporary
/// file renamed over the old one.
std::expected<void, Error> writeSubnetEnv(const std::string& path, const NetworkConfig& config,
                                          const SubnetLease& lease, int mtu, bool ip_masq);
/// The subnets a subnet.env names (a restarted node's previous lease).
std::optional<Cidr> previousSubnet(const std::string& subnet_env_path);

}  // namespace zonewall::agent
