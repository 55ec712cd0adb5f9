// Cluster-admin policy from the network-policy-api: AdminNetworkPolicy and
// BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1, tag v0.1.7) and
// ClusterNetworkPolicy (v1alpha2). Every validation the upstream CRDs make (kubebuilder
// markers and CEL rules in apis/v1alpha*/) is made here, so that what loads is what an API
// server would have stored; `domainNames` is refused: an L3/L4 table cannot enforce it.
#include "reader.h"

namespace zonewall::policy {
namespace {

enum class Version : std::uint8_t { kV1Alpha1, kV1Alpha2 };

constexpr long long kMaxPriority = 1000;
constexpr size_t kMaxRuleName = 100;

struct Limits {
  size_t rules;  ///< per direction
  size_t peers;  ///< per rule
  size_t ports;  ///< per rule
};
// v1alpha1: MaxItems=100 (rules, from/to, ports); v1alpha2: MaxItems=25.
constexpr Limits kLimitsV1Alpha1{100, 100, 100};
constexpr Limits kLimitsV1Alpha2{25, 25, 25};
constexpr size_t kMaxNetworks = 25;

class AdminReader {
 public:
  AdminReader(Reader& r, AdminKind kind, Version v)
      : r_(r),
        kind_(kind),
        v_(v),
        limits_(v == Version::kV1Alpha1 ? kLimitsV1Alpha1 : kLimitsV1Alpha2) {}

  void read(const YAML::Node& doc, Store& store) {
    const char* kind_name = adminKindName(kind_);
    Meta m = readMeta(r_, doc, false, kind_name);
    YAML::Node spec = doc["spec"];
    if (!spec || !spec.IsMap()) {
      r_.error(spec ? spec : doc, fmt::format("{} needs a spec", kind_name), "missing-field");
      return;
    }
    if (m.name.empty()) return;
    const size_t mark = r_.errorCount();
    AdminPolicy pol;
    pol.kind = kind_;
    pol.name = m.name;
    pol.loc = r_.loc(doc);
    switch (kind_) {
      case AdminKind::kAdmin:
        r_.checkKeys(spec, {"priority", "subject", "ingress", "egress"}, "AdminNetworkPolicy spec");
        break;
      case AdminKind::kBaseline:
        r_.checkKeys(spec, {"subject", "ingress", "egress"}, "BaselineAdminNetworkPolicy spec");
        pol.baseline = true;
        break;
      case AdminKind::kCluster:
        r_.checkKeys(spec, {"tier", "priority", "subject", "ingress", "egress"},
                     "ClusterNetworkPolicy spec");
        readTier(spec, pol);
        break;
    }
    if (kind_ != AdminKind::kBaseline) {
      if (YAML::Node p = spec["priority"]) {
        if (auto v = r_.integer(p, "spec.priority", 0, kMaxPriority)) {
          pol.priority = static_cast<int>(*v);
        }
      } else {
        r_.error(spec, "spec.priority is required (0..1000, lower first)", "missing-field");
      }
    }
    if (YAML::Node subj = spec["subject"]; subj && !subj.IsNull()) {
      if (auto s = readSubject(subj)) pol.subject = *s;
    } else {
      r_.error(r_.locIn(spec, "subject"),
               "spec.subject is required (namespaces or pods; {} selects every namespace)",
               "missing-field");
    }
    pol.ingress_rules = readRules(spec["ingress"], true, "spec.ingress");
    pol.egress_rules = readRules(spec["egress"], false, "spec.egress");
    keepUnlessErrors(r_, mark, store.admin_policies, std::move(pol));
  }

 private:
  void readTier(const YAML::Node& spec, AdminPolicy& pol) {
    YAML::Node t = spec["tier"];
    if (!t) {
      r_.error(spec, "spec.tier is required (Admin or Baseline)", "missing-field");
      return;
    }
    auto s = r_.str(t, "spec.tier");
    if (s && *s == "Baseline") {
      pol.baseline = true;
    } else if (s && *s != "Admin") {
      r_.error(t, fmt::format("spec.tier must be Admin or Baseline, not '{}'", *s),
               "invalid-field");
    }
  }

  // Exactly one of `namespaces` and `pods` (MinProperties = MaxProperties = 1).
  std::optional<AdminPeer> readSubject(const YAML::Node& n) {
    if (!r_.isMap(n, "spec.subject")) return std::nullopt;
    r_.checkKeys(n, {"namespaces", "pods"}, "spec.subject");
    AdminPeer subject;
    subject.loc = r_.loc(n);
    if (!exactlyOne(n, {"namespaces", "pods"}, "spec.subject")) return std::nullopt;
    if (!readPodPeer(n, subject)) return std::nullopt;
    return subject;
  }

  bool exactlyOne(const YAML::Node& n, std::initializer_list<const char*> keys,
                  const std::string& what) {
    std::string list;
    int set = 0;
    for (const char* k : keys) {
      list += (list.empty() ? "" : ", ") + std::string(k);
      if (n[k]) ++set;
    }
    if (set == 1) return true;
    r_.error(n, fmt::format("{} needs exactly one of {} ({} set)", what, list, set),
             set == 0 ? "missing-field" : "invalid-peer");
    return false;
  }

  // `namespaces: <LabelSelector>` or `pods: {namespaceSelector, podSelector}`.
  bool readPodPeer(const YAML::Node& n, AdminPeer& peer) {
    peer.kind = AdminPeer::Kind::kPods;
    if (YAML::Node ns = n["namespaces"]) {
      auto sel = r_.labelSelector(ns, "namespaces");
      if (!sel) return false;
      peer.namespaces = *sel;
      return true;
    }
    YAML::Node pods = n["pods"];
    if (!pods || !r_.isMap(pods, "pods")) return false;
    r_.checkKeys(pods, {"namespaceSelector", "podSelector"}, "pods");
    // v1alpha1 requires both; v1alpha2 lets namespaceSelector default to {}.
    for (const char* key : {"namespaceSelector", "podSelector"}) {
      YAML::Node s = pods[key];
      if (!s) {
        if (v_ == Version::kV1Alpha2 && std::string_view(key) == "namespaceSelector") continue;
        r_.error(pods, fmt::format("pods.{} is required ({{}} selects all)", key), "missing-field");
        return false;
      }
      auto sel = r_.labelSelector(s, fmt::format("pods.{}", key));
      if (!sel) return false;
      (std::string_view(key) == "podSelector" ? peer.pods : peer.namespaces) = *sel;
    }
    return true;
  }

  std::optional<AdminPeer> readPeer(const YAML::Node& n, bool ingress) {
    if (!r_.isMap(n, ingress ? "from entry" : "to entry")) return std::nullopt;
    AdminPeer peer;
    peer.loc = r_.loc(n);
    if (ingress) {
      r_.checkKeys(n, {"namespaces", "pods"}, "ingress peer");
      if (!exactlyOne(n, {"namespaces", "pods"}, "an ingress peer")) return std::nullopt;
      if (!readPodPeer(n, peer)) return std::nullopt;
      return peer;
    }
    if (YAML::Node d = n["domainNames"]) {
      r_.error(d,
               "domainNames cannot be enforced by zonewall's L3/L4 table (DNS names are "
               "resolved at run time); use networks with the addresses, or leave this rule out",
               "unsupported-field");
      return std::nullopt;
    }
    r_.checkKeys(n, {"namespaces", "pods", "nodes", "networks"}, "egress peer");
    if (!exactlyOne(n, {"namespaces", "pods", "nodes", "networks"}, "an egress peer")) {
      return std::nullopt;
    }
    if (YAML::Node nodes = n["nodes"]) {
      auto sel = r_.labelSelector(nodes, "nodes");
      if (!sel) return std::nullopt;
      peer.kind = AdminPeer::Kind::kNodes;
      peer.nodes = *sel;
      return peer;
    }
    if (YAML::Node nets = n["networks"]) {
      peer.kind = AdminPeer::Kind::kNetworks;
      if (!r_.isSeq(nets, "networks") || nets.size() == 0) {
        if (nets.IsNull() || nets.IsSequence()) {
          r_.error(nets, "networks needs at least one CIDR", "invalid-peer");
        }
        return std::nullopt;
      }
      if (nets.size() > kMaxNetworks) {
        r_.error(nets,
                 fmt::format("networks has {} CIDRs; the API allows {}", nets.size(), kMaxNetworks),
                 "out-of-range");
        return std::nullopt;
      }
      for (const YAML::Node& c : nets) {
        auto cidr = r_.cidr(c, "networks");
        if (!cidr) return std::nullopt;
        peer.networks.push_back(*cidr);
      }
      return peer;
    }
    if (!readPodPeer(n, peer)) return std::nullopt;
    return peer;
  }

  std::optional<Protocol> tcpUdpSctp(const YAML::Node& n) {
    if (!n || n.IsNull()) return kTcp;  // +kubebuilder:default=TCP
    auto s = r_.str(n, "protocol");
    if (!s) return std::nullopt;
    if (*s == "TCP") return kTcp;
    if (*s == "UDP") return kUdp;
    if (*s == "SCTP") return kSctp;
    r_.error(n, fmt::format("protocol must be TCP, UDP or SCTP, not '{}'", *s), "invalid-protocol");
    return std::nullopt;
  }

  std::optional<std::uint16_t> portNumber(const YAML::Node& n, const char* what) {
    if (!n) return std::nullopt;
    auto v = r_.integer(n, what, 1, 65535);
    if (!v) return std::nullopt;
    return static_cast<std::uint16_t>(*v);
  }

  // {start, end} with start < end (the CRD's CEL rule).
  bool readRange(const YAML::Node& n, const char* what, AdminPort& out) {
    if (!r_.isMap(n, what)) return false;
    r_.checkKeys(n, {"protocol", "start", "end"}, what);
    for (const char* key : {"start", "end"}) {
      if (!n[key]) {
        r_.error(n, fmt::format("{} needs {}", what, key), "missing-field");
        return false;
      }
    }
    auto lo = portNumber(n["start"], "start");
    auto hi = portNumber(n["end"], "end");
    if (!lo || !hi) return false;
    if (*lo >= *hi) {
      r_.error(n, fmt::format("{}: start ({}) must be less than end ({})", what, *lo, *hi),
               "invalid-port");
      return false;
    }
    out.lo = *lo;
    out.hi = *hi;
    return true;
  }

  bool namedPort(const YAML::Node& n, AdminPort& out) {
    auto s = r_.str(n, "named port");
    if (!s) return false;
    if (!validPortName(*s)) {
      r_.error(n, fmt::format("invalid port name '{}' (IANA service name)", *s), "invalid-port");
      return false;
    }
    out.name = *s;
    return true;
  }

  // v1alpha1 `ports` entry: exactly one of portNumber, namedPort, portRange.
  std::optional<AdminPort> readPortV1Alpha1(const YAML::Node& n) {
    if (!r_.isMap(n, "ports entry")) return std::nullopt;
    r_.checkKeys(n, {"portNumber", "namedPort", "portRange"}, "ports entry");
    if (!exactlyOne(n, {"portNumber", "namedPort", "portRange"}, "a ports entry")) {
      return std::nullopt;
    }
    AdminPort out;
    out.loc = r_.loc(n);
    if (YAML::Node pn = n["portNumber"]) {
      if (!r_.isMap(pn, "portNumber")) return std::nullopt;
      r_.checkKeys(pn, {"protocol", "port"}, "portNumber");
      auto proto = tcpUdpSctp(pn["protocol"]);
      if (!pn["port"]) {
        r_.error(pn, "portNumber needs port", "missing-field");
        return std::nullopt;
      }
      auto port = portNumber(pn["port"], "port");
      if (!proto || !port) return std::nullopt;
      out.protocol = *proto;
      out.lo = out.hi = *port;
      return out;
    }
    if (YAML::Node nm = n["namedPort"]) {
      if (!namedPort(nm, out)) return std::nullopt;
      return out;
    }
    YAML::Node pr = n["portRange"];
    auto proto = pr.IsMap() ? tcpUdpSctp(pr["protocol"]) : std::optional<Protocol>(kTcp);
    if (!proto || !readRange(pr, "portRange", out)) return std::nullopt;
    out.protocol = *proto;
    return out;
  }

  // v1alpha2 `protocols` entry: exactly one of tcp, udp, sctp (each {destinationPort:
  // {number | range}}), destinationNamedPort.
  std::optional<AdminPort> readProtocolV1Alpha2(const YAML::Node& n) {
    if (!r_.isMap(n, "protocols entry")) return std::nullopt;
    r_.checkKeys(n, {"tcp", "udp", "sctp", "destinationNamedPort"}, "protocols entry");
    if (!exactlyOne(n, {"tcp", "udp", "sctp", "destinationNamedPort"}, "a protocols entry")) {
      return std::nullopt;
    }
    AdminPort out;
    out.loc = r_.loc(n);
    if (YAML::Node nm = n["destinationNamedPort"]) {
      if (!namedPort(nm, out)) return std::nullopt;
      return out;
    }
    const char* key = n["tcp"] ? "tcp" : n["udp"] ? "udp" : "sctp";
    out.protocol = n["tcp"] ? kTcp : n["udp"] ? kUdp : kSctp;
    YAML::Node l4 = n[key];
    if (!r_.isMap(l4, key)) return std::nullopt;
    r_.checkKeys(l4, {"destinationPort"}, key);
    YAML::Node dp = l4["destinationPort"];
    if (!dp) {  // MinProperties=1
      r_.error(l4, fmt::format("{} needs destinationPort", key), "missing-field");
      return std::nullopt;
    }
    if (!r_.isMap(dp, "destinationPort")) return std::nullopt;
    r_.checkKeys(dp, {"number", "range"}, "destinationPort");
    if (!exactlyOne(dp, {"number", "range"}, "destinationPort")) return std::nullopt;
    if (YAML::Node num = dp["number"]) {
      auto port = portNumber(num, "number");
      if (!port) return std::nullopt;
      out.lo = out.hi = *port;
      return out;
    }
    if (!readRange(dp["range"], "range", out)) return std::nullopt;
    return out;
  }

  std::optional<Action> readAction(const YAML::Node& rule) {
    YAML::Node a = rule["action"];
    if (!a) {
      r_.error(rule, "rule needs an action", "missing-field");
      return std::nullopt;
    }
    auto s = r_.str(a, "action");
    if (!s) return std::nullopt;
    const char* allow = v_ == Version::kV1Alpha2 ? "Accept" : "Allow";
    if (*s == allow) return Action::kAllow;
    if (*s == "Deny") return Action::kDeny;
    if (*s == "Pass" && kind_ != AdminKind::kBaseline) return Action::kPass;
    r_.error(a,
             fmt::format("action must be {}, not '{}'",
                         kind_ == AdminKind::kBaseline ? "Allow or Deny"
                                                       : fmt::format("{}, Deny or Pass", allow),
                         *s),
             "invalid-action");
    return std::nullopt;
  }

  // A list the CRD bounds: at least one item (MinItems=1), at most `limit` (MaxItems; reported,
  // and the items read all the same so that their own errors show too). False: nothing to read.
  bool nonEmptyList(const YAML::Node& n, const char* key, size_t limit, const char* items,
                    const char* empty_id) {
    if (n.IsNull() || (n.IsSequence() && n.size() == 0)) {
      r_.error(n, fmt::format("'{}' needs at least one entry", key), empty_id);
      return false;
    }
    if (!r_.isSeq(n, key)) return false;
    if (n.size() > limit) {
      r_.error(n, fmt::format("'{}' has {} {}; the API allows {}", key, n.size(), items, limit),
               "out-of-range");
    }
    return true;
  }

  std::vector<AdminRule> readRules(const YAML::Node& rules, bool ingress, const std::string& what) {
    std::vector<AdminRule> out;
    if (!rules || !r_.isSeq(rules, what)) return out;
    if (rules.size() > limits_.rules) {
      r_.error(rules,
               fmt::format("{} has {} rules; the API allows {}", what, rules.size(), limits_.rules),
               "out-of-range");
      return out;
    }
    const char* peers_key = ingress ? "from" : "to";
    const char* ports_key = v_ == Version::kV1Alpha2 ? "protocols" : "ports";
    for (const YAML::Node& rule : rules) {
      if (!r_.isMap(rule, what + " rule")) continue;
      r_.checkKeys(rule, {"name", "action", peers_key, ports_key}, what + " rule");
      AdminRule ar;
      ar.loc = r_.loc(rule);
      const size_t mark = r_.errorCount();
      if (YAML::Node nm = rule["name"]) {
        if (auto s = r_.str(nm, "rule name")) {
          ar.name = *s;
          if (ar.name.size() > kMaxRuleName) {
            r_.error(nm,
                     fmt::format("rule name is {} characters; the API allows {}", ar.name.size(),
                                 kMaxRuleName),
                     "out-of-range");
          }
        }
      }
      if (auto a = readAction(rule)) ar.action = *a;
      YAML::Node peers = rule[peers_key];
      if (!peers) {
        r_.error(rule, fmt::format("rule needs '{}' with at least one peer", peers_key),
                 "missing-field");
      } else if (nonEmptyList(peers, peers_key, limits_.peers, "peers", "missing-field")) {
        for (const YAML::Node& p : peers) {
          if (auto peer = readPeer(p, ingress)) ar.peers.push_back(std::move(*peer));
        }
      }
      if (YAML::Node ports = rule[ports_key];
          ports && nonEmptyList(ports, ports_key, limits_.ports, "entries", "invalid-port")) {
        for (const YAML::Node& p : ports) {
          auto port = v_ == Version::kV1Alpha2 ? readProtocolV1Alpha2(p) : readPortV1Alpha1(p);
          if (port) ar.ports.push_back(std::move(*port));
        }
      }
      // The CRDs' CEL rule: a named port resolves on a pod, never on nodes or networks.
      const bool addressed = std::any_of(ar.peers.begin(), ar.peers.end(), [](const AdminPeer& p) {
        return p.kind != AdminPeer::Kind::kPods;
      });
      const auto named = std::find_if(ar.ports.begin(), ar.ports.end(),
                                      [](const AdminPort& p) { return !p.name.empty(); });
      if (addressed && named != ar.ports.end()) {
        r_.error(named->loc,
                 "networks/nodes peer cannot be set with namedPorts since there are no "
                 "namedPorts for networks/nodes",
                 "invalid-rule");
      }
      if (r_.errorCount() == mark) out.push_back(std::move(ar));
    }
    return out;
  }

  Reader& r_;
  AdminKind kind_;
  Version v_;
  Limits limits_;
};

}  // namespace

void readAdminPolicy(Reader& r, const YAML::Node& doc, Store& store, AdminKind kind) {
  AdminReader(r, kind, kind == AdminKind::kCluster ? Version::kV1Alpha2 : Version::kV1Alpha1)
      .read(doc, store);
}

void readNode(Reader& r, const YAML::Node& doc, Store& store) {
  Meta m = readMeta(r, doc, false, "Node");
  if (m.name.empty()) return;
  Node node{m.name, m.labels, {}, r.loc(doc)};
  const size_t mark = r.errorCount();
  YAML::Node status = doc["status"];
  if (status && status.IsMap()) {
    if (YAML::Node addrs = status["addresses"]; addrs && r.isSeq(addrs, "status.addresses")) {
      for (const YAML::Node& a : addrs) {
        if (!r.isMap(a, "status.addresses entry")) continue;
        YAML::Node type = a["type"];
        YAML::Node address = a["address"];
        if (!type || !address) {
          r.error(a, "status.addresses entry needs type and address", "missing-field");
          continue;
        }
        // Hostname, InternalDNS and ExternalDNS are names: only the IPs are peers.
        if (!type.IsScalar() || (type.Scalar() != "InternalIP" && type.Scalar() != "ExternalIP")) {
          continue;
        }
        auto s = r.str(address, "address");
        if (!s) continue;
        auto addr = parseAddr(*s);
        if (!addr) {
          r.error(address, fmt::format("invalid node address '{}'", *s), "invalid-ip");
          continue;
        }
        if (std::find(node.addrs.begin(), node.addrs.end(), *addr) == node.addrs.end()) {
          node.addrs.push_back(*addr);
        }
      }
    }
  }
  keepUnlessErrors(r, mark, store.nodes, std::move(node));
}

}  // namespace zonewall::policy
