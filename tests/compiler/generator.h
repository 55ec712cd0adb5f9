// Random clusters, policies and flows for differential tests: seeded and reproducible, mixing
// Kubernetes and Calico policies, ipBlocks with excepts, named ports, endPort ranges, tiers,
// Pass/Log/Deny, IPv6, network sets (namespaced ones seen from global rules), rules of one IP
// version, staged policies, and cluster-admin policies (AdminNetworkPolicy,
// BaselineAdminNetworkPolicy, ClusterNetworkPolicy: tied priorities, Pass, networks that
// overlap pods, nodes, named ports, port ranges).
#pragma once

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "compiler/yaml_builders.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

/// Draws its choices from `Engine`: std::mt19937 seeded for the tests, the fuzzer's bytes for
/// the differential fuzz target (fuzz/fuzz_differential.cpp).
template <class Engine>
class BasicGenerator {
 public:
  template <class... Args>
  explicit BasicGenerator(Args&&... args) : rng_(std::forward<Args>(args)...) {}

  std::string cluster() {
    std::ostringstream y;
    int namespaces = pick(1, 3);
    for (int n = 0; n < namespaces; ++n) {
      y << ns(nsName(n), "team: " + oneOf({"red", "blue"}) + (coin() ? ", env: prod" : ""));
    }
    int pods = pick(3, 8);
    for (int i = 0; i < pods; ++i) {
      std::string ips = "10.0." + std::to_string(i % 2) + "." + std::to_string(10 + i);
      if (coin(0.3)) ips += ",fd00::" + std::to_string(10 + i);
      if (coin(0.15)) ips = "fd00::" + std::to_string(10 + i);
      std::string ports = "{name: web, containerPort: " + oneOf({"80", "8080"}) + "}";
      if (coin()) ports += ", {name: dns, containerPort: 53, protocol: UDP}";
      y << pod(nsName(pick(0, namespaces - 1)) + "/p" + std::to_string(i),
               "app: " + oneOf({"a", "b", "c"}) + ", zone: " + oneOf({"pub", "sec"}), ips,
               oneOf({"n1", "n2"}), ports);
      pod_ips_.push_back(ips.substr(0, ips.find(',')));
    }
    if (coin(0.3)) {
      y << "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: gs, "
           "labels: {app: "
        << oneOf({"a", "ext"}) << "}}\nspec: {nets: ["
        << oneOf({"10.0.0.0/28", "192.0.2.0/24", "\"fd00::/120\""}) << "]}\n";
    }
    if (coin(0.3)) {
      y << "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: ns, "
           "namespace: "
        << nsName(0) << ", labels: {app: ext}}\nspec: {nets: [192.0.2.128/25, 10.0.1.0/28]}\n";
    }
    // A team's blocklist in its own namespace, which global rules see too.
    if (coin(0.3)) {
      y << "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: block, "
           "namespace: "
        << nsName(namespaces - 1) << ", labels: {app: " << oneOf({"a", "ext"})
        << "}}\nspec: {nets: [" << oneOf({"10.0.0.8/30", "203.0.113.0/24", "\"fd00::/124\""})
        << "]}\n";
    }
    bool tiers = coin(0.4);
    if (tiers) {
      y << "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: t1}\nspec: {order: "
           "10, defaultAction: "
        << oneOf({"Deny", "Pass"}) << "}\n";
    }
    int policies = pick(1, 4);
    for (int i = 0; i < policies; ++i) {
      if (coin()) {
        y << k8sPolicy(i, namespaces);
      } else {
        y << calicoPolicy(i, namespaces, tiers);
      }
    }
    // Nodes, for admin policies' `nodes` peers (one dual-stack).
    y << "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {role: "
      << oneOf({"worker", "infra"}) << "}}\nstatus: {addresses: [{type: InternalIP, address: "
      << "172.18.0.1}, {type: Hostname, address: n1}]}\n";
    y << "---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {role: worker}}\n"
      << "status: {addresses: [{type: InternalIP, address: 172.18.0.2}, {type: ExternalIP, "
      << "address: \"fd00:18::2\"}]}\n";
    if (coin(0.5)) {
      int admins = pick(1, 3);
      for (int i = 0; i < admins; ++i) y << adminPolicy(i, false);
      if (coin(0.4)) y << adminPolicy(0, true);
    }
    // Staged policies, named like the enforced ones (so promotion may replace or delete one).
    int staged = coin(0.3) ? pick(1, 2) : 0;
    for (int i = 0; i < staged; ++i) y << stagedPolicy(i, namespaces, tiers);
    return y.str();
  }

  // Addresses to probe: pods' and some outside the cluster.
  std::string address() {
    if (coin(0.7) && !pod_ips_.empty())
      return pod_ips_[pick(0, static_cast<int>(pod_ips_.size()) - 1)];
    return oneOf({"10.0.0.3", "10.0.1.200", "192.0.2.1", "192.0.2.200", "203.0.113.5", "fd00::99",
                  "2001:db8::1", "172.18.0.1", "172.18.0.2", "fd00:18::2"});
  }
  /// One random policy as a YAML document (Kubernetes or Calico), named `name`.
  std::string policyYaml(int i, int namespaces, bool tiers) {
    if (coin(0.25)) return adminPolicy(i, false);
    return coin() ? k8sPolicy(i, namespaces) : calicoPolicy(i, namespaces, tiers);
  }
  /// Random labels for a pod, as a Labels map.
  policy::Labels podLabels() {
    return {{"app", oneOf({"a", "b", "c"})}, {"zone", oneOf({"pub", "sec"})}};
  }
  int pickInt(int lo, int hi) { return pick(lo, hi); }

  std::pair<policy::Protocol, std::uint16_t> l4() {
    int p = pick(0, 9);
    if (p < 4) return {policy::kTcp, portValue()};
    if (p < 6) return {policy::kUdp, portValue()};
    if (p < 7) return {policy::kSctp, portValue()};
    if (p < 8)
      return {policy::kIcmp,
              static_cast<std::uint16_t>(oneOfInt({0, 8, 3}) << 8 | oneOfInt({0, 1}))};
    if (p < 9) return {policy::kIcmpV6, static_cast<std::uint16_t>(oneOfInt({128, 129}) << 8)};
    return {47, 0};
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool coin(double p = 0.5) { return std::bernoulli_distribution(p)(rng_); }
  std::string oneOf(std::initializer_list<const char*> xs) {
    return *(xs.begin() + pick(0, static_cast<int>(xs.size()) - 1));
  }
  int oneOfInt(std::initializer_list<int> xs) {
    return *(xs.begin() + pick(0, static_cast<int>(xs.size()) - 1));
  }
  static std::string nsName(int i) { return std::string(1, static_cast<char>('x' + i)); }
  std::uint16_t portValue() {
    return static_cast<std::uint16_t>(
        oneOfInt({53, 79, 80, 81, 443, 999, 1000, 1500, 2000, 2001, 8080}));
  }

  std::string labelSelector() {
    switch (pick(0, 4)) {
      case 0:
        return "{}";
      case 1:
        return "{matchLabels: {app: " + oneOf({"a", "b", "c"}) + "}}";
      case 2:
        return "{matchExpressions: [{key: zone, operator: " + oneOf({"In", "NotIn"}) +
               ", values: [" + oneOf({"pub", "sec"}) + "]}]}";
      case 3:
        return "{matchExpressions: [{key: " + oneOf({"app", "missing"}) +
               ", operator: " + oneOf({"Exists", "DoesNotExist"}) + "}]}";
      default:
        return "{matchLabels: {zone: " + oneOf({"pub", "sec"}) +
               "}, matchExpressions: [{key: app, operator: NotIn, values: [a]}]}";
    }
  }

  std::string k8sPeer() {
    switch (pick(0, 4)) {
      case 0:
        return "{podSelector: " + labelSelector() + "}";
      case 1:
        return "{namespaceSelector: {matchLabels: {team: " + oneOf({"red", "blue"}) + "}}}";
      case 2:
        return "{namespaceSelector: {}, podSelector: " + labelSelector() + "}";
      case 3:
        return "{ipBlock: " +
               oneOf({"{cidr: 10.0.0.0/16, except: [10.0.0.8/29]}",
                      "{cidr: 10.0.0.0/24, except: [10.0.0.0/25, 10.0.0.12/30]}",
                      "{cidr: 0.0.0.0/0, except: [10.0.1.0/24]}",
                      "{cidr: 192.0.2.0/24, except: [192.0.2.0/26]}",
                      "{cidr: \"fd00::/64\", except: [\"fd00::10/126\"]}"}) +
               "}";
      default:
        return "{ipBlock: {cidr: " + oneOf({"\"fd00::/112\"", "\"::/0\"", "10.0.1.0/24"}) + "}}";
    }
  }

  std::string k8sPort() {
    switch (pick(0, 4)) {
      case 0:
        return "{port: " + oneOf({"80", "443", "53"}) +
               ", protocol: " + oneOf({"TCP", "UDP", "SCTP"}) + "}";
      case 1:
        return "{port: 1000, endPort: " + oneOf({"1000", "1500", "2000"}) + "}";
      case 2:
        return "{port: " + oneOf({"web", "dns"}) + ", protocol: " + oneOf({"TCP", "UDP"}) + "}";
      case 3:
        return "{protocol: " + oneOf({"UDP", "SCTP"}) + "}";
      default:
        return "{port: 80}";
    }
  }

  std::string k8sRules(const char* peer_key) {
    std::string out = "[";
    int rules = pick(0, 2);
    for (int r = 0; r < rules; ++r) {
      out += "{";
      if (coin(0.7)) {
        out += std::string(peer_key) + ": [" + k8sPeer();
        if (coin(0.3)) out += ", " + k8sPeer();
        out += "]";
      }
      if (coin(0.6))
        out += std::string(coin(0.7) ? ", " : ", ") + "ports: [" + k8sPort() +
               (coin(0.3) ? ", " + k8sPort() : "") + "]";
      out += "},";
    }
    if (out.back() == ',') out.pop_back();
    // "{, ports" is not YAML: clean a leading comma inside braces
    for (size_t pos; (pos = out.find("{, ")) != std::string::npos;) out.erase(pos + 1, 2);
    return out + "]";
  }

  static std::string replaced(std::string text, const std::string& from, const std::string& to) {
    if (auto at = text.find(from); at != std::string::npos) text.replace(at, from.size(), to);
    return text;
  }

  std::string stagedPolicy(int i, int namespaces, bool tiers) {
    switch (pick(0, 3)) {
      case 0:
        return replaced(
            replaced(k8sPolicy(i, namespaces),
                     "apiVersion: networking.k8s.io/v1\nkind: "
                     "NetworkPolicy",
                     "apiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy"),
            "spec:\n", "spec:\n  stagedAction: Set\n");
      case 1: {
        std::string p = calicoPolicy(i, namespaces, tiers);
        return replaced(replaced(p, "kind: GlobalNetworkPolicy", "kind: StagedGlobalNetworkPolicy"),
                        "kind: NetworkPolicy", "kind: StagedNetworkPolicy");
      }
      case 2:
        return "---\napiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: "
               "{name: c" +
               std::to_string(i) + "}\nspec: {stagedAction: Delete}\n";
      default:
        return "---\napiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\n"
               "metadata: {name: k" +
               std::to_string(i) + ", namespace: " + nsName(pick(0, namespaces - 1)) +
               "}\nspec: {stagedAction: Delete}\n";
    }
  }

  std::string k8sPolicy(int i, int namespaces) {
    std::string types;
    switch (pick(0, 3)) {
      case 0:
        types = "  policyTypes: [Ingress]\n";
        break;
      case 1:
        types = "  policyTypes: [Egress]\n";
        break;
      case 2:
        types = "  policyTypes: [Ingress, Egress]\n";
        break;
      default:
        break;  // defaulted
    }
    return "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k" +
           std::to_string(i) + ", namespace: " + nsName(pick(0, namespaces - 1)) +
           "}\nspec:\n  podSelector: " + labelSelector() + "\n" + types +
           "  ingress: " + k8sRules("from") + "\n  egress: " + k8sRules("to") + "\n";
  }

  std::string calicoSelector() {
    switch (pick(0, 6)) {
      case 0:
        return "all()";
      case 1:
        return "app == '" + oneOf({"a", "b", "c", "ext"}) + "'";
      case 2:
        return "zone != 'pub'";
      case 3:
        return "app in {'a', 'b'} && zone == 'sec'";
      case 4:
        return "has(app) && !(app == 'c' || zone starts with 'p')";
      case 5:
        return "app not in {'a'} || zone ends with 'c'";
      default:
        return "app contains 'x'";
    }
  }

  // `v6`: the IP version of every net in the rule (Calico refuses a rule mixing them).
  std::string entity(bool with_ports, const std::string& proto, bool v6) {
    std::string out = "{";
    auto add = [&](const std::string& s) { out += (out.size() > 1 ? ", " : "") + s; };
    if (coin(0.4)) add("selector: \"" + calicoSelector() + "\"");
    if (coin(0.15)) add("notSelector: \"" + (coin(0.1) ? "global()" : calicoSelector()) + "\"");
    if (coin(0.2))
      add("namespaceSelector: \"" +
          oneOf({"team == 'red'", "all()", "global()", "env == 'prod'", "!has(env)"}) + "\"");
    if (coin(0.2)) {
      add("nets: [" +
          (v6 ? oneOf({"\"fd00::/64\"", "\"fd00::/124\"", "\"2001:db8::/32\""})
              : oneOf({"10.0.0.0/24", "192.0.2.0/24", "10.0.1.8/29"})) +
          "]");
    }
    if (coin(0.15)) {
      add("notNets: [" +
          (v6 ? oneOf({"\"fd00::/124\"", "\"fd00::/112\""})
              : oneOf({"10.0.0.0/28", "192.0.2.0/25"})) +
          "]");
    }
    if (with_ports && (proto == "TCP" || proto == "UDP" || proto == "SCTP")) {
      if (coin(0.5))
        add("ports: [" + oneOf({"80", "'1000:2000'", "web", "dns", "53"}) +
            (coin(0.3) ? ", 443" : "") + "]");
      if (coin(0.2)) add("notPorts: [" + oneOf({"443", "'1500:1600'", "web"}) + "]");
    }
    return out + "}";
  }

  std::string calicoRules() {
    std::string out = "[";
    int rules = pick(0, 3);
    for (int r = 0; r < rules; ++r) {
      std::string action = oneOf({"Allow", "Allow", "Deny", "Pass", "Log"});
      std::string rule = "{action: " + action;
      std::string proto;
      if (coin(0.6)) {
        proto = oneOf({"TCP", "UDP", "SCTP", "ICMP", "ICMPv6", "47"});
        rule += ", protocol: " + proto;
        if (proto == "ICMP" && coin())
          rule += ", icmp: {type: 8" + std::string(coin() ? ", code: 0" : "") + "}";
        if (proto == "ICMPv6" && coin(0.3)) rule += ", notICMP: {type: 129}";
      } else if (coin(0.2)) {
        rule += ", notProtocol: " + oneOf({"TCP", "UDP"});
      }
      // One IP version for the rule's nets; ipVersion, when given, agrees with them and with
      // an ICMP protocol.
      bool v6 = proto == "ICMPv6" || (proto != "ICMP" && coin(0.35));
      if (coin(0.15)) rule += std::string(", ipVersion: ") + (v6 ? "6" : "4");
      if (coin(0.6)) rule += ", source: " + entity(false, proto, v6);
      if (coin(0.6)) rule += ", destination: " + entity(true, proto, v6);
      out += rule + "},";
    }
    if (out.back() == ',') out.pop_back();
    return out + "]";
  }

  std::string calicoPolicy(int i, int namespaces, bool tiers) {
    bool global = coin();
    std::string tier = tiers && coin() ? "t1" : "default";
    std::string head =
        global ? "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: "
                 "{name: c" +
                     std::to_string(i) + "}\nspec:\n"
               : "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: c" +
                     std::to_string(i) + ", namespace: " + nsName(pick(0, namespaces - 1)) +
                     "}\nspec:\n";
    std::string body = "  tier: " + tier + "\n";
    if (coin(0.8)) body += "  order: " + oneOf({"1", "10", "1000", "1000", "2000"}) + "\n";
    body += "  selector: \"" + calicoSelector() + "\"\n";
    if (global && coin(0.2)) body += "  namespaceSelector: \"team == 'red'\"\n";
    if (coin(0.5))
      body += "  types: " + oneOf({"[Ingress]", "[Egress]", "[Ingress, Egress]"}) + "\n";
    body += "  ingress: " + calicoRules() + "\n  egress: " + calicoRules() + "\n";
    return head + body;
  }

  // ---- cluster-admin policy ----

  std::string adminPodPeer() {
    if (coin(0.4)) return "{namespaces: " + labelSelector() + "}";
    return "{pods: {namespaceSelector: " +
           oneOf({"{}", "{matchLabels: {team: red}}", "{matchLabels: {team: blue}}"}) +
           ", podSelector: " + labelSelector() + "}}";
  }

  // Egress peers may also be networks (overlapping the pods' 10.0.0.0/23 and fd00::/64) and
  // nodes; `addressed` says whether one was chosen (then no named port: the CRD's rule).
  std::string adminPeers(bool ingress, bool& addressed) {
    std::string out = "[";
    int n = pick(1, 2);
    for (int i = 0; i < n; ++i) {
      int kind = ingress ? 0 : pick(0, 3);
      if (kind <= 1) {
        out += adminPodPeer();
      } else if (kind == 2) {
        addressed = true;
        out += "{networks: [" +
               oneOf({"10.0.0.0/24", "10.0.1.8/29", "\"fd00::/64\"", "192.0.2.0/25", "0.0.0.0/0"}) +
               (coin(0.3) ? ", \"fd00::10/126\"" : "") + "]}";
      } else {
        addressed = true;
        out += "{nodes: " +
               oneOf({"{}", "{matchLabels: {role: worker}}", "{matchLabels: {role: infra}}"}) + "}";
      }
      out += ",";
    }
    out.back() = ']';
    return out;
  }

  std::string adminPorts(bool v2, bool named_ok) {
    std::string out = "[";
    int n = pick(1, 2);
    for (int i = 0; i < n; ++i) {
      int kind = pick(0, named_ok ? 2 : 1);
      std::string proto = oneOf({"TCP", "UDP", "SCTP"});
      std::string p = v2 ? std::string(proto == "TCP"   ? "tcp"
                                       : proto == "UDP" ? "udp"
                                                        : "sctp")
                         : proto;
      if (kind == 0) {
        std::string port = oneOf({"80", "53", "443"});
        out += v2 ? "{" + p + ": {destinationPort: {number: " + port + "}}}"
                  : "{portNumber: {protocol: " + p + ", port: " + port + "}}";
      } else if (kind == 1) {
        std::string hi = oneOf({"1500", "2000"});
        out += v2 ? "{" + p + ": {destinationPort: {range: {start: 1000, end: " + hi + "}}}}"
                  : "{portRange: {protocol: " + p + ", start: 1000, end: " + hi + "}}";
      } else {
        std::string name = oneOf({"web", "dns"});
        out += v2 ? "{destinationNamedPort: " + name + "}" : "{namedPort: " + name + "}";
      }
      out += ",";
    }
    out.back() = ']';
    return out;
  }

  std::string adminRules(bool ingress, bool v2, bool baseline_v1) {
    std::string out = "[";
    int n = pick(0, 3);
    for (int i = 0; i < n; ++i) {
      std::string action = baseline_v1 ? oneOf({"Allow", "Deny"})
                           : v2        ? oneOf({"Accept", "Deny", "Pass"})
                                       : oneOf({"Allow", "Deny", "Pass"});
      bool addressed = false;
      std::string rule = "{name: r" + std::to_string(i) + ", action: " + action + ", " +
                         (ingress ? "from" : "to") + ": " + adminPeers(ingress, addressed);
      if (coin(0.6))
        rule += ", " + std::string(v2 ? "protocols" : "ports") + ": " + adminPorts(v2, !addressed);
      out += rule + "},";
    }
    if (out.back() == ',') out.pop_back();
    return out + "]";
  }

  // An AdminNetworkPolicy or ClusterNetworkPolicy (Admin or Baseline tier) named a<i>, or,
  // with `banp`, the BaselineAdminNetworkPolicy "default".
  std::string adminPolicy(int i, bool banp) {
    bool v2 = !banp && coin(0.5);
    std::string head;
    std::string spec;
    if (banp) {
      head =
          "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
          "metadata: {name: default}\n";
    } else if (v2) {
      head =
          "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
          "metadata: {name: a" +
          std::to_string(i) + "}\n";
      spec = "  tier: " + oneOf({"Admin", "Admin", "Baseline"}) + "\n";
    } else {
      head =
          "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n"
          "metadata: {name: a" +
          std::to_string(i) + "}\n";
    }
    if (!banp) spec += "  priority: " + oneOf({"0", "5", "5", "10", "1000"}) + "\n";
    spec += "  subject: " + adminPodPeer() + "\n";
    spec += "  ingress: " + adminRules(true, v2, banp) + "\n";
    spec += "  egress: " + adminRules(false, v2, banp) + "\n";
    return "---\n" + head + "spec:\n" + spec;
  }

  Engine rng_;
  std::vector<std::string> pod_ips_;
};

using Generator = BasicGenerator<std::mt19937>;

}  // namespace zonewall::compiler
