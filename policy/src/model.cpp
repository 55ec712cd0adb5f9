#include "zonewall/policy/model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

namespace zonewall::policy {

std::optional<Protocol> parseProtocol(std::string_view text) {
  std::string up(text);
  std::transform(up.begin(), up.end(), up.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (up == "TCP") return kTcp;
  if (up == "UDP") return kUdp;
  if (up == "SCTP") return kSctp;
  if (up == "ICMP") return kIcmp;
  if (up == "ICMPV6") return kIcmpV6;
  if (up == "UDPLITE") return kUdpLite;
  int n = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (!text.empty() && ec == std::errc() && ptr == text.data() + text.size() && n >= 0 &&
      n <= 255) {
    return static_cast<Protocol>(n);
  }
  return std::nullopt;
}

std::string protocolName(Protocol p) {
  switch (p) {
    case kTcp:
      return "TCP";
    case kUdp:
      return "UDP";
    case kSctp:
      return "SCTP";
    case kIcmp:
      return "ICMP";
    case kIcmpV6:
      return "ICMPv6";
    case kUdpLite:
      return "UDPLite";
    default:
      return fmt::format("{}", p);
  }
}

bool hasPorts(Protocol p) { return p == kTcp || p == kUdp || p == kSctp || p == kUdpLite; }
bool isIcmp(Protocol p) { return p == kIcmp || p == kIcmpV6; }

const char* actionName(Action a) {
  switch (a) {
    case Action::kAllow:
      return "Allow";
    case Action::kDeny:
      return "Deny";
    case Action::kPass:
      return "Pass";
    case Action::kLog:
      return "Log";
  }
  return "Allow";
}

std::string Pod::hostVeth() const { return hostVethName(ns, name); }

std::optional<std::uint16_t> Pod::namedPort(std::string_view port_name, Protocol protocol) const {
  for (const NamedPort& p : ports) {
    if (p.name == port_name && p.protocol == protocol) {
      return p.port;
    }
  }
  return std::nullopt;
}

const Namespace* Store::findNamespace(std::string_view name) const {
  for (const Namespace& n : namespaces) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

const Pod* Store::findPod(std::string_view ns, std::string_view name) const {
  for (const Pod& p : pods) {
    if (p.ns == ns && p.name == name) return &p;
  }
  return nullptr;
}

Labels Store::namespaceLabels(std::string_view name) const {
  if (const Namespace* n = findNamespace(name)) {
    return n->labels;
  }
  // A namespace that pods or policies name but no Namespace object describes: Kubernetes
  // would still give it its name label.
  Labels l;
  l.emplace(kNamespaceNameLabel, std::string(name));
  return l;
}

std::vector<TierInOrder> tiersInOrder(const Store& store) {
  constexpr double kLast = std::numeric_limits<double>::infinity();
  std::vector<TierInOrder> out;
  bool has_default = false;
  for (const Tier& t : store.tiers) {
    const bool is_default = t.name == kDefaultTier;
    has_default = has_default || is_default;
    out.push_back({t.order.value_or(is_default ? kDefaultTierOrder : kLast), t.name,
                   t.default_action, t.loc});
  }
  if (!has_default) {
    out.push_back({kDefaultTierOrder, kDefaultTier, Action::kDeny, {}});
  }
  // Calico creates these two whatever the datastore holds (validateStore checks that a
  // Tier object of either name says what Calico fixes).
  for (auto [name, order] : {std::pair{kKubeAdminTier, kKubeAdminTierOrder},
                             std::pair{kKubeBaselineTier, kKubeBaselineTierOrder}}) {
    if (std::none_of(store.tiers.begin(), store.tiers.end(),
                     [&](const Tier& t) { return t.name == name; })) {
      out.push_back({order, name, Action::kPass, {}});
    }
  }
  std::sort(out.begin(), out.end(), [](const TierInOrder& a, const TierInOrder& b) {
    return std::tie(a.order, a.name) < std::tie(b.order, b.name);
  });
  return out;
}

PolicyOrder policyOrder(const CalicoPolicy& p) {
  return {p.order.value_or(std::numeric_limits<double>::infinity()),
          p.name.starts_with(p.tier + ".") ? p.name : p.tier + "." + p.name, p.ns};
}

PolicyOrder policyOrder(const K8sPolicy& p) {
  return {kK8sPolicyOrder, "knp.default." + p.name, p.ns};
}

PolicyOrder policyOrder(const AdminPolicy& p) {
  const char* prefix = p.kind == AdminKind::kAdmin      ? "kanp."
                       : p.kind == AdminKind::kBaseline ? "kbanp."
                                                        : "kcnp.";
  double order = p.priority ? *p.priority : std::numeric_limits<double>::infinity();
  return {order, fmt::format("{}{}.{}", prefix, p.tier(), p.name), ""};
}

const char* adminKindName(AdminKind k) {
  switch (k) {
    case AdminKind::kAdmin:
      return "AdminNetworkPolicy";
    case AdminKind::kBaseline:
      return "BaselineAdminNetworkPolicy";
    case AdminKind::kCluster:
      return "ClusterNetworkPolicy";
  }
  return "?";
}

std::string AdminPolicy::display() const { return fmt::format("{} {}", adminKindName(kind), name); }

namespace {
bool sameKind(const K8sPolicy&, const K8sPolicy&) { return true; }
bool sameKind(const CalicoPolicy& a, const CalicoPolicy& b) { return a.global == b.global; }
}  // namespace

const char* stagedActionName(StagedAction a) {
  switch (a) {
    case StagedAction::kSet:
      return "Set";
    case StagedAction::kDelete:
      return "Delete";
    case StagedAction::kLearn:
      return "Learn";
    case StagedAction::kIgnore:
      return "Ignore";
  }
  return "?";
}

const char* StagedPolicy::kind() const {
  if (const auto* c = std::get_if<CalicoPolicy>(&policy)) {
    return c->global ? "StagedGlobalNetworkPolicy" : "StagedNetworkPolicy";
  }
  return "StagedKubernetesNetworkPolicy";
}

std::string StagedPolicy::target() const {
  if (const auto* c = std::get_if<CalicoPolicy>(&policy)) {
    return (c->global ? "GlobalNetworkPolicy " : "Calico NetworkPolicy ") + c->key();
  }
  return "NetworkPolicy " + std::get<K8sPolicy>(policy).key();
}

Store promoteStaged(const Store& store) {
  Store out = store;
  out.staged.clear();
  auto apply = [&](auto& list, const auto& policy, StagedAction action) {
    auto same = [&](const auto& p) { return p.key() == policy.key() && sameKind(p, policy); };
    auto it = std::find_if(list.begin(), list.end(), same);
    if (action == StagedAction::kDelete) {
      if (it != list.end()) list.erase(it);
    } else if (it != list.end()) {
      *it = policy;
    } else {
      list.push_back(policy);
    }
  };
  for (const StagedPolicy& s : store.staged) {
    if (s.action == StagedAction::kLearn || s.action == StagedAction::kIgnore) continue;
    if (const auto* c = std::get_if<CalicoPolicy>(&s.policy)) {
      apply(out.calico_policies, *c, s.action);
    } else {
      apply(out.k8s_policies, std::get<K8sPolicy>(s.policy), s.action);
    }
  }
  return out;
}

}  // namespace zonewall::policy

namespace zonewall::policy {

const char* statementKindName(ContractStatement::Kind k) {
  switch (k) {
    case ContractStatement::Kind::kDeny:
      return "deny";
    case ContractStatement::Kind::kAllowOnly:
      return "allowOnly";
    case ContractStatement::Kind::kRequire:
      return "require";
  }
  return "?";
}

const Zone* ZoneContract::zone(std::string_view zone_name) const {
  for (const Zone& z : zones) {
    if (z.name == zone_name) return &z;
  }
  return nullptr;
}

}  // namespace zonewall::policy
