#include "zonewall/compiler/lint.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>
#include <type_traits>
#include <variant>

namespace zonewall::compiler {

using namespace policy;  // NOLINT

namespace {

bool sameKindAs(const K8sPolicy&, const K8sPolicy&) { return true; }
bool sameKindAs(const CalicoPolicy& a, const CalicoPolicy& b) { return a.global == b.global; }

std::string cidrList(const std::vector<Cidr>& cs) {
  std::string s;
  for (const Cidr& c : cs) s += c.str() + ",";
  return s;
}

std::string portList(const std::vector<PortSpec>& ps) {
  std::string s;
  for (const PortSpec& p : ps)
    s += p.name.empty() ? fmt::format("{}:{},", p.lo, p.hi) : p.name + ",";
  return s;
}

std::string optSel(const std::optional<Selector>& s) { return s ? s->str() : "-"; }

std::string entityKey(const EntityRule& e) {
  return fmt::format("sel={};not={};ns={};nets={};notnets={};ports={};notports={}",
                     optSel(e.selector), optSel(e.not_selector), optSel(e.namespace_selector),
                     cidrList(e.nets), cidrList(e.not_nets), portList(e.ports),
                     portList(e.not_ports));
}

std::string ruleMatchKey(const CalicoRule& r) {
  auto icmp = [](const std::optional<IcmpMatch>& m) {
    return m ? fmt::format("{}/{}", m->type, m->code ? int(*m->code) : -1) : std::string("-");
  };
  return fmt::format("p={};np={};icmp={};nicmp={};ipv={}", r.protocol ? int(*r.protocol) : -1,
                     r.not_protocol ? int(*r.not_protocol) : -1, icmp(r.icmp), icmp(r.not_icmp),
                     r.ip_version ? int(*r.ip_version) : 0);
}

bool entityEmpty(const EntityRule& e) { return e.empty(); }

std::string k8sPeerKey(const K8sPeer& p) {
  std::string s =
      fmt::format("pod={};ns={};", optSel(p.pod_selector), optSel(p.namespace_selector));
  if (p.ip_block) s += "ip=" + p.ip_block->cidr.str() + "-" + cidrList(p.ip_block->except);
  return s;
}

std::string k8sPortsKey(const std::vector<K8sPort>& ports) {
  std::vector<std::string> parts;
  for (const K8sPort& p : ports) {
    parts.push_back(fmt::format("{}/{}/{}/{}", p.protocol, p.port ? int(*p.port) : -1, p.name,
                                p.end_port ? int(*p.end_port) : -1));
  }
  std::sort(parts.begin(), parts.end());
  std::string s;
  for (const auto& p : parts) s += p + ",";
  return s;
}

bool isWorld(const Cidr& c) { return c.prefix == 0; }

class Linter {
 public:
  Linter(const Store& s, const Inventory& inv, Diagnostics& d) : store_(s), inv_(inv), diags_(d) {}

  void run() {
    if (store_.hasInventory()) checkSelectors();
    checkShadowing();
    checkPassInLastTier();
    checkK8sPeers();
    checkWorld();
    checkAdmin();
  }

 private:
  bool nothing(const AddrExprPtr& e) {
    AddrSet s = inv_.evaluate(*e);
    return s.pods.none() && s.ranges.empty();
  }

  void checkSelectors() {
    for (const K8sPolicy& p : store_.k8s_policies) {
      if (nothing(exprEndpoints(p.pod_selector, Scope{Scope::Kind::kNamespace, p.ns, {}}, false))) {
        diags_.warning(p.loc,
                       fmt::format("NetworkPolicy {} selects no pod ({} in namespace {})", p.key(),
                                   p.pod_selector.str(), p.ns),
                       "policy-selects-nothing");
      }
      for (const auto* rules : {&p.ingress_rules, &p.egress_rules}) {
        for (const K8sRule& r : *rules) {
          for (const K8sPeer& peer : r.peers) {
            if (peer.ip_block) continue;
            if (peer.namespace_selector) {
              bool any_ns = std::any_of(
                  inv_.namespaces().begin(), inv_.namespaces().end(), [&](const std::string& n) {
                    return inv_.namespaceMatches(*peer.namespace_selector, n, false);
                  });
              if (!any_ns) {
                diags_.warning(peer.loc,
                               fmt::format("namespaceSelector {} matches no namespace",
                                           peer.namespace_selector->str()),
                               "selector-matches-nothing");
                continue;
              }
            }
            if (nothing(exprEndpoints(peer.pod_selector.value_or(Selector::all()),
                                      peerScope(peer, p.ns), false))) {
              diags_.warning(
                  peer.loc,
                  fmt::format("peer matches no pod (podSelector {}{})", optSel(peer.pod_selector),
                              peer.namespace_selector
                                  ? ", namespaceSelector " + peer.namespace_selector->str()
                                  : " in namespace " + p.ns),
                  "selector-matches-nothing");
            }
          }
        }
      }
    }
    for (const CalicoPolicy& p : store_.calico_policies) {
      AddrSet sel = inv_.evaluate(*exprEndpoints(p.selector, policyScope(p), true));
      if (sel.pods.none()) {
        diags_.warning(p.loc,
                       fmt::format("policy {} selects no pod ({})", p.key(), p.selector.str()),
                       "policy-selects-nothing");
      }
      for (const auto* rules : {&p.ingress_rules, &p.egress_rules}) {
        for (const CalicoRule& r : *rules) {
          for (const EntityRule* e : {&r.source, &r.destination}) {
            checkEntity(p, *e);
          }
        }
      }
    }
  }

  void checkEntity(const CalicoPolicy& p, const EntityRule& e) {
    const Scope scope = entityScope(e, p);
    for (const auto* s : {&e.selector, &e.not_selector}) {
      if (*s && nothing(exprEndpoints(**s, scope, true))) {
        diags_.warning(e.loc, fmt::format("selector {} matches no endpoint", (*s)->str()),
                       "selector-matches-nothing");
      }
    }
    if (e.namespace_selector && !e.selector && !e.not_selector &&
        nothing(exprEndpoints(Selector::all(), scope, true))) {
      diags_.warning(
          e.loc,
          fmt::format("namespaceSelector {} matches no endpoint", e.namespace_selector->str()),
          "selector-matches-nothing");
    }
  }

  struct Ordered {
    PolicyOrder where;
    const CalicoPolicy* cal;
    const K8sPolicy* k8s;
  };

  // Every tier's policies in evaluation order (policyOrder), by tier name.
  std::map<std::string, std::vector<Ordered>> tiers() {
    std::map<std::string, std::vector<Ordered>> by_tier;
    for (const CalicoPolicy& p : store_.calico_policies) {
      by_tier[p.tier].push_back({policyOrder(p), &p, nullptr});
    }
    for (const K8sPolicy& p : store_.k8s_policies) {
      by_tier[kDefaultTier].push_back({policyOrder(p), nullptr, &p});
    }
    for (auto& [t, v] : by_tier) {
      std::sort(v.begin(), v.end(),
                [](const Ordered& a, const Ordered& b) { return a.where < b.where; });
    }
    return by_tier;
  }

  // Shadowing, per tier: a rule is shadowed when an earlier deciding rule (same direction) of
  // a policy that selects at least the same endpoints matches at least the same traffic.
  // Conservatively: the earlier policy selects all() or the same selector in the same scope,
  // and each of the earlier rule's conditions is absent or written identically. Candidates
  // are bucketed by scope, so the check stays near-linear for thousands of policies.
  struct RuleKeys {
    bool decides;  // Allow, Deny or Pass (not Log)
    bool l4_any;
    std::string l4;
    bool src_any;
    std::string src;
    bool dst_any;
    std::string dst;
  };
  static RuleKeys keysOf(const CalicoRule& r) {
    std::string l4 = ruleMatchKey(r);
    return {r.action != Action::kLog,
            l4 == "p=-1;np=-1;icmp=-;nicmp=-;ipv=0",
            l4,
            entityEmpty(r.source),
            entityKey(r.source),
            entityEmpty(r.destination),
            entityKey(r.destination)};
  }
  static bool covers(const RuleKeys& a, const RuleKeys& b) {
    return a.decides && (a.l4_any || a.l4 == b.l4) && (a.src_any || a.src == b.src) &&
           (a.dst_any || a.dst == b.dst);
  }
  static std::string scopeKey(const CalicoPolicy& p) {
    if (!p.global) return "ns/" + p.ns;
    return p.namespace_selector ? "gns/" + p.namespace_selector->str() : "global";
  }

  void checkShadowing() {
    for (const auto& [tier, pols] : tiers()) {
      checkCalicoShadowing(pols);
      checkK8sShadowing(pols);
    }
  }

  void checkCalicoShadowing(const std::vector<Ordered>& pols) {
    for (int dir = 0; dir < 2; ++dir) {
      // (scope, selector text) -> earlier policies' rules, in order
      struct Earlier {
        const CalicoPolicy* pol;
        size_t index;
        RuleKeys keys;
      };
      std::map<std::pair<std::string, std::string>, std::vector<Earlier>> seen;
      for (const Ordered& o : pols) {
        if (!o.cal) continue;
        const CalicoPolicy& p2 = *o.cal;
        if (!(dir == 0 ? p2.ingress : p2.egress)) continue;
        const auto& rules2 = dir == 0 ? p2.ingress_rules : p2.egress_rules;
        std::vector<RuleKeys> keys2;
        for (const CalicoRule& r : rules2) keys2.push_back(keysOf(r));
        std::string scope = scopeKey(p2);
        // Earlier policies of the same scope with all() or the same selector, and global
        // all() policies, which select every endpoint.
        const std::vector<Earlier>* buckets[] = {nullptr, nullptr, nullptr};
        if (auto it = seen.find({scope, "all()"}); it != seen.end()) buckets[0] = &it->second;
        if (!p2.selector.isAll()) {
          if (auto it = seen.find({scope, p2.selector.str()}); it != seen.end())
            buckets[1] = &it->second;
        }
        if (scope != "global") {
          if (auto it = seen.find({"global", "all()"}); it != seen.end()) buckets[2] = &it->second;
        }
        for (size_t b = 0; b < rules2.size(); ++b) {
          if (!keys2[b].decides) continue;
          const CalicoPolicy* by = nullptr;
          size_t by_index = 0;
          const CalicoRule* by_rule = nullptr;
          for (size_t a = 0; a < b && !by; ++a) {
            if (covers(keys2[a], keys2[b])) {
              by = &p2;
              by_index = a;
              by_rule = &rules2[a];
            }
          }
          for (const auto* bucket : buckets) {
            if (by || !bucket) continue;
            for (const Earlier& e : *bucket) {
              if (covers(e.keys, keys2[b])) {
                by = e.pol;
                by_index = e.index;
                by_rule = &(dir == 0 ? e.pol->ingress_rules : e.pol->egress_rules)[e.index];
                break;
              }
            }
          }
          if (by) {
            diags_.warning(
                rules2[b].loc,
                fmt::format(
                    "{} rule {} of {} is never reached: {} rule {} of {} ({}) decides the same "
                    "traffic first ({})",
                    dir == 0 ? "ingress" : "egress", b, p2.key(), dir == 0 ? "ingress" : "egress",
                    by_index, by->key(), by_rule->loc.str(), actionName(by_rule->action)),
                "shadowed-rule");
          }
        }
        auto& mine = seen[{scope, p2.selector.str()}];
        for (size_t b = 0; b < rules2.size(); ++b) {
          if (keys2[b].decides) mine.push_back({&p2, b, keys2[b]});
        }
      }
    }
  }

  struct K8sKeys {
    bool any_peer;
    std::vector<std::string> peers;  // sorted
    bool any_port;
    std::string ports;
  };
  static K8sKeys keysOf(const K8sRule& r) {
    K8sKeys k{r.peers.empty(), {}, r.ports.empty(), k8sPortsKey(r.ports)};
    for (const K8sPeer& p : r.peers) k.peers.push_back(k8sPeerKey(p));
    std::sort(k.peers.begin(), k.peers.end());
    return k;
  }
  static bool covers(const K8sKeys& a, const K8sKeys& b) {
    bool peers = a.any_peer || (!b.any_peer && std::includes(a.peers.begin(), a.peers.end(),
                                                             b.peers.begin(), b.peers.end()));
    return peers && (a.any_port || a.ports == b.ports);
  }

  void checkK8sShadowing(const std::vector<Ordered>& pols) {
    for (int dir = 0; dir < 2; ++dir) {
      struct Earlier {
        const K8sPolicy* pol;
        size_t index;
        K8sKeys keys;
      };
      std::map<std::pair<std::string, std::string>, std::vector<Earlier>> seen;
      for (const Ordered& o : pols) {
        if (!o.k8s) continue;
        const K8sPolicy& p2 = *o.k8s;
        if (!(dir == 0 ? p2.ingress : p2.egress)) continue;
        const auto& rules2 = dir == 0 ? p2.ingress_rules : p2.egress_rules;
        std::vector<K8sKeys> keys2;
        for (const K8sRule& r : rules2) keys2.push_back(keysOf(r));
        const std::vector<Earlier>* buckets[] = {nullptr, nullptr};
        if (auto it = seen.find({p2.ns, "all()"}); it != seen.end()) buckets[0] = &it->second;
        if (!p2.pod_selector.isAll()) {
          if (auto it = seen.find({p2.ns, p2.pod_selector.str()}); it != seen.end())
            buckets[1] = &it->second;
        }
        for (size_t b = 0; b < rules2.size(); ++b) {
          const K8sPolicy* by = nullptr;
          size_t by_index = 0;
          for (size_t a = 0; a < b && !by; ++a) {
            if (covers(keys2[a], keys2[b])) {
              by = &p2;
              by_index = a;
            }
          }
          for (const auto* bucket : buckets) {
            if (by || !bucket) continue;
            for (const Earlier& e : *bucket) {
              if (covers(e.keys, keys2[b])) {
                by = e.pol;
                by_index = e.index;
                break;
              }
            }
          }
          if (by) {
            const auto& r1 = (dir == 0 ? by->ingress_rules : by->egress_rules)[by_index];
            diags_.warning(
                rules2[b].loc,
                fmt::format(
                    "{} rule {} of NetworkPolicy {} adds nothing: {} rule {} of NetworkPolicy {} "
                    "({}) already allows that traffic",
                    dir == 0 ? "ingress" : "egress", b, p2.key(), dir == 0 ? "ingress" : "egress",
                    by_index, by->key(), r1.loc.str()),
                "shadowed-rule");
          }
        }
        auto& mine = seen[{p2.ns, p2.pod_selector.str()}];
        for (size_t b = 0; b < rules2.size(); ++b) mine.push_back({&p2, b, keys2[b]});
      }
    }
  }

  void checkPassInLastTier() {
    // The last tier in evaluation order that holds any policy: a Pass there falls through
    // to the namespace profile, which allows everything.
    const std::vector<TierInOrder> order = tiersInOrder(store_);
    auto by_tier = tiers();
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const auto& [o, name, def, loc] = *it;
      auto pit = by_tier.find(name);
      if (pit == by_tier.end() || pit->second.empty()) continue;
      if (def == Action::kPass) {
        diags_.warning(loc,
                       fmt::format("tier {} is the last tier and its defaultAction is Pass: "
                                   "unmatched traffic is allowed by the namespace profile",
                                   name),
                       "pass-in-last-tier");
      }
      for (const Ordered& p : pit->second) {
        if (!p.cal) continue;
        for (const auto* rules : {&p.cal->ingress_rules, &p.cal->egress_rules}) {
          for (const CalicoRule& r : *rules) {
            if (r.action == Action::kPass) {
              diags_.warning(r.loc,
                             fmt::format("Pass in {}, which is in the last tier ({}): the "
                                         "traffic skips to the namespace profile and is allowed",
                                         p.cal->key(), name),
                             "pass-in-last-tier");
            }
          }
        }
      }
      break;
    }
  }

  void checkK8sPeers() {
    for (const K8sPolicy& p : store_.k8s_policies) {
      for (const auto* rules : {&p.ingress_rules, &p.egress_rules}) {
        for (const K8sRule& r : *rules) {
          for (size_t i = 0; i < r.peers.size(); ++i) {
            const K8sPeer& a = r.peers[i];
            if (a.pod_selector && a.namespace_selector) {
              diags_.info(
                  a.loc,
                  fmt::format(
                      "this peer requires both: pods matching {} in namespaces matching {}; "
                      "if either should do, write them as two peers",
                      a.pod_selector->str(), a.namespace_selector->str()),
                  "k8s-peer-and");
            }
            if (i + 1 >= r.peers.size()) continue;
            const K8sPeer& b = r.peers[i + 1];
            bool a_ns_only = a.namespace_selector && !a.pod_selector && !a.ip_block;
            bool a_pod_only = a.pod_selector && !a.namespace_selector && !a.ip_block;
            bool b_ns_only = b.namespace_selector && !b.pod_selector && !b.ip_block;
            bool b_pod_only = b.pod_selector && !b.namespace_selector && !b.ip_block;
            if ((a_ns_only && b_pod_only) || (a_pod_only && b_ns_only)) {
              const K8sPeer& ns = a_ns_only ? a : b;
              const K8sPeer& pod = a_ns_only ? b : a;
              diags_.warning(
                  b.loc,
                  fmt::format("two peers: every pod in namespaces matching {}, OR pods matching {} "
                              "in namespace {}; if you meant pods matching {} in those "
                              "namespaces, put both selectors in one peer (drop the '-')",
                              ns.namespace_selector->str(), pod.pod_selector->str(), p.ns,
                              pod.pod_selector->str()),
                  "k8s-peer-split");
            }
          }
        }
      }
    }
  }

  void checkWorld() {
    for (const K8sPolicy& p : store_.k8s_policies) {
      if (!p.ingress) continue;
      for (const K8sRule& r : p.ingress_rules) {
        for (const K8sPeer& peer : r.peers) {
          if (peer.ip_block && isWorld(peer.ip_block->cidr)) {
            diags_.warning(
                peer.loc,
                fmt::format("NetworkPolicy {} allows ingress from {} (the whole internet)", p.key(),
                            peer.ip_block->cidr.str()),
                "allow-from-world");
          }
        }
      }
    }
    for (const CalicoPolicy& p : store_.calico_policies) {
      if (!p.ingress) continue;
      for (const CalicoRule& r : p.ingress_rules) {
        if (r.action != Action::kAllow) continue;
        for (const Cidr& c : r.source.nets) {
          if (isWorld(c)) {
            diags_.warning(
                r.loc,
                fmt::format("{} allows ingress from {} (the whole internet)", p.key(), c.str()),
                "allow-from-world");
          }
        }
      }
    }
  }

  // ---- cluster-admin policy (ANP, BANP, CNP) ----

  static std::string adminPeerKey(const AdminPeer& p) {
    switch (p.kind) {
      case AdminPeer::Kind::kPods:
        return "pods:" + p.namespaces.str() + "/" + p.pods.str();
      case AdminPeer::Kind::kNodes:
        return "nodes:" + p.nodes.str();
      case AdminPeer::Kind::kNetworks:
        return "networks:" + cidrList(p.networks);
    }
    return "?";
  }

  // Whether every address `b` matches, `a` matches too (conservatively: the same peer, every
  // pod against a pod peer, or networks that contain b's).
  static bool peerCovers(const AdminPeer& a, const AdminPeer& b) {
    if (adminPeerKey(a) == adminPeerKey(b)) return true;
    if (a.kind == AdminPeer::Kind::kPods && b.kind == AdminPeer::Kind::kPods) {
      return a.namespaces.isAll() && a.pods.isAll();
    }
    if (a.kind == AdminPeer::Kind::kNetworks && b.kind == AdminPeer::Kind::kNetworks) {
      return std::all_of(b.networks.begin(), b.networks.end(), [&](const Cidr& nb) {
        return std::any_of(a.networks.begin(), a.networks.end(), [&](const Cidr& na) {
          return na.family == nb.family && na.prefix <= nb.prefix && na.contains(nb.base);
        });
      });
    }
    return false;
  }

  static bool portsCover(const std::vector<AdminPort>& a, const std::vector<AdminPort>& b) {
    if (a.empty()) return true;
    if (b.empty()) return false;
    return std::all_of(b.begin(), b.end(), [&](const AdminPort& pb) {
      return std::any_of(a.begin(), a.end(), [&](const AdminPort& pa) {
        if (!pa.name.empty() || !pb.name.empty()) return pa.name == pb.name;
        return pa.protocol == pb.protocol && pa.lo <= pb.lo && pb.hi <= pa.hi;
      });
    });
  }

  void checkAdmin() {
    // Priorities: upstream leaves equal priorities in a tier undefined.
    std::map<std::pair<bool, int>, const AdminPolicy*> by_priority;
    const AdminPolicy* banp = nullptr;
    for (const AdminPolicy& p : store_.admin_policies) {
      if (p.kind == AdminKind::kBaseline) {
        if (p.name != "default") {
          diags_.warning(p.loc,
                         fmt::format("BaselineAdminNetworkPolicy '{}': the API server accepts "
                                     "only the name 'default' (the singleton)",
                                     p.name),
                         "banp-name");
        }
        if (banp != nullptr) {
          diags_.warning(p.loc,
                         fmt::format("a second BaselineAdminNetworkPolicy ('{}' is at {}): the "
                                     "API allows one",
                                     banp->name, banp->loc.str()),
                         "banp-name");
        }
        banp = &p;
      }
      if (p.priority) {
        auto [it, fresh] = by_priority.try_emplace({p.baseline, *p.priority}, &p);
        if (!fresh) {
          diags_.warning(p.loc,
                         fmt::format("{} has priority {}, as {} (at {}) in the {} tier: upstream "
                                     "leaves their order undefined; zonewall takes them by name",
                                     p.display(), *p.priority, it->second->display(),
                                     it->second->loc.str(), p.baseline ? "Baseline" : "Admin"),
                         "admin-priority-tie");
        }
      }
      if (store_.hasInventory() &&
          nothing(exprEndpoints(
              p.subject.pods, Scope{Scope::Kind::kNamespaces, {}, p.subject.namespaces}, false))) {
        diags_.warning(p.loc, fmt::format("{} selects no pod of the inventory", p.display()),
                       "policy-selects-nothing");
      }
      for (const auto* rules : {&p.ingress_rules, &p.egress_rules}) {
        for (size_t i = 0; i < rules->size(); ++i) {
          const AdminRule& r = (*rules)[i];
          if (p.baseline && r.action == Action::kPass) {
            diags_.warning(r.loc,
                           fmt::format("Pass in the Baseline tier ({}): nothing comes after the "
                                       "baseline, so the traffic is allowed",
                                       p.display()),
                           "pass-in-baseline");
          }
          for (size_t j = 0; j < i; ++j) {
            const AdminRule& e = (*rules)[j];
            const bool covered =
                portsCover(e.ports, r.ports) &&
                std::all_of(r.peers.begin(), r.peers.end(), [&](const AdminPeer& pr) {
                  return std::any_of(e.peers.begin(), e.peers.end(),
                                     [&](const AdminPeer& pe) { return peerCovers(pe, pr); });
                });
            if (covered) {
              diags_.warning(r.loc,
                             fmt::format("rule {}{} of {} is never reached: rule {}{} at {} "
                                         "decides ({}) all its traffic first",
                                         i, r.name.empty() ? "" : " '" + r.name + "'", p.display(),
                                         j, e.name.empty() ? "" : " '" + e.name + "'", e.loc.str(),
                                         actionName(e.action)),
                             "shadowed-rule");
              break;
            }
          }
        }
      }
    }
  }

  const Store& store_;
  const Inventory& inv_;
  Diagnostics& diags_;
};

}  // namespace

const std::vector<LintRule>& lintRules() {
  static const std::vector<LintRule> rules = {
      {"yaml-syntax", "The file is not valid YAML."},
      {"invalid-object", "A document is not a Kubernetes or Calico object zonewall knows."},
      {"unknown-kind", "The kind/apiVersion is not one zonewall reads."},
      {"missing-field", "A required field is missing."},
      {"invalid-field", "A field has a value of the wrong type or outside its allowed set."},
      {"unknown-field", "A field the API does not define (often a typo that changes meaning)."},
      {"unsupported-field", "A field zonewall does not implement; the policy is refused."},
      {"invalid-selector", "A selector expression does not parse."},
      {"invalid-cidr", "A CIDR does not parse or an except is not inside its cidr."},
      {"cidr-host-bits", "A CIDR has host bits set."},
      {"invalid-port", "A port, port range, endPort or port name is invalid."},
      {"invalid-port-name", "A container port name is not an IANA service name."},
      {"out-of-range", "A number is outside its allowed range."},
      {"invalid-protocol", "An unknown or disallowed protocol."},
      {"invalid-peer", "A NetworkPolicy peer is malformed."},
      {"invalid-rule", "A Calico rule combines fields that cannot go together."},
      {"invalid-action", "A Calico rule action is not Allow, Deny, Pass or Log."},
      {"invalid-ip", "A pod IP does not parse."},
      {"duplicate-name", "Two objects of one kind share a name."},
      {"duplicate-ip", "Two pods share an IP."},
      {"unknown-tier", "A policy names a tier that is not defined."},
      {"ignored-rules", "Rules of a direction the policy's types do not include."},
      {"never-matches", "A rule condition can never be true."},
      {"selector-matches-nothing", "A rule's selector matches no endpoint of the inventory."},
      {"policy-selects-nothing", "A policy selects no pod of the inventory."},
      {"shadowed-rule", "A rule is never reached: an earlier rule decides the same traffic."},
      {"pass-in-last-tier", "A Pass in the last tier lets traffic through to the profile (allow)."},
      {"k8s-peer-split",
       "namespaceSelector and podSelector written as two peers (OR), likely meant as one (AND)."},
      {"k8s-peer-and", "namespaceSelector and podSelector in one peer (AND): both must match."},
      {"allow-from-world", "Ingress allowed from 0.0.0.0/0 or ::/0."},
      {"staged-policy", "A staged policy: never enforced; what promoting it would do."},
      {"staged-delete-missing", "A staged Delete names a policy that is not defined."},
      {"admin-priority-tie",
       "Two cluster-admin policies of one tier share a priority: upstream leaves their order "
       "undefined."},
      {"banp-name", "A BaselineAdminNetworkPolicy not named 'default', or more than one."},
      {"pass-in-baseline",
       "A Pass in the Baseline tier: the traffic goes on to the default allow."},
  };
  return rules;
}

void lint(const Store& store, const Inventory& inventory, Diagnostics& diags) {
  Linter(store, inventory, diags).run();
  if (store.staged.empty()) return;
  // Staged policies: what promoting each would do, and the findings that only the promoted
  // store has (a staged rule shadowed, a staged selector that picks nothing, ...).
  for (const StagedPolicy& s : store.staged) {
    const std::string target = s.target();
    auto exists = [&](const auto& list, const auto& p) {
      return std::any_of(list.begin(), list.end(),
                         [&](const auto& q) { return q.key() == p.key() && sameKindAs(q, p); });
    };
    const bool present = std::visit(
        [&](const auto& p) {
          if constexpr (std::is_same_v<std::decay_t<decltype(p)>, CalicoPolicy>) {
            return exists(store.calico_policies, p);
          } else {
            return exists(store.k8s_policies, p);
          }
        },
        s.policy);
    switch (s.action) {
      case StagedAction::kSet:
        diags.info(s.loc,
                   fmt::format("{} is not enforced; promoting it would {} {}", s.kind(),
                               present ? "replace" : "create", target),
                   "staged-policy");
        break;
      case StagedAction::kDelete:
        if (present) {
          diags.info(
              s.loc,
              fmt::format("{} is not enforced; promoting it would delete {}", s.kind(), target),
              "staged-policy");
        } else {
          diags.warning(s.loc,
                        fmt::format("{} would delete {}, which is not defined", s.kind(), target),
                        "staged-delete-missing");
        }
        break;
      case StagedAction::kLearn:
      case StagedAction::kIgnore:
        diags.info(s.loc,
                   fmt::format("{} with stagedAction {}: promoting it changes nothing", s.kind(),
                               stagedActionName(s.action)),
                   "staged-policy");
        break;
    }
  }
  Store promoted = promoteStaged(store);
  Inventory promoted_inventory(promoted);
  Diagnostics promoted_diags;
  Linter(promoted, promoted_inventory, promoted_diags).run();
  std::set<std::string> seen;
  for (const Diagnostic& d : diags.all()) seen.insert(d.str());
  for (const Diagnostic& d : promoted_diags.all()) {
    if (!seen.contains(d.str())) {
      diags.add(d.severity, d.loc, "if the staged policies were promoted: " + d.message, d.rule_id);
    }
  }
}

}  // namespace zonewall::compiler
