#include "zonewall/compiler/reference.h"

#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

namespace zonewall::compiler {

using namespace policy;  // NOLINT

namespace {

constexpr double kLast = std::numeric_limits<double>::infinity();

// Labels as Calico's selectors see them.
Labels calicoPodLabels(const Pod& p) {
  Labels l = p.labels;
  l[kCalicoNamespaceLabel] = p.ns;
  l[kCalicoOrchestratorLabel] = "k8s";
  return l;
}

Labels calicoNsLabels(const Store& s, const std::string& ns) {
  Labels l = s.namespaceLabels(ns);
  l[kCalicoNameLabel] = ns;
  return l;
}

Labels calicoSetLabels(const NetworkSet& set) {
  Labels l = set.labels;
  if (!set.global) l[kCalicoNamespaceLabel] = set.ns;
  return l;
}

enum class Result { kAllow, kDeny, kPass, kNoMatch };

}  // namespace

const Pod* ReferenceEvaluator::podAt(Addr a) const {
  for (const Pod& p : store_.pods) {
    if (std::find(p.ips.begin(), p.ips.end(), a) != p.ips.end()) return &p;
  }
  return nullptr;
}

bool ReferenceEvaluator::allows(Direction d, const Pod& local, Addr local_addr, Addr peer,
                                Protocol protocol, std::uint16_t port) const {
  const bool ingress = d == Direction::kIngress;
  const Pod* peer_pod = podAt(peer);
  const Pod* dst_pod = ingress ? &local : peer_pod;
  const Addr dst_addr = ingress ? local_addr : peer;
  const Addr src_addr = ingress ? peer : local_addr;

  // ---- Kubernetes NetworkPolicy ----
  auto k8sRuleMatches = [&](const K8sPolicy& pol, const K8sRule& rule) {
    bool peer_ok = rule.peers.empty();
    for (const K8sPeer& p : rule.peers) {
      if (p.ip_block) {
        bool in = p.ip_block->cidr.contains(peer);
        for (const Cidr& e : p.ip_block->except) in = in && !e.contains(peer);
        peer_ok = peer_ok || in;
        continue;
      }
      if (peer_pod == nullptr) continue;
      bool ns_ok = p.namespace_selector
                       ? p.namespace_selector->matches(store_.namespaceLabels(peer_pod->ns))
                       : peer_pod->ns == pol.ns;
      bool pod_ok = !p.pod_selector || p.pod_selector->matches(peer_pod->labels);
      peer_ok = peer_ok || (ns_ok && pod_ok);
    }
    if (!peer_ok) return false;
    if (rule.ports.empty()) return true;
    for (const K8sPort& kp : rule.ports) {
      if (kp.protocol != protocol) continue;
      if (!kp.name.empty()) {
        auto resolved = dst_pod ? dst_pod->namedPort(kp.name, protocol) : std::nullopt;
        if (resolved && *resolved == port) return true;
        continue;
      }
      if (!kp.port) return true;
      if (port >= *kp.port && port <= kp.end_port.value_or(*kp.port)) return true;
    }
    return false;
  };

  // ---- Calico ----
  // Whether `addr` is (or is inside) an endpoint or network set in view that `pick` selects:
  // Felix's IP set for a rule selector. In view: with the namespaceSelector global(), the
  // GlobalNetworkSets; with another namespaceSelector, the pods and NetworkSets of the
  // namespaces it picks (and GlobalNetworkSets when it picks "no namespace"); without, in a
  // namespaced policy, its own namespace's; in a global policy, everything.
  auto inIpSet = [&](const CalicoPolicy& pol, const std::optional<Selector>& ns_sel, auto&& pick,
                     Addr addr) {
    const bool global_only = ns_sel && ns_sel->root().op == SelectorNode::Op::kGlobal;
    auto nsInView = [&](const std::string& ns) {
      if (global_only) return false;
      if (ns_sel) return ns_sel->matches(calicoNsLabels(store_, ns));
      return pol.global || ns == pol.ns;
    };
    const Pod* pod = podAt(addr);
    if (pod != nullptr && nsInView(pod->ns) && pick(calicoPodLabels(*pod))) return true;
    for (const NetworkSet& set : store_.network_sets) {
      bool in_view = !set.global   ? nsInView(set.ns)
                     : global_only ? true
                     : ns_sel      ? namespaceSelectorPicksGlobal(*ns_sel)
                                   : pol.global;
      if (!in_view) continue;
      bool inside = false;
      for (const Cidr& c : set.nets) inside = inside || c.contains(addr);
      if (inside && pick(calicoSetLabels(set))) return true;
    }
    return false;
  };
  auto entityMatches = [&](const CalicoPolicy& pol, const EntityRule& e, Addr addr,
                           const Pod* pod_at_addr, bool is_destination) {
    // libcalico-go's getEndpointSelector: any selector field in a namespaced policy, or a
    // namespaceSelector, makes a positive selector that the notSelector narrows (Felix's
    // combineMatchesIfPossible); a global policy's lone notSelector excludes on its own.
    if (e.selector || e.namespace_selector || (e.not_selector && !pol.global)) {
      auto pick = [&](const Labels& l) {
        return (!e.selector || e.selector->matches(l)) &&
               (!e.not_selector || !e.not_selector->matches(l));
      };
      if (!inIpSet(pol, e.namespace_selector, pick, addr)) return false;
    } else if (e.not_selector) {
      auto pick = [&](const Labels& l) { return e.not_selector->matches(l); };
      if (inIpSet(pol, std::nullopt, pick, addr)) return false;
    }
    if (!e.nets.empty() && std::none_of(e.nets.begin(), e.nets.end(),
                                        [&](const Cidr& c) { return c.contains(addr); })) {
      return false;
    }
    if (std::any_of(e.not_nets.begin(), e.not_nets.end(),
                    [&](const Cidr& c) { return c.contains(addr); })) {
      return false;
    }
    if (!is_destination) return true;
    auto portIn = [&](const PortSpec& ps) {
      if (ps.name.empty()) return port >= ps.lo && port <= ps.hi;
      auto v = pod_at_addr ? pod_at_addr->namedPort(ps.name, protocol) : std::nullopt;
      return v && *v == port;
    };
    if (!e.ports.empty() && std::none_of(e.ports.begin(), e.ports.end(), portIn)) return false;
    if (std::any_of(e.not_ports.begin(), e.not_ports.end(), portIn)) return false;
    return true;
  };
  auto calicoRuleMatches = [&](const CalicoPolicy& pol, const CalicoRule& r) {
    if (r.protocol && *r.protocol != protocol) return false;
    if (r.not_protocol && *r.not_protocol == protocol) return false;
    // Felix renders a rule only for the IP versions it can match (FilterRuleToIPVersion):
    // every non-empty nets/notNets list must keep a CIDR of this version, and a notNets
    // catch-all drops the rule.
    const Family fam = peer.family();
    if (r.ip_version && *r.ip_version != fam) return false;
    auto rendered = [&](const std::vector<Cidr>& nets, bool negated) {
      if (nets.empty()) return true;
      bool kept = false;
      for (const Cidr& c : nets) {
        if (c.family != fam) continue;
        if (negated && c.prefix == 0) return false;
        kept = true;
      }
      return kept;
    };
    if (!rendered(r.source.nets, false) || !rendered(r.source.not_nets, true) ||
        !rendered(r.destination.nets, false) || !rendered(r.destination.not_nets, true)) {
      return false;
    }
    auto icmpHit = [&](const IcmpMatch& m) {
      return (port >> 8) == m.type && (!m.code || (port & 0xff) == *m.code);
    };
    if (r.icmp && !icmpHit(*r.icmp)) return false;
    if (r.not_icmp && icmpHit(*r.not_icmp)) return false;
    return entityMatches(pol, r.source, src_addr, ingress ? peer_pod : &local, false) &&
           entityMatches(pol, r.destination, dst_addr, dst_pod, true);
  };
  auto calicoApplies = [&](const CalicoPolicy& pol) {
    if (!(ingress ? pol.ingress : pol.egress)) return false;
    if (pol.global) {
      if (pol.namespace_selector &&
          !pol.namespace_selector->matches(calicoNsLabels(store_, local.ns))) {
        return false;
      }
    } else if (pol.ns != local.ns) {
      return false;
    }
    return pol.selector.matches(calicoPodLabels(local));
  };

  // ---- network-policy-api: ANP, BANP, CNP ----
  // Pods by Kubernetes labels only; nodes by their InternalIP/ExternalIP addresses.
  auto adminPodPeer = [&](const AdminPeer& p, const Pod* pod) {
    return pod != nullptr && p.namespaces.matches(store_.namespaceLabels(pod->ns)) &&
           p.pods.matches(pod->labels);
  };
  auto adminPeerMatches = [&](const AdminPeer& p) {
    switch (p.kind) {
      case AdminPeer::Kind::kPods:
        return adminPodPeer(p, peer_pod);
      case AdminPeer::Kind::kNetworks:
        return std::any_of(p.networks.begin(), p.networks.end(),
                           [&](const Cidr& c) { return c.contains(peer); });
      case AdminPeer::Kind::kNodes:
        return std::any_of(store_.nodes.begin(), store_.nodes.end(), [&](const Node& n) {
          return p.nodes.matches(n.labels) &&
                 std::find(n.addrs.begin(), n.addrs.end(), peer) != n.addrs.end();
        });
    }
    return false;
  };
  auto adminRuleMatches = [&](const AdminRule& r) {
    if (std::none_of(r.peers.begin(), r.peers.end(), adminPeerMatches)) return false;
    if (r.ports.empty()) return true;
    return std::any_of(r.ports.begin(), r.ports.end(), [&](const AdminPort& ap) {
      if (!ap.name.empty()) {
        auto v = dst_pod ? dst_pod->namedPort(ap.name, protocol) : std::nullopt;
        return v && *v == port;
      }
      return ap.protocol == protocol && port >= ap.lo && port <= ap.hi;
    });
  };
  auto adminApplies = [&](const AdminPolicy& p) {
    const auto& rules = ingress ? p.ingress_rules : p.egress_rules;
    return !rules.empty() && adminPodPeer(p.subject, &local);
  };

  // ---- tiers, in order ----
  struct TierRef {
    double order;
    std::string name;
    Action def;
  };
  std::vector<TierRef> tiers;
  bool have_default = false;
  for (const Tier& t : store_.tiers) {
    have_default = have_default || t.name == kDefaultTier;
    tiers.push_back({t.order.value_or(t.name == kDefaultTier ? kDefaultTierOrder : kLast), t.name,
                     t.default_action});
  }
  if (!have_default) tiers.push_back({kDefaultTierOrder, kDefaultTier, Action::kDeny});
  // Calico's two tiers of cluster-admin policy exist whether or not a Tier object says so.
  for (const auto& [name, order] : {std::pair<std::string, double>{"kube-admin", 1000.0},
                                    std::pair<std::string, double>{"kube-baseline", 1e7}}) {
    if (std::none_of(tiers.begin(), tiers.end(),
                     [&](const TierRef& t) { return t.name == name; })) {
      tiers.push_back({order, name, Action::kPass});
    }
  }
  std::sort(tiers.begin(), tiers.end(), [](const TierRef& a, const TierRef& b) {
    return std::tie(a.order, a.name) < std::tie(b.order, b.name);
  });

  for (const TierRef& tier : tiers) {
    // The policies of this tier that apply to `local`, in order.
    struct PolRef {
      double order;
      std::string name;
      std::string ns;
      const K8sPolicy* k8s;
      const CalicoPolicy* cal;
      const AdminPolicy* adm = nullptr;
    };
    std::vector<PolRef> pols;
    if (tier.name == kDefaultTier) {
      for (const K8sPolicy& p : store_.k8s_policies) {
        bool types = ingress ? p.ingress : p.egress;
        if (types && p.ns == local.ns && p.pod_selector.matches(local.labels)) {
          pols.push_back({kK8sPolicyOrder, "knp.default." + p.name, p.ns, &p, nullptr});
        }
      }
    }
    for (const CalicoPolicy& p : store_.calico_policies) {
      if (p.tier == tier.name && calicoApplies(p)) {
        std::string name = p.name.starts_with(p.tier + ".") ? p.name : p.tier + "." + p.name;
        pols.push_back({p.order.value_or(kLast), name, p.ns, nullptr, &p});
      }
    }
    for (const AdminPolicy& p : store_.admin_policies) {
      if ((p.baseline ? "kube-baseline" : "kube-admin") != tier.name || !adminApplies(p)) continue;
      // Priority (a BANP has none: last), then the kind's Calico-style name.
      const char* prefix = p.kind == AdminKind::kAdmin      ? "kanp."
                           : p.kind == AdminKind::kBaseline ? "kbanp."
                                                            : "kcnp.";
      pols.push_back({p.priority ? double(*p.priority) : kLast, prefix + tier.name + "." + p.name,
                      "", nullptr, nullptr, &p});
    }
    if (pols.empty()) continue;  // the tier does not select the endpoint
    std::sort(pols.begin(), pols.end(), [](const PolRef& a, const PolRef& b) {
      return std::tie(a.order, a.name, a.ns) < std::tie(b.order, b.name, b.ns);
    });
    Result result = Result::kNoMatch;
    for (const PolRef& pr : pols) {
      if (pr.adm != nullptr) {
        // First matching rule decides: Allow/Accept, Deny, or Pass (the rest of the tier).
        const auto& rules = ingress ? pr.adm->ingress_rules : pr.adm->egress_rules;
        for (const AdminRule& r : rules) {
          if (!adminRuleMatches(r)) continue;
          result = r.action == Action::kAllow  ? Result::kAllow
                   : r.action == Action::kDeny ? Result::kDeny
                                               : Result::kPass;
          break;
        }
      } else if (pr.k8s != nullptr) {
        const auto& rules = ingress ? pr.k8s->ingress_rules : pr.k8s->egress_rules;
        for (const K8sRule& r : rules) {
          if (k8sRuleMatches(*pr.k8s, r)) {
            result = Result::kAllow;
            break;
          }
        }
      } else {
        const auto& rules = ingress ? pr.cal->ingress_rules : pr.cal->egress_rules;
        for (const CalicoRule& r : rules) {
          if (!calicoRuleMatches(*pr.cal, r)) continue;
          if (r.action == Action::kLog) continue;
          result = r.action == Action::kAllow  ? Result::kAllow
                   : r.action == Action::kDeny ? Result::kDeny
                                               : Result::kPass;
          break;
        }
      }
      if (result != Result::kNoMatch) break;
    }
    if (result == Result::kAllow) return true;
    if (result == Result::kDeny) return false;
    if (result == Result::kNoMatch && tier.def == Action::kDeny) return false;
    // Pass (by rule or by the tier's default): on to the next tier.
  }
  return true;
}

bool ReferenceEvaluator::connectionAllowed(const Flow& f) const {
  if (f.src.family() != f.dst.family()) return false;
  if (const Pod* src = podAt(f.src)) {
    if (!allows(Direction::kEgress, *src, f.src, f.dst, f.protocol, f.port)) return false;
  }
  if (const Pod* dst = podAt(f.dst)) {
    if (!allows(Direction::kIngress, *dst, f.dst, f.src, f.protocol, f.port)) return false;
  }
  return true;
}

}  // namespace zonewall::compiler
