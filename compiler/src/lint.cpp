#include "zonewall/compiler/lint.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>

namespace zonewall::compiler {

using namespace policy;  // NOLINT

namespace {

std::string cidrList(const std::vector<Cidr>& cs) {
  std::string s;
  for (const Cidr& c : cs) s += c.str() + ",";
  return s;
}

std::string portList(const std::vector<PortSpec>& ps) {
  std::string s;
  for (const PortSpec& p : ps) s += p.name.empty() ? fmt::format("{}:{},", p.lo, p.hi) : p.name + ",";
  return s;
}

std::string optSel(const std::optional<Selector>& s) { return s ? s->str() : "-"; }

std::string entityKey(const EntityRule& e) {
  return fmt::format("sel={};not={};ns={};nets={};notnets={};ports={};notports={}", optSel(e.selector),
                     optSel(e.not_selector), optSel(e.namespace_selector), cidrList(e.nets),
                     cidrList(e.not_nets), portList(e.ports), portList(e.not_ports));
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

// r1 decides at least everything r2 matches (conservatively: r1's every condition is absent or
// written identically in r2).
bool covers(const CalicoRule& r1, const CalicoRule& r2) {
  bool l4_ok = ruleMatchKey(r1) == "p=-1;np=-1;icmp=-;nicmp=-;ipv=0" || ruleMatchKey(r1) == ruleMatchKey(r2);
  bool src_ok = entityEmpty(r1.source) || entityKey(r1.source) == entityKey(r2.source);
  bool dst_ok = entityEmpty(r1.destination) || entityKey(r1.destination) == entityKey(r2.destination);
  return l4_ok && src_ok && dst_ok;
}

std::string k8sPeerKey(const K8sPeer& p) {
  std::string s = fmt::format("pod={};ns={};", optSel(p.pod_selector), optSel(p.namespace_selector));
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

bool k8sCovers(const K8sRule& r1, const K8sRule& r2) {
  auto peers = [](const K8sRule& r) {
    std::vector<std::string> v;
    for (const K8sPeer& p : r.peers) v.push_back(k8sPeerKey(p));
    std::sort(v.begin(), v.end());
    return v;
  };
  bool peers_ok = r1.peers.empty();
  if (!peers_ok && !r2.peers.empty()) {
    auto p1 = peers(r1);
    auto p2 = peers(r2);
    peers_ok = std::includes(p1.begin(), p1.end(), p2.begin(), p2.end());
  }
  bool ports_ok = r1.ports.empty() || k8sPortsKey(r1.ports) == k8sPortsKey(r2.ports);
  return peers_ok && ports_ok;
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
  }

 private:
  bool nothing(const AddrExprPtr& e) {
    AddrSet s = inv_.evaluate(*e);
    return s.pods.none() && s.ranges.empty();
  }

  void checkSelectors() {
    for (const K8sPolicy& p : store_.k8s_policies) {
      if (nothing(exprEndpoints(p.pod_selector, Scope{Scope::Kind::kNamespace, p.ns, {}}, false))) {
        diags_.warning(p.loc, fmt::format("NetworkPolicy {} selects no pod ({} in namespace {})", p.key(),
                                          p.pod_selector.str(), p.ns),
                       "policy-selects-nothing");
      }
      for (const auto* rules : {&p.ingress_rules, &p.egress_rules}) {
        for (const K8sRule& r : *rules) {
          for (const K8sPeer& peer : r.peers) {
            if (peer.ip_block) continue;
            if (peer.namespace_selector) {
              bool any_ns = std::any_of(inv_.namespaces().begin(), inv_.namespaces().end(), [&](const std::string& n) {
                return inv_.namespaceMatches(*peer.namespace_selector, n, false);
              });
              if (!any_ns) {
                diags_.warning(peer.loc, fmt::format("namespaceSelector {} matches no namespace",
                                                     peer.namespace_selector->str()),
                               "selector-matches-nothing");
                continue;
              }
            }
            Scope scope = peer.namespace_selector
                              ? Scope{Scope::Kind::kNamespaces, {}, *peer.namespace_selector}
                              : Scope{Scope::Kind::kNamespace, p.ns, {}};
            if (nothing(exprEndpoints(peer.pod_selector.value_or(Selector::all()), scope, false))) {
              diags_.warning(peer.loc, fmt::format("peer matches no pod (podSelector {}{})",
                                                   optSel(peer.pod_selector),
                                                   peer.namespace_selector ? ", namespaceSelector " +
                                                                                 peer.namespace_selector->str()
                                                                           : " in namespace " + p.ns),
                             "selector-matches-nothing");
            }
          }
        }
      }
    }
    for (const CalicoPolicy& p : store_.calico_policies) {
      Scope scope{Scope::Kind::kNamespace, p.ns, {}};
      if (p.global) {
        scope = p.namespace_selector ? Scope{Scope::Kind::kNamespaces, {}, *p.namespace_selector}
                                     : Scope{Scope::Kind::kAllAndGlobalSets, {}, {}};
      }
      AddrSet sel = inv_.evaluate(*exprEndpoints(p.selector, scope, true));
      if (sel.pods.none()) {
        diags_.warning(p.loc, fmt::format("policy {} selects no pod ({})", p.key(), p.selector.str()),
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
    Scope scope{Scope::Kind::kNamespace, p.ns, {}};
    if (e.namespace_selector) {
      if (e.namespace_selector->root().op == SelectorNode::Op::kGlobal) {
        scope = Scope{Scope::Kind::kGlobalSets, {}, {}};
      } else {
        scope = Scope{Scope::Kind::kNamespaces, {}, *e.namespace_selector};
      }
    } else if (p.global) {
      scope = Scope{Scope::Kind::kAllAndGlobalSets, {}, {}};
    }
    for (const auto* s : {&e.selector, &e.not_selector}) {
      if (*s && nothing(exprEndpoints(**s, scope, true))) {
        diags_.warning(e.loc, fmt::format("selector {} matches no endpoint", (*s)->str()),
                       "selector-matches-nothing");
      }
    }
    if (e.namespace_selector && !e.selector && !e.not_selector &&
        nothing(exprEndpoints(Selector::all(), scope, true))) {
      diags_.warning(e.loc, fmt::format("namespaceSelector {} matches no endpoint", e.namespace_selector->str()),
                     "selector-matches-nothing");
    }
  }

  struct Ordered {
    double order;
    std::string name;
    std::string ns;
    const CalicoPolicy* cal;
    const K8sPolicy* k8s;
  };

  std::map<std::string, std::vector<Ordered>> tiers() {
    std::map<std::string, std::vector<Ordered>> by_tier;
    for (const CalicoPolicy& p : store_.calico_policies) {
      std::string name = p.name.starts_with(p.tier + ".") ? p.name : p.tier + "." + p.name;
      by_tier[p.tier].push_back({p.order.value_or(std::numeric_limits<double>::infinity()), name, p.ns, &p, nullptr});
    }
    for (const K8sPolicy& p : store_.k8s_policies) {
      by_tier[kDefaultTier].push_back({kK8sPolicyOrder, "knp.default." + p.name, p.ns, nullptr, &p});
    }
    for (auto& [t, v] : by_tier) {
      std::sort(v.begin(), v.end(), [](const Ordered& a, const Ordered& b) {
        return std::tie(a.order, a.name, a.ns) < std::tie(b.order, b.name, b.ns);
      });
    }
    return by_tier;
  }

  // P1 applies to at least every endpoint P2 applies to.
  static bool selectsSuperset(const CalicoPolicy& p1, const CalicoPolicy& p2) {
    bool scope_ok = p1.global ? !p1.namespace_selector || (p2.global && p2.namespace_selector &&
                                                            p2.namespace_selector->str() == p1.namespace_selector->str())
                              : (!p2.global && p2.ns == p1.ns);
    return scope_ok && (p1.selector.isAll() || p1.selector.str() == p2.selector.str());
  }

  void checkShadowing() {
    for (const auto& [tier, pols] : tiers()) {
      for (size_t j = 0; j < pols.size(); ++j) {
        if (pols[j].cal) {
          checkCalicoShadowing(pols, j);
        } else {
          checkK8sShadowing(pols, j);
        }
      }
    }
  }

  void checkCalicoShadowing(const std::vector<Ordered>& pols, size_t j) {
    const CalicoPolicy& p2 = *pols[j].cal;
    for (int dir = 0; dir < 2; ++dir) {
      const auto& rules2 = dir == 0 ? p2.ingress_rules : p2.egress_rules;
      if (!(dir == 0 ? p2.ingress : p2.egress)) continue;
      for (size_t b = 0; b < rules2.size(); ++b) {
        if (rules2[b].action == Action::kLog) continue;
        bool reported = false;
        for (size_t i = 0; i <= j && !reported; ++i) {
          if (!pols[i].cal) continue;
          const CalicoPolicy& p1 = *pols[i].cal;
          if (!(dir == 0 ? p1.ingress : p1.egress)) continue;
          if (i != j && !selectsSuperset(p1, p2)) continue;
          const auto& rules1 = dir == 0 ? p1.ingress_rules : p1.egress_rules;
          size_t limit = i == j ? b : rules1.size();
          for (size_t a = 0; a < limit; ++a) {
            if (rules1[a].action == Action::kLog || !covers(rules1[a], rules2[b])) continue;
            diags_.warning(rules2[b].loc,
                           fmt::format("{} rule {} of {} is never reached: {} rule {} of {} ({}) decides "
                                       "the same traffic first ({})",
                                       dir == 0 ? "ingress" : "egress", b, p2.key(),
                                       dir == 0 ? "ingress" : "egress", a, p1.key(), rules1[a].loc.str(),
                                       actionName(rules1[a].action)),
                           "shadowed-rule");
            reported = true;
            break;
          }
        }
      }
    }
  }

  void checkK8sShadowing(const std::vector<Ordered>& pols, size_t j) {
    const K8sPolicy& p2 = *pols[j].k8s;
    for (int dir = 0; dir < 2; ++dir) {
      if (!(dir == 0 ? p2.ingress : p2.egress)) continue;
      const auto& rules2 = dir == 0 ? p2.ingress_rules : p2.egress_rules;
      for (size_t b = 0; b < rules2.size(); ++b) {
        bool reported = false;
        for (size_t i = 0; i <= j && !reported; ++i) {
          if (!pols[i].k8s) continue;
          const K8sPolicy& p1 = *pols[i].k8s;
          if (!(dir == 0 ? p1.ingress : p1.egress) || p1.ns != p2.ns ||
              !(p1.pod_selector.isAll() || p1.pod_selector.str() == p2.pod_selector.str())) {
            continue;
          }
          const auto& rules1 = dir == 0 ? p1.ingress_rules : p1.egress_rules;
          size_t limit = i == j ? b : rules1.size();
          for (size_t a = 0; a < limit; ++a) {
            if (!k8sCovers(rules1[a], rules2[b])) continue;
            diags_.warning(rules2[b].loc,
                           fmt::format("{} rule {} of NetworkPolicy {} adds nothing: {} rule {} of "
                                       "NetworkPolicy {} ({}) already allows that traffic",
                                       dir == 0 ? "ingress" : "egress", b, p2.key(),
                                       dir == 0 ? "ingress" : "egress", a, p1.key(), rules1[a].loc.str()),
                           "shadowed-rule");
            reported = true;
            break;
          }
        }
      }
    }
  }

  void checkPassInLastTier() {
    // The last tier in evaluation order that holds any policy: a Pass there falls through
    // to the namespace profile, which allows everything.
    std::vector<std::tuple<double, std::string, Action, SourceLoc>> order;
    bool has_default = false;
    for (const Tier& t : store_.tiers) {
      has_default = has_default || t.name == kDefaultTier;
      order.push_back({t.order.value_or(t.name == kDefaultTier ? kDefaultTierOrder
                                                               : std::numeric_limits<double>::infinity()),
                       t.name, t.default_action, t.loc});
    }
    if (!has_default) order.push_back({kDefaultTierOrder, kDefaultTier, Action::kDeny, {}});
    std::sort(order.begin(), order.end(), [](const auto& x, const auto& y) {
      return std::tie(std::get<0>(x), std::get<1>(x)) < std::tie(std::get<0>(y), std::get<1>(y));
    });
    auto by_tier = tiers();
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      const auto& [o, name, def, loc] = *it;
      auto pit = by_tier.find(name);
      if (pit == by_tier.end() || pit->second.empty()) continue;
      if (def == Action::kPass) {
        diags_.warning(loc, fmt::format("tier {} is the last tier and its defaultAction is Pass: "
                                        "unmatched traffic is allowed by the namespace profile",
                                        name),
                       "pass-in-last-tier");
      }
      for (const Ordered& p : pit->second) {
        if (!p.cal) continue;
        for (const auto* rules : {&p.cal->ingress_rules, &p.cal->egress_rules}) {
          for (const CalicoRule& r : *rules) {
            if (r.action == Action::kPass) {
              diags_.warning(r.loc, fmt::format("Pass in {}, which is in the last tier ({}): the "
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
              diags_.info(a.loc,
                          fmt::format("this peer requires both: pods matching {} in namespaces matching {}; "
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
              diags_.warning(b.loc,
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
            diags_.warning(peer.loc, fmt::format("NetworkPolicy {} allows ingress from {} (the whole internet)",
                                                 p.key(), peer.ip_block->cidr.str()),
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
            diags_.warning(r.loc, fmt::format("{} allows ingress from {} (the whole internet)", p.key(), c.str()),
                           "allow-from-world");
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
      {"k8s-peer-split", "namespaceSelector and podSelector written as two peers (OR), likely meant as one (AND)."},
      {"k8s-peer-and", "namespaceSelector and podSelector in one peer (AND): both must match."},
      {"allow-from-world", "Ingress allowed from 0.0.0.0/0 or ::/0."},
  };
  return rules;
}

void lint(const Store& store, const Inventory& inventory, Diagnostics& diags) {
  Linter(store, inventory, diags).run();
}

}  // namespace zonewall::compiler
