// The typed policy model: what the loader produces from YAML, with source locations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/base/host_veth.h"
#include "zonewall/base/ip.h"
#include "zonewall/policy/selector.h"

namespace zonewall::policy {

/// IP protocol numbers (IANA).
using Protocol = std::uint8_t;
inline constexpr Protocol kIcmp = 1;
inline constexpr Protocol kTcp = 6;
inline constexpr Protocol kUdp = 17;
inline constexpr Protocol kIcmpV6 = 58;
inline constexpr Protocol kSctp = 132;
inline constexpr Protocol kUdpLite = 136;

/// "TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "UDPLite", or a number 0..255 (Calico also
/// accepts lower case).
std::optional<Protocol> parseProtocol(std::string_view text);
std::string protocolName(Protocol p);
/// Protocols whose "port" dimension is the L4 destination port.
bool hasPorts(Protocol p);
/// ICMP and ICMPv6: the "port" dimension is type << 8 | code.
bool isIcmp(Protocol p);

/// Label key added to every namespace, as Kubernetes does.
inline constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";
/// Labels Calico adds to endpoints and namespaces for its selectors.
inline constexpr const char* kCalicoNamespaceLabel = "projectcalico.org/namespace";
inline constexpr const char* kCalicoOrchestratorLabel = "projectcalico.org/orchestrator";
inline constexpr const char* kCalicoNameLabel = "projectcalico.org/name";

struct Namespace {
  std::string name;
  Labels labels;  ///< includes kubernetes.io/metadata.name
  SourceLoc loc;
};

struct NamedPort {
  std::string name;
  Protocol protocol = kTcp;
  std::uint16_t port = 0;
};

struct Pod {
  std::string ns;
  std::string name;
  Labels labels;
  std::string node;  ///< spec.nodeName; empty when unscheduled
  std::vector<Addr> ips;
  std::vector<NamedPort> ports;
  SourceLoc loc;

  std::string key() const { return ns + "/" + name; }
  /// The name of the pod's host-side veth: "zw" + 11 hex digits of a hash of "ns/name"
  /// (13 characters, under IFNAMSIZ). The CNI plugin names the interface so, and the
  /// dataplane's anti-spoofing set expects it.
  std::string hostVeth() const;
  /// The named port `name` for `protocol`, if the pod declares it.
  std::optional<std::uint16_t> namedPort(std::string_view name, Protocol protocol) const;
};

// ---- Kubernetes networking.k8s.io/v1 NetworkPolicy ----

struct K8sPort {
  Protocol protocol = kTcp;
  std::optional<std::uint16_t> port;  ///< numeric port; empty = all ports (or named)
  std::string name;                   ///< named port, when not numeric
  std::optional<std::uint16_t> end_port;
  SourceLoc loc;
};

struct K8sIpBlock {
  Cidr cidr;
  std::vector<Cidr> except;
};

struct K8sPeer {
  std::optional<Selector> pod_selector;
  std::optional<Selector> namespace_selector;
  std::optional<K8sIpBlock> ip_block;
  SourceLoc loc;
};

struct K8sRule {
  std::vector<K8sPeer> peers;  ///< empty = every peer
  std::vector<K8sPort> ports;  ///< empty = every port and protocol
  SourceLoc loc;
};

struct K8sPolicy {
  std::string ns;
  std::string name;
  Selector pod_selector;
  bool ingress = false;  ///< policyTypes, after defaulting
  bool egress = false;
  std::vector<K8sRule> ingress_rules;
  std::vector<K8sRule> egress_rules;
  SourceLoc loc;

  std::string key() const { return ns + "/" + name; }
};

// ---- Calico projectcalico.org/v3 ----

enum class Action : std::uint8_t { kAllow, kDeny, kPass, kLog };
const char* actionName(Action a);

struct PortSpec {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  std::string name;  ///< named port (lo/hi unused)
};

struct EntityRule {
  std::optional<Selector> selector;
  std::optional<Selector> not_selector;
  std::optional<Selector> namespace_selector;
  std::vector<Cidr> nets;
  std::vector<Cidr> not_nets;
  std::vector<PortSpec> ports;
  std::vector<PortSpec> not_ports;
  SourceLoc loc;

  bool empty() const {
    return !selector && !not_selector && !namespace_selector && nets.empty() && not_nets.empty() &&
           ports.empty() && not_ports.empty();
  }
};

struct IcmpMatch {
  std::uint8_t type = 0;
  std::optional<std::uint8_t> code;
};

struct CalicoRule {
  Action action = Action::kAllow;
  std::optional<Protocol> protocol;
  std::optional<Protocol> not_protocol;
  std::optional<IcmpMatch> icmp;
  std::optional<IcmpMatch> not_icmp;
  std::optional<Family> ip_version;
  EntityRule source;
  EntityRule destination;
  SourceLoc loc;
};

inline constexpr const char* kDefaultTier = "default";
/// Kubernetes NetworkPolicies sit in the default tier at this order, as in Calico.
inline constexpr double kK8sPolicyOrder = 1000.0;
/// Calico's default tier order.
inline constexpr double kDefaultTierOrder = 1000000.0;

struct CalicoPolicy {
  bool global = false;  ///< GlobalNetworkPolicy
  std::string ns;       ///< empty for global
  std::string name;
  std::string tier = kDefaultTier;
  std::optional<double> order;  ///< empty = last
  Selector selector;
  std::optional<Selector> namespace_selector;  ///< GlobalNetworkPolicy only
  bool ingress = false;                        ///< types, after defaulting
  bool egress = false;
  std::vector<CalicoRule> ingress_rules;
  std::vector<CalicoRule> egress_rules;
  SourceLoc loc;

  std::string key() const { return global ? name : ns + "/" + name; }
};

struct NetworkSet {
  bool global = false;
  std::string ns;
  std::string name;
  Labels labels;
  std::vector<Cidr> nets;
  SourceLoc loc;
};

struct Tier {
  std::string name;
  std::optional<double> order;            ///< empty = after every ordered tier
  Action default_action = Action::kDeny;  ///< Deny or Pass
  SourceLoc loc;
};

/// Calico's stagedAction: what promoting a staged policy does to its enforced namesake.
enum class StagedAction : std::uint8_t {
  kSet,     ///< create it, or replace it
  kDelete,  ///< delete it
  kLearn,   ///< a policy recommendation's state: promotion changes nothing
  kIgnore,  ///< likewise
};
const char* stagedActionName(StagedAction a);

/// A StagedNetworkPolicy, StagedGlobalNetworkPolicy or StagedKubernetesNetworkPolicy: read
/// and checked like the policy it would become, never enforced. promoteStaged() shows what
/// promoting it would do.
struct StagedPolicy {
  StagedAction action = StagedAction::kSet;
  std::variant<K8sPolicy, CalicoPolicy> policy;  ///< its enforced namesake, as it would be
  SourceLoc loc;

  const char* kind() const;  ///< "StagedNetworkPolicy", ...
  /// The enforced policy's kind and key, e.g. "GlobalNetworkPolicy deny-all".
  std::string target() const;
};

// ---- Kubernetes v1 Node (the inventory of `nodes` peers) ----

struct Node {
  std::string name;
  Labels labels;
  std::vector<Addr> addrs;  ///< status.addresses of type InternalIP and ExternalIP
  SourceLoc loc;
};

// ---- network-policy-api: AdminNetworkPolicy and BaselineAdminNetworkPolicy
// (policy.networking.k8s.io/v1alpha1), ClusterNetworkPolicy (v1alpha2) ----

/// The Calico tiers cluster-admin policies live in (Calico's names, orders and default
/// actions, fixed by its API): every Admin-tier policy ahead of every Calico tier of a higher
/// order and of the default tier; every Baseline-tier policy after them.
inline constexpr const char* kKubeAdminTier = "kube-admin";
inline constexpr const char* kKubeBaselineTier = "kube-baseline";
inline constexpr double kKubeAdminTierOrder = 1000.0;
inline constexpr double kKubeBaselineTierOrder = 10000000.0;
/// The tiers Calico creates itself: they exist without a Tier object.
inline constexpr const char* kBuiltinTiers[] = {kDefaultTier, kKubeAdminTier, kKubeBaselineTier};

enum class AdminKind : std::uint8_t {
  kAdmin,     ///< AdminNetworkPolicy (v1alpha1)
  kBaseline,  ///< BaselineAdminNetworkPolicy (v1alpha1): no priority, Allow/Deny only
  kCluster,   ///< ClusterNetworkPolicy (v1alpha2): spec.tier Admin or Baseline
};
const char* adminKindName(AdminKind k);

/// A subject or a peer: pods (namespaceSelector + podSelector; `namespaces:` is the same
/// with every pod), node addresses, or CIDRs.
struct AdminPeer {
  enum class Kind : std::uint8_t { kPods, kNodes, kNetworks };
  Kind kind = Kind::kPods;
  Selector namespaces = Selector::all();  ///< kPods
  Selector pods = Selector::all();        ///< kPods
  Selector nodes = Selector::all();       ///< kNodes
  std::vector<Cidr> networks;             ///< kNetworks
  SourceLoc loc;
};

/// One entry of `ports` (v1alpha1) or `protocols` (v1alpha2).
struct AdminPort {
  Protocol protocol = kTcp;
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  std::string name;  ///< a named port: any protocol the destination pod gives it (lo/hi unused)
  SourceLoc loc;
};

struct AdminRule {
  std::string name;
  Action action = Action::kAllow;  ///< Allow (v1alpha2: Accept), Deny, Pass
  std::vector<AdminPeer> peers;    ///< never empty
  std::vector<AdminPort> ports;    ///< empty = every protocol and port
  SourceLoc loc;
};

struct AdminPolicy {
  AdminKind kind = AdminKind::kAdmin;
  std::string name;
  bool baseline = false;        ///< in the Baseline tier (a BANP, or a CNP with tier Baseline)
  std::optional<int> priority;  ///< 0..1000; a BANP has none (after every Baseline CNP)
  AdminPeer subject;            ///< kPods
  std::vector<AdminRule> ingress_rules;
  std::vector<AdminRule> egress_rules;
  SourceLoc loc;

  const char* tier() const { return baseline ? kKubeBaselineTier : kKubeAdminTier; }
  /// "AdminNetworkPolicy name", "ClusterNetworkPolicy name", ...
  std::string display() const;
};

/// Everything loaded: the inventory and the policies.
// ---- zonewall.io/v1alpha1 ZoneContract ----
// What the security team promised: zones named by Calico-grammar selectors over namespace
// and pod labels, and statements about the flows between them (README "Zone contracts").

struct Zone {
  std::string name;
  Selector namespace_selector;  ///< over the namespace's labels; absent: every namespace
  Selector selector;            ///< over the pod's labels; absent: every pod
  bool exposed = false;         ///< reachable from outside the cluster (paths' default --from)
  SourceLoc loc;
};

/// Protocol and destination ports: "TCP/5432", "TCP/8000-8100", "UDP" (every port).
struct ContractPort {
  Protocol protocol = kTcp;
  std::uint16_t lo = 0;
  std::uint16_t hi = 65535;
  SourceLoc loc;
};

struct ContractStatement {
  enum class Kind : std::uint8_t {
    kDeny,       ///< no flow from `from` to `to`, on any protocol or port
    kAllowOnly,  ///< flows from `from` to `to` only on `ports`
    kRequire,    ///< every flow from `from` to `to` on `ports` stays open
  };
  Kind kind = Kind::kDeny;
  std::string from;  ///< a zone's name, or "*" for every pod
  std::string to;
  std::vector<ContractPort> ports;
  std::string description;
  SourceLoc loc;
  SourceLoc from_loc;
  SourceLoc to_loc;
};
const char* statementKindName(ContractStatement::Kind k);

struct ZoneContract {
  std::string name;
  std::vector<Zone> zones;
  std::vector<ContractStatement> statements;
  SourceLoc loc;
  const Zone* zone(std::string_view zone_name) const;
};

struct Store {
  std::vector<Namespace> namespaces;
  std::vector<Pod> pods;
  std::vector<K8sPolicy> k8s_policies;
  std::vector<CalicoPolicy> calico_policies;
  std::vector<NetworkSet> network_sets;
  std::vector<Tier> tiers;
  std::vector<AdminPolicy> admin_policies;
  std::vector<Node> nodes;
  std::vector<StagedPolicy> staged;     ///< never enforced: see promoteStaged()
  std::vector<ZoneContract> contracts;  ///< never enforced: what `zonewall check` checks

  const Namespace* findNamespace(std::string_view name) const;
  const Pod* findPod(std::string_view ns, std::string_view name) const;
  /// The labels of a namespace, as Kubernetes shows them (metadata.name always present).
  Labels namespaceLabels(std::string_view name) const;
  /// Whether the input carries an inventory (pods or namespaces) that selectors can be
  /// checked against.
  bool hasInventory() const { return !pods.empty() || !namespaces.empty(); }
};

/// The store as it would be if every staged policy were promoted (Calico: the staged spec
/// replaces the enforced policy of the same kind, namespace and name, or creates it; Delete
/// removes it; Learn and Ignore change nothing). The result holds no staged policies.
Store promoteStaged(const Store& store);

// Calico's evaluation order, written once (the reference evaluator keeps an independent copy
// on purpose): tiers by order — a tier without one after every ordered tier, the default
// tier at kDefaultTierOrder unless it says otherwise, kube-admin and kube-baseline at their
// fixed orders — ties by name; in a tier, policies by order (none: last), ties by Calico's
// internal name ("tier.name"; a Kubernetes policy is "knp.default.name" at kK8sPolicyOrder;
// an admin policy's order is its priority, its name "kanp.kube-admin.name",
// "kbanp.kube-baseline.name" or "kcnp.<tier>.name"), then by namespace.

/// A tier as it is evaluated.
struct TierInOrder {
  double order = 0;
  std::string name;
  Action default_action = Action::kDeny;
  SourceLoc loc;  ///< unknown for the default tier when the store does not define it
};
/// The store's tiers, and the default tier when the store does not define it, in order.
std::vector<TierInOrder> tiersInOrder(const Store& store);

/// Where a policy sits in its tier: compare with operator<.
struct PolicyOrder {
  double order = 0;
  std::string name;  ///< Calico's internal name, the tie-breaker
  std::string ns;
  friend bool operator<(const PolicyOrder& a, const PolicyOrder& b) {
    return std::tie(a.order, a.name, a.ns) < std::tie(b.order, b.name, b.ns);
  }
};
PolicyOrder policyOrder(const CalicoPolicy& p);
PolicyOrder policyOrder(const K8sPolicy& p);
PolicyOrder policyOrder(const AdminPolicy& p);

}  // namespace zonewall::policy
