#include "synthetic.h"

#include <fmt/format.h>

#include <random>
#include <sstream>

namespace zonewall::bench {
namespace {

using namespace policy;  // NOLINT

const char* kZones[] = {"public", "internal", "secure"};
const char* kEnvs[] = {"prod", "staging", "dev"};
constexpr int kTeams = 40;
constexpr int kAppsPerNamespace = 8;

Selector sel(const std::string& text) {
  return parseSelector(text).value();  // the generator writes only valid selectors
}

class Builder {
 public:
  explicit Builder(const SyntheticSpec& s) : spec_(s), rng_(s.seed) {
    namespaces_ = std::max<size_t>(1, spec_.pods / spec_.pods_per_namespace);
  }

  Store build() {
    Store st;
    for (size_t n = 0; n < namespaces_; ++n) {
      Namespace ns;
      ns.name = nsName(n);
      ns.labels = {{kNamespaceNameLabel, ns.name},
                   {"zone", kZones[n % 3]},
                   {"team", fmt::format("team-{}", n % kTeams)},
                   {"env", kEnvs[(n / 3) % 3]}};
      st.namespaces.push_back(std::move(ns));
    }
    for (size_t i = 0; i < spec_.pods; ++i) {
      size_t n = i % namespaces_;
      Pod p;
      p.ns = nsName(n);
      p.name = fmt::format("pod-{}", i);
      size_t app = (i / namespaces_) % kAppsPerNamespace;
      p.labels = {{"app", fmt::format("app-{}", app)},
                  {"zone", kZones[n % 3]},
                  {"version", fmt::format("v{}", i % 3)},
                  {"pod-template-hash", fmt::format("{:x}", (i * 2654435761u) & 0xffffff)}};
      if (app == 0) p.labels["role"] = "frontend";
      if (app == 1) p.labels["role"] = "db";
      p.node = nodeName(i / spec_.pods_per_node);
      // 10.0.0.0/8 addresses, one /22 per node (room for 1,000 pods); every tenth pod
      // dual-stack.
      std::uint32_t node = static_cast<std::uint32_t>(i / spec_.pods_per_node);
      std::uint32_t host = static_cast<std::uint32_t>(i % spec_.pods_per_node) + 2;
      p.ips.push_back(Addr::fromV4(0x0a000000u + (node << 10) + host));
      if (i % 10 == 0) p.ips.push_back(*parseAddr(fmt::format("fd00::{:x}:{:x}", node, host)));
      p.ports = {{"http", kTcp, static_cast<std::uint16_t>(app == 1 ? 5432 : 8080)},
                 {"metrics", kTcp, 9090}};
      st.pods.push_back(std::move(p));
    }
    // A security tier in front of the default tier, as platform teams run it.
    st.tiers.push_back(Tier{"security", 100.0, Action::kPass, {}});
    for (size_t m = 0; m < spec_.policies; ++m) addPolicy(st, m);
    for (size_t a = 0; a < spec_.admin_policies; ++a) {
      st.admin_policies.push_back(adminPolicy(a, 0));
    }
    if (spec_.baseline) st.admin_policies.push_back(baselinePolicy());
    return st;
  }

  // A platform team's: a team's namespaces, or an application of a zone, as subject;
  // monitoring passed on to the teams' own policies, the public zone denied the privileged
  // ports, frontends allowed on http (a named port), and egress to an outside range denied.
  AdminPolicy adminPolicy(size_t i, int salt) const {
    AdminPolicy p;
    p.kind = AdminKind::kAdmin;
    p.name = fmt::format("admin-{}", i);
    p.priority = static_cast<int>((i * 10 + static_cast<size_t>(salt)) % 1001);
    auto pods = [](const std::string& ns_sel, const std::string& pod_sel) {
      AdminPeer peer;
      peer.namespaces = sel(ns_sel);
      peer.pods = sel(pod_sel);
      return peer;
    };
    p.subject = i % 2 == 0 ? pods(fmt::format("team == 'team-{}'", i % kTeams), "all()")
                           : pods(fmt::format("zone == '{}'", kZones[i % 3]),
                                  fmt::format("app == 'app-{}'",
                                              (i + static_cast<size_t>(salt)) % kAppsPerNamespace));
    AdminRule pass{"monitoring", Action::kPass, {pods("team == 'team-0'", "all()")}, {}, {}};
    AdminRule deny{"public-privileged",
                   Action::kDeny,
                   {pods("zone == 'public'", "all()")},
                   {AdminPort{kTcp, 1, 1024, "", {}}},
                   {}};
    AdminRule allow{"frontends",
                    Action::kAllow,
                    {pods("all()", "role == 'frontend'")},
                    {AdminPort{kTcp, 0, 0, "http", {}}},
                    {}};
    p.ingress_rules = {pass, deny, allow};
    AdminPeer outside;
    outside.kind = AdminPeer::Kind::kNetworks;
    outside.networks = {parseCidr(fmt::format("192.168.{}.0/24", i % 256))->cidr};
    p.egress_rules = {AdminRule{"no-outside", Action::kDeny, {outside}, {}, {}}};
    return p;
  }

  static AdminPolicy baselinePolicy() {
    AdminPolicy p;
    p.kind = AdminKind::kBaseline;
    p.name = "default";
    p.baseline = true;
    AdminPeer every;
    p.subject = every;
    AdminPeer monitoring;
    monitoring.namespaces = sel("team == 'team-0'");
    p.ingress_rules = {AdminRule{"monitoring", Action::kAllow, {monitoring}, {}, {}},
                       AdminRule{"default-deny", Action::kDeny, {every}, {}, {}}};
    return p;
  }

  static std::string nsName(size_t n) { return fmt::format("ns-{}", n); }
  static std::string nodeName(size_t n) { return fmt::format("node-{}", n); }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  void addPolicy(Store& st, size_t m) {
    std::string ns = nsName(static_cast<size_t>(pick(0, static_cast<int>(namespaces_) - 1)));
    std::string app = fmt::format("app-{}", pick(0, kAppsPerNamespace - 1));
    std::string peer_app = fmt::format("app-{}", pick(0, kAppsPerNamespace - 1));
    // Mix: 60% Kubernetes NetworkPolicies, 35% namespaced Calico policies, 5% global policies
    // in the security tier (platform teams keep few of those).
    int kind = static_cast<int>(m % 20);
    if (spec_.kubernetes_only) kind = static_cast<int>(m % 6);
    if (kind < 12) {
      kind = kind % 6;
      // Kubernetes: default-deny, same-namespace allow, cross-team allow with named port.
      K8sPolicy p;
      p.ns = ns;
      p.name = fmt::format("k8s-{}", m);
      p.ingress = true;
      p.egress = kind == 2;
      if (kind == 0) {
        p.pod_selector = Selector::all();
      } else {
        p.pod_selector = Selector(selEq("app", app));
        K8sRule r;
        K8sPeer peer;
        peer.pod_selector = Selector(selEq("app", peer_app));
        if (kind >= 3) {
          peer.namespace_selector =
              Selector(selEq("team", fmt::format("team-{}", pick(0, kTeams - 1))));
        }
        r.peers.push_back(peer);
        K8sPort port;
        if (kind == 4) {
          port.name = "http";
        } else {
          port.port = static_cast<std::uint16_t>(8000 + pick(0, 100));
          if (kind == 5) port.end_port = static_cast<std::uint16_t>(*port.port + 10);
        }
        r.ports.push_back(port);
        p.ingress_rules.push_back(r);
        if (p.egress) {
          K8sRule e;
          K8sPeer block;
          block.ip_block = K8sIpBlock{parseCidr("10.0.0.0/8")->cidr,
                                      {parseCidr(fmt::format("10.{}.0.0/16", pick(0, 255)))->cidr}};
          e.peers.push_back(block);
          p.egress_rules.push_back(e);
        }
      }
      st.k8s_policies.push_back(std::move(p));
      return;
    }
    CalicoPolicy p;
    p.name = fmt::format("cal-{}", m);
    p.order = static_cast<double>(pick(1, 2000));
    p.ingress = true;
    CalicoRule allow;
    allow.action = Action::kAllow;
    allow.protocol = kTcp;
    allow.destination.ports = {PortSpec{static_cast<std::uint16_t>(pick(1, 1000)),
                                        static_cast<std::uint16_t>(pick(1000, 2000)),
                                        {}}};
    if (kind < 19) {
      // Namespaced Calico policy with a richer selector and a Deny before the Allow.
      p.ns = ns;
      p.selector = sel(fmt::format("app == '{}' && version != 'v2'", app));
      CalicoRule deny;
      deny.action = Action::kDeny;
      deny.source.selector = sel("role == 'frontend'");
      deny.source.namespace_selector = sel(fmt::format("zone == '{}'", kZones[pick(0, 2)]));
      p.ingress_rules.push_back(deny);
      allow.source.selector = sel(fmt::format("app in {{'{}', '{}'}}", peer_app, app));
      p.ingress_rules.push_back(allow);
    } else {
      // Global zone policies in the security tier.
      p.global = true;
      p.tier = "security";
      p.name = "security." + p.name;
      std::string zone = kZones[pick(0, 2)];
      p.selector = sel(fmt::format("zone == '{}'", zone));
      CalicoRule pass;
      pass.action = Action::kPass;
      pass.source.selector = sel(fmt::format("zone == '{}'", zone));
      p.ingress_rules.push_back(pass);
      CalicoRule deny;
      deny.action = Action::kDeny;
      deny.source.not_nets = {parseCidr("10.0.0.0/8")->cidr};
      if (m % 40 == 19)
        deny.source.nets = {parseCidr(fmt::format("192.168.{}.0/24", pick(0, 255)))->cidr};
      p.ingress_rules.push_back(deny);
    }
    st.calico_policies.push_back(std::move(p));
  }

  SyntheticSpec spec_;
  std::mt19937 rng_;
  size_t namespaces_;
};

std::string selectorYaml(const Selector& s) { return "\"" + s.str() + "\""; }

std::string k8sSelectorYaml(const Selector& s) {
  const SelectorNode& n = s.root();
  if (n.op == SelectorNode::Op::kAll) return "{}";
  return fmt::format("{{matchLabels: {{{}: {}}}}}", n.key, n.values[0]);
}

}  // namespace

Store syntheticCluster(const SyntheticSpec& spec) { return Builder(spec).build(); }

AdminPolicy syntheticAdminPolicy(const SyntheticSpec& spec, size_t i, int salt) {
  return Builder(spec).adminPolicy(i, salt);
}

std::string syntheticPolicyYaml(const SyntheticSpec& spec) {
  SyntheticSpec s = spec;
  s.pods = std::max<size_t>(spec.pods_per_namespace, spec.pods);
  Store st = Builder(s).build();
  std::ostringstream y;
  for (const K8sPolicy& p : st.k8s_policies) {
    y << "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " << p.name
      << ", namespace: " << p.ns << "}\nspec:\n  podSelector: " << k8sSelectorYaml(p.pod_selector)
      << "\n  policyTypes: [Ingress" << (p.egress ? ", Egress" : "") << "]\n  ingress:\n";
    for (const K8sRule& r : p.ingress_rules) {
      y << "  - from:\n";
      for (const K8sPeer& peer : r.peers) {
        y << "    - podSelector: " << k8sSelectorYaml(*peer.pod_selector) << "\n";
        if (peer.namespace_selector)
          y << "      namespaceSelector: " << k8sSelectorYaml(*peer.namespace_selector) << "\n";
      }
      y << "    ports:\n";
      for (const K8sPort& port : r.ports) {
        y << "    - port: " << (port.name.empty() ? std::to_string(*port.port) : port.name) << "\n";
        if (port.end_port) y << "      endPort: " << *port.end_port << "\n";
      }
    }
    if (p.egress) {
      y << "  egress:\n";
      for (const K8sRule& r : p.egress_rules) {
        const auto& b = *r.peers[0].ip_block;
        y << "  - to:\n    - ipBlock: {cidr: " << b.cidr.str() << ", except: [" << b.except[0].str()
          << "]}\n";
      }
    }
  }
  y << "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\nspec: "
       "{order: 100, defaultAction: Pass}\n";
  for (const CalicoPolicy& p : st.calico_policies) {
    y << "---\napiVersion: projectcalico.org/v3\nkind: "
      << (p.global ? "GlobalNetworkPolicy" : "NetworkPolicy") << "\nmetadata: {name: " << p.name
      << (p.global ? "" : ", namespace: " + p.ns) << "}\nspec:\n  tier: " << p.tier
      << "\n  order: " << *p.order << "\n  selector: " << selectorYaml(p.selector)
      << "\n  ingress:\n";
    for (const CalicoRule& r : p.ingress_rules) {
      y << "  - action: " << actionName(r.action) << "\n";
      if (r.protocol) y << "    protocol: " << protocolName(*r.protocol) << "\n";
      y << "    source: {";
      std::string sep;
      if (r.source.selector) {
        y << sep << "selector: " << selectorYaml(*r.source.selector);
        sep = ", ";
      }
      if (r.source.namespace_selector) {
        y << sep << "namespaceSelector: " << selectorYaml(*r.source.namespace_selector);
        sep = ", ";
      }
      if (!r.source.nets.empty()) {
        y << sep << "nets: [" << r.source.nets[0].str() << "]";
        sep = ", ";
      }
      if (!r.source.not_nets.empty()) {
        y << sep << "notNets: [" << r.source.not_nets[0].str() << "]";
        sep = ", ";
      }
      y << "}\n";
      if (!r.destination.ports.empty()) {
        y << "    destination: {ports: [\"" << r.destination.ports[0].lo << ":"
          << r.destination.ports[0].hi << "\"]}\n";
      }
    }
  }
  return y.str();
}

}  // namespace zonewall::bench
