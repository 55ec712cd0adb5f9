#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "zonewall/compiler/program.h"

namespace zonewall::compiler {
namespace {

using namespace policy;  // NOLINT: the model's vocabulary is this file's vocabulary

std::vector<PortRange> normalize(std::vector<PortRange> in) {
  std::sort(in.begin(), in.end(), [](const PortRange& a, const PortRange& b) {
    return std::tie(a.lo, a.hi) < std::tie(b.lo, b.hi);
  });
  std::vector<PortRange> out;
  for (const PortRange& r : in) {
    if (!out.empty() && r.lo <= out.back().hi + 1) {
      out.back().hi = std::max(out.back().hi, r.hi);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// Linear in both (a rule may list 65,536 ranges).
std::vector<PortRange> intersectPorts(const std::vector<PortRange>& a,
                                      const std::vector<PortRange>& b) {
  const std::vector<PortRange> x = normalize(a);
  const std::vector<PortRange> y = normalize(b);
  std::vector<PortRange> out;
  for (size_t i = 0, j = 0; i < x.size() && j < y.size();) {
    std::uint16_t lo = std::max(x[i].lo, y[j].lo);
    std::uint16_t hi = std::min(x[i].hi, y[j].hi);
    if (lo <= hi) out.push_back({lo, hi});
    (x[i].hi < y[j].hi ? i : j) += 1;  // the one that ends first has nothing more to meet
  }
  return out;
}

// One clause per protocol range, its ports the union of the clauses' (a Kubernetes or admin
// rule lists each port as its own entry, up to 65,536 of them).
L4Match mergeClauses(const L4Match& in) {
  std::map<std::pair<Protocol, Protocol>, std::vector<PortRange>> by_proto;
  for (const L4Clause& c : in.clauses) {
    auto& ports = by_proto[{c.proto_lo, c.proto_hi}];
    ports.insert(ports.end(), c.ports.begin(), c.ports.end());
  }
  L4Match out;
  for (auto& [protos, ports] : by_proto) {
    out.clauses.push_back({protos.first, protos.second, normalize(std::move(ports))});
  }
  return out;
}

// In a tier: by order (missing = last), then Calico's internal name, then namespace.
bool policyBeforePtr(const LoweredPolicyPtr& a, const LoweredPolicyPtr& b) {
  return policyBefore(*a, *b);
}

// (name, protocol) -> every port number a pod of the inventory gives that name.
// The IP versions a Calico rule exists for, as Felix decides (felix/rules/policy.go,
// FilterRuleToIPVersion): not the other ipVersion; every non-empty nets/notNets list keeps a
// CIDR of the version; no notNets is that version's catch-all. An IPv4-only notNets rule
// does not exist for IPv6 traffic.
std::vector<Family> ruleFamilies(const CalicoRule& r) {
  std::vector<Family> out;
  for (Family f : {Family::kV4, Family::kV6}) {
    if (r.ip_version && *r.ip_version != f) continue;
    auto keeps = [f](const std::vector<Cidr>& nets, bool negated) {
      if (nets.empty()) return true;
      bool kept = false;
      for (const Cidr& c : nets) {
        if (c.family != f) continue;
        if (negated && c.prefix == 0) return false;
        kept = true;
      }
      return kept;
    };
    if (keeps(r.source.nets, false) && keeps(r.source.not_nets, true) &&
        keeps(r.destination.nets, false) && keeps(r.destination.not_nets, true)) {
      out.push_back(f);
    }
  }
  return out;
}

using NamedPortIndex = std::map<std::pair<std::string, Protocol>, std::set<std::uint16_t>>;

NamedPortIndex indexNamedPorts(const Store& store) {
  NamedPortIndex idx;
  for (const Pod& p : store.pods) {
    for (const NamedPort& np : p.ports) {
      if (!np.name.empty()) idx[{np.name, np.protocol}].insert(np.port);
    }
  }
  return idx;
}

}  // namespace

std::vector<PortRange> complementPorts(const std::vector<PortRange>& in) {
  std::vector<PortRange> out;
  int next = 0;
  for (const PortRange& r : in) {
    if (r.lo > next)
      out.push_back({static_cast<std::uint16_t>(next), static_cast<std::uint16_t>(r.lo - 1)});
    next = r.hi + 1;
  }
  if (next <= 65535) out.push_back({static_cast<std::uint16_t>(next), 65535});
  return out;
}

class ProgramBuilder::Impl {
 public:
  explicit Impl(const Store& store) : named_(indexNamedPorts(store)), nodes_(store.nodes) {}

  std::uint32_t nextUid() { return next_uid_++; }
  const NamedPortIndex& namedPorts() const { return named_; }

  /// One policy of any kind, under a uid of its own.
  template <class P>
  LoweredPolicyPtr lowerOne(const P& p) {
    auto pol = std::make_shared<LoweredPolicy>();
    pol->uid = nextUid();
    pol->key = ProgramBuilder::keyOf(p);
    add(*pol, p);
    return pol;
  }

 private:
  static std::uint32_t addAttribution(LoweredPolicy& pol, Attribution a) {
    pol.attributions.push_back(std::move(a));
    return static_cast<std::uint32_t>(pol.attributions.size() - 1);
  }

  Attribution ruleAttribution(const LoweredPolicy& pol, Direction d, int index, Action a,
                              const SourceLoc& loc, std::string rule_name = {}) {
    Attribution at;
    at.kind = Attribution::Kind::kRule;
    at.direction = d;
    at.policy = pol.display;
    at.tier = pol.tier;
    at.rule_index = index;
    at.action = a;
    at.loc = loc;
    at.rule_name = std::move(rule_name);
    return at;
  }

  // ---- Kubernetes ----

  AddrExprPtr k8sPeer(const K8sPeer& p, const std::string& ns) {
    if (p.ip_block) {
      AddrExprPtr in = exprCidrs({p.ip_block->cidr});
      if (p.ip_block->except.empty()) return in;
      return exprAnd({in, exprNot(exprCidrs(p.ip_block->except))});
    }
    return exprEndpoints(p.pod_selector.value_or(Selector::all()), peerScope(p, ns), false);
  }

  void add(LoweredPolicy& pol, const K8sPolicy& p) {
    pol.display = "NetworkPolicy " + p.key();
    PolicyOrder where = policyOrder(p);
    pol.order = where.order;
    pol.sort_name = std::move(where.name);
    pol.tier = kDefaultTier;
    pol.loc = p.loc;
    pol.ns = p.ns;
    pol.applies = exprEndpoints(p.pod_selector, Scope{Scope::Kind::kNamespace, p.ns, {}}, false);
    pol.applies_to[0] = p.ingress;
    pol.applies_to[1] = p.egress;
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const auto& rules = d == Direction::kIngress ? p.ingress_rules : p.egress_rules;
      if (!pol.applies_to[static_cast<int>(d)]) continue;
      for (size_t i = 0; i < rules.size(); ++i) {
        const K8sRule& r = rules[i];
        std::uint32_t attr = addAttribution(
            pol, ruleAttribution(pol, d, static_cast<int>(i), Action::kAllow, r.loc));
        std::vector<AddrExprPtr> peers;
        for (const K8sPeer& peer : r.peers) peers.push_back(k8sPeer(peer, p.ns));
        AddrExprPtr peer = r.peers.empty() ? exprAll() : exprOr(peers);
        auto& out = pol.rules[static_cast<int>(d)];
        if (r.ports.empty()) {
          out.push_back({Action::kAllow, exprAll(), peer, L4Match::any(), attr});
          continue;
        }
        L4Match numeric;
        std::set<std::pair<std::string, Protocol>> names;
        for (const K8sPort& port : r.ports) {
          if (!port.name.empty()) {
            names.insert({port.name, port.protocol});
            continue;
          }
          L4Clause c{port.protocol, port.protocol, {{0, 65535}}};
          if (port.port) c.ports = {{*port.port, port.end_port.value_or(*port.port)}};
          numeric.clauses.push_back(c);
        }
        if (!numeric.clauses.empty()) {
          out.push_back({Action::kAllow, exprAll(), peer, mergeClauses(numeric), attr});
        }
        for (const auto& [name, proto] : names) {
          addNamed(out, d, Action::kAllow, exprAll(), peer, name, proto, {}, attr);
        }
      }
    }
  }

  // One sub-rule per port number that `name` takes: narrowed to the pods declaring it, on
  // the side where the port lives (the destination: local for ingress, peer for egress).
  void addNamed(std::vector<LoweredRule>& out, Direction d, Action action, AddrExprPtr local,
                AddrExprPtr peer, const std::string& name, Protocol proto,
                const std::vector<PortRange>& not_ports, std::uint32_t attr) {
    auto it = named_.find({name, proto});
    if (it == named_.end()) return;  // no pod declares it: the port matches nothing
    for (std::uint16_t port : it->second) {
      std::vector<PortRange> ports = intersectPorts({{port, port}}, complementPorts(not_ports));
      if (ports.empty()) continue;
      AddrExprPtr np = exprNamedPort(name, proto, port);
      L4Match l4{{L4Clause{proto, proto, ports}}};
      if (d == Direction::kIngress) {
        out.push_back({action, exprAnd({local, np}), peer, l4, attr});
      } else {
        out.push_back({action, local, exprAnd({peer, np}), l4, attr});
      }
    }
  }

  // ---- network-policy-api (ANP, BANP, CNP) ----

  // Pods by namespace and pod labels as Kubernetes shows them (no Calico labels, no network
  // sets); nodes by their addresses as the inventory holds them now; networks as written.
  AddrExprPtr adminPeer(const AdminPeer& p) {
    switch (p.kind) {
      case AdminPeer::Kind::kPods:
        return exprEndpoints(p.pods, Scope{Scope::Kind::kNamespaces, {}, p.namespaces}, false);
      case AdminPeer::Kind::kNetworks:
        return exprCidrs(p.networks);
      case AdminPeer::Kind::kNodes: {
        std::vector<Cidr> addrs;
        for (const Node& n : nodes_) {
          if (!p.nodes.matches(n.labels)) continue;
          for (Addr a : n.addrs) addrs.push_back(hostCidr(a));
        }
        return addrs.empty() ? exprOr({}) : exprCidrs(addrs);
      }
    }
    return exprOr({});
  }

  void add(LoweredPolicy& pol, const AdminPolicy& p) {
    pol.display = p.priority
                      ? fmt::format("{} (tier {}, priority {})", p.display(), p.tier(), *p.priority)
                      : fmt::format("{} (tier {})", p.display(), p.tier());
    pol.tier = p.tier();
    pol.loc = p.loc;
    PolicyOrder where = policyOrder(p);
    pol.order = where.order;
    pol.sort_name = std::move(where.name);
    pol.applies = adminPeer(p.subject);
    // "CNPs with no ingress rules do not affect ingress traffic."
    pol.applies_to[0] = !p.ingress_rules.empty();
    pol.applies_to[1] = !p.egress_rules.empty();
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      const auto& rules = d == Direction::kIngress ? p.ingress_rules : p.egress_rules;
      auto& out = pol.rules[static_cast<int>(d)];
      for (size_t i = 0; i < rules.size(); ++i) {
        const AdminRule& r = rules[i];
        std::uint32_t attr = addAttribution(
            pol, ruleAttribution(pol, d, static_cast<int>(i), r.action, r.loc, r.name));
        std::vector<AddrExprPtr> peers;
        for (const AdminPeer& peer : r.peers) peers.push_back(adminPeer(peer));
        AddrExprPtr peer = exprOr(std::move(peers));
        if (r.ports.empty()) {
          out.push_back({r.action, exprAll(), peer, L4Match::any(), attr});
          continue;
        }
        L4Match numeric;
        std::set<std::string> names;
        for (const AdminPort& port : r.ports) {
          if (!port.name.empty()) {
            names.insert(port.name);
          } else {
            numeric.clauses.push_back({port.protocol, port.protocol, {{port.lo, port.hi}}});
          }
        }
        if (!numeric.clauses.empty()) {
          out.push_back({r.action, exprAll(), peer, mergeClauses(numeric), attr});
        }
        // A named port carries no protocol here: it matches whichever the pod gives it.
        for (const std::string& name : names) {
          for (Protocol proto : {kTcp, kUdp, kSctp}) {
            addNamed(out, d, r.action, exprAll(), peer, name, proto, {}, attr);
          }
        }
      }
    }
  }

  // ---- Calico ----

  // Calico's reading of an entity's selectors (libcalico-go updateprocessors/rules.go, then
  // Felix's rule_scanner.go): as soon as any selector field is used in a namespaced policy,
  // or a namespaceSelector anywhere, the entity matches the addresses of the endpoints and
  // network sets in scope that the selector picks and the notSelector does not — one IP set
  // of `sel && !notSel`. Only a GlobalNetworkPolicy's bare notSelector stands alone: then
  // any address outside every endpoint and network set it picks, anywhere, matches.
  AddrExprPtr entity(const EntityRule& e, const CalicoPolicy& p) {
    const Scope scope = entityScope(e, p);
    std::vector<AddrExprPtr> parts;
    const bool positive = e.selector || e.namespace_selector || (e.not_selector && !p.global);
    if (positive) {
      std::vector<std::shared_ptr<const SelectorNode>> terms;
      if (e.selector) terms.push_back(e.selector->rootPtr());
      if (e.not_selector) terms.push_back(selNot(e.not_selector->rootPtr()));
      parts.push_back(exprEndpoints(Selector::conjunction(std::move(terms)), scope, true));
    } else if (e.not_selector) {
      parts.push_back(exprNot(exprEndpoints(*e.not_selector, scope, true)));
    }
    if (!e.nets.empty()) parts.push_back(exprCidrs(e.nets));
    if (!e.not_nets.empty()) parts.push_back(exprNot(exprCidrs(e.not_nets)));
    return exprAnd(parts);
  }

  void add(LoweredPolicy& pol, const CalicoPolicy& p) {
    pol.display = (p.global ? "GlobalNetworkPolicy " : "Calico NetworkPolicy ") + p.key();
    pol.tier = p.tier;
    pol.loc = p.loc;
    pol.ns = p.global ? "" : p.ns;
    const Scope scope = policyScope(p);
    pol.applies = exprEndpoints(p.selector, scope, true);
    pol.applies_to[0] = p.ingress;
    pol.applies_to[1] = p.egress;
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      if (!pol.applies_to[static_cast<int>(d)]) continue;
      const auto& rules = d == Direction::kIngress ? p.ingress_rules : p.egress_rules;
      for (size_t i = 0; i < rules.size(); ++i) {
        lowerCalicoRule(pol, p, d, static_cast<int>(i), rules[i]);
      }
    }
    PolicyOrder where = policyOrder(p);
    pol.order = where.order;
    pol.sort_name = std::move(where.name);
  }

  void lowerCalicoRule(LoweredPolicy& pol, const CalicoPolicy& p, Direction d, int index,
                       const CalicoRule& r) {
    std::uint32_t attr = addAttribution(pol, ruleAttribution(pol, d, index, r.action, r.loc));
    const EntityRule& local_e = d == Direction::kIngress ? r.destination : r.source;
    const EntityRule& peer_e = d == Direction::kIngress ? r.source : r.destination;
    AddrExprPtr local = entity(local_e, p);
    AddrExprPtr peer = entity(peer_e, p);
    // Felix renders a rule only for the IP versions it can match (FilterRuleToIPVersion).
    const std::vector<Family> families = ruleFamilies(r);
    if (families.empty()) return;
    if (families.size() == 1) {
      local = exprAnd({local, exprFamily(families[0])});
      peer = exprAnd({peer, exprFamily(families[0])});
    }
    // Protocols.
    std::vector<std::pair<int, int>> protos{{0, 255}};
    if (r.protocol) protos = {{*r.protocol, *r.protocol}};
    if (r.not_protocol) {
      std::vector<std::pair<int, int>> cut;
      for (auto [lo, hi] : protos) {
        int np = *r.not_protocol;
        if (np < lo || np > hi) {
          cut.push_back({lo, hi});
          continue;
        }
        if (lo < np) cut.push_back({lo, np - 1});
        if (np < hi) cut.push_back({np + 1, hi});
      }
      protos = cut;
    }
    // Ports (only with one port-carrying protocol, checked by the loader) or ICMP type/code.
    const EntityRule& dst = r.destination;
    std::vector<PortRange> not_ports;
    std::vector<std::string> not_names;
    for (const PortSpec& ps : dst.not_ports) {
      if (ps.name.empty()) {
        not_ports.push_back({ps.lo, ps.hi});
      } else {
        not_names.push_back(ps.name);
      }
    }
    not_ports = normalize(not_ports);
    std::vector<PortRange> numeric;
    std::vector<std::string> names;
    for (const PortSpec& ps : dst.ports) {
      if (ps.name.empty()) {
        numeric.push_back({ps.lo, ps.hi});
      } else {
        names.push_back(ps.name);
      }
    }
    // With only named ports listed, the numeric part of the rule matches nothing.
    bool has_numeric = dst.ports.empty() || !numeric.empty();
    std::vector<PortRange> ports =
        dst.ports.empty() ? std::vector<PortRange>{{0, 65535}} : normalize(numeric);
    ports = intersectPorts(ports, complementPorts(not_ports));
    auto icmpRange = [](const IcmpMatch& m) {
      auto base = static_cast<std::uint16_t>(m.type << 8);
      return m.code ? PortRange{static_cast<std::uint16_t>(base | *m.code),
                                static_cast<std::uint16_t>(base | *m.code)}
                    : PortRange{base, static_cast<std::uint16_t>(base | 0xff)};
    };
    if (r.icmp) ports = intersectPorts(ports, {icmpRange(*r.icmp)});
    if (r.not_icmp) ports = intersectPorts(ports, complementPorts({icmpRange(*r.not_icmp)}));
    auto& out = pol.rules[static_cast<int>(d)];
    // `dst_cond` narrows the destination (local for ingress, peer for egress); `excl` are the
    // ports that named notPorts exclude there.
    auto emit = [&](const AddrExprPtr& dst_cond, const std::vector<PortRange>& excl) {
      AddrExprPtr l = d == Direction::kIngress ? exprAnd({local, dst_cond}) : local;
      AddrExprPtr pe = d == Direction::kIngress ? peer : exprAnd({peer, dst_cond});
      if (has_numeric) {
        std::vector<PortRange> eff = intersectPorts(ports, complementPorts(excl));
        L4Match l4;
        for (auto [lo, hi] : protos) {
          if (!eff.empty()) {
            l4.clauses.push_back({static_cast<Protocol>(lo), static_cast<Protocol>(hi), eff});
          }
        }
        if (!l4.clauses.empty()) out.push_back({r.action, l, pe, l4, attr});
      }
      std::vector<PortRange> all_excl = excl;
      all_excl.insert(all_excl.end(), not_ports.begin(), not_ports.end());
      for (const std::string& name : names) {
        addNamed(out, d, r.action, l, pe, name, *r.protocol, normalize(all_excl), attr);
      }
    };
    if (not_names.empty()) {
      emit(exprAll(), {});
      return;
    }
    // Enumerate the combinations of named-port values the destination may declare for the
    // excluded names (each name: absent, or one of its known values).
    std::vector<std::vector<std::pair<AddrExprPtr, std::vector<PortRange>>>> choices;
    for (const std::string& nm : not_names) {
      std::vector<std::pair<AddrExprPtr, std::vector<PortRange>>> c;
      std::vector<AddrExprPtr> declares;
      auto it = named_.find({nm, *r.protocol});
      if (it != named_.end()) {
        for (std::uint16_t v : it->second) {
          AddrExprPtr e = exprNamedPort(nm, *r.protocol, v);
          declares.push_back(e);
          c.push_back({e, {{v, v}}});
        }
      }
      c.push_back({declares.empty() ? exprAll() : exprNot(exprOr(declares)), {}});
      choices.push_back(std::move(c));
    }
    std::vector<size_t> pick(choices.size(), 0);
    while (true) {
      std::vector<AddrExprPtr> conds;
      std::vector<PortRange> excl;
      for (size_t i = 0; i < choices.size(); ++i) {
        conds.push_back(choices[i][pick[i]].first);
        excl.insert(excl.end(), choices[i][pick[i]].second.begin(),
                    choices[i][pick[i]].second.end());
      }
      emit(exprAnd(conds), normalize(excl));
      size_t i = 0;
      while (i < pick.size() && ++pick[i] == choices[i].size()) pick[i++] = 0;
      if (i == pick.size()) break;
    }
  }

  NamedPortIndex named_;
  std::vector<Node> nodes_;
  std::uint32_t next_uid_ = Program::kDefaultsUid + 1;
};

const char* directionName(Direction d) { return d == Direction::kIngress ? "ingress" : "egress"; }

std::string Attribution::str() const {
  switch (kind) {
    case Kind::kRule:
      return fmt::format("{} {} rule {}{} ({}) at {}", policy, directionName(direction), rule_index,
                         rule_name.empty() ? "" : " '" + rule_name + "'", actionName(action),
                         loc.str());
    case Kind::kEndOfTier:
      return fmt::format("end of tier '{}' ({}: no rule matched)", tier,
                         action == Action::kPass ? "pass" : "deny");
    case Kind::kNoPolicy:
      return fmt::format("no policy selects the endpoint for {}", directionName(direction));
    case Kind::kPassedAllTiers:
      return "every tier passed: allowed by the namespace profile";
  }
  return "?";
}

const Attribution* Program::find(AttributionHandle h) const {
  auto uid = static_cast<std::uint32_t>(h >> 32);
  auto index = static_cast<std::uint32_t>(h);
  if (uid == kDefaultsUid) {
    if (index < 2) return &no_policy[index];
    if (index < 4) return &passed_all[index - 2];
    return nullptr;
  }
  for (const TierInfo& t : tiers) {
    if (t.uid == uid) return index < 2 ? &t.end[index] : nullptr;
  }
  for (const auto& tier : policies) {
    for (const auto& p : tier) {
      if (p->uid == uid) return index < p->attributions.size() ? &p->attributions[index] : nullptr;
    }
  }
  return nullptr;
}

std::string ProgramBuilder::keyOf(const K8sPolicy& p) { return "k8s/" + p.ns + "/" + p.name; }
std::string ProgramBuilder::keyOf(const CalicoPolicy& p) {
  return p.global ? "gnp/" + p.name : "cnp/" + p.ns + "/" + p.name;
}
std::string ProgramBuilder::keyOf(const AdminPolicy& p) {
  const char* prefix = p.kind == AdminKind::kAdmin      ? "kanp/"
                       : p.kind == AdminKind::kBaseline ? "kbanp/"
                                                        : "kcnp/";
  return prefix + p.name;
}

ProgramBuilder::ProgramBuilder(const Store& store) : impl_(std::make_shared<Impl>(store)) {
  for (const TierInOrder& t : tiersInOrder(store)) {
    TierInfo info;
    info.uid = impl_->nextUid();
    info.name = t.name;
    info.default_action = t.default_action;
    for (Direction d : {Direction::kIngress, Direction::kEgress}) {
      Attribution& a = info.end[static_cast<int>(d)];
      a.kind = Attribution::Kind::kEndOfTier;
      a.direction = d;
      a.tier = t.name;
      a.action = t.default_action;
    }
    program_.tiers.push_back(info);
    program_.policies.emplace_back();
  }
  for (Direction d : {Direction::kIngress, Direction::kEgress}) {
    Attribution a;
    a.direction = d;
    a.kind = Attribution::Kind::kNoPolicy;
    program_.no_policy[static_cast<int>(d)] = a;
    a.kind = Attribution::Kind::kPassedAllTiers;
    program_.passed_all[static_cast<int>(d)] = a;
  }
  // Everything at once: place unsorted, sort each tier once.
  for (const K8sPolicy& p : store.k8s_policies) place(impl_->lowerOne(p), false);
  for (const CalicoPolicy& p : store.calico_policies) place(impl_->lowerOne(p), false);
  for (const AdminPolicy& p : store.admin_policies) place(impl_->lowerOne(p), false);
  for (auto& list : program_.policies) std::sort(list.begin(), list.end(), policyBeforePtr);
}

void ProgramBuilder::upsert(const K8sPolicy& p) { place(impl_->lowerOne(p), true); }
void ProgramBuilder::upsert(const CalicoPolicy& p) { place(impl_->lowerOne(p), true); }
void ProgramBuilder::upsert(const AdminPolicy& p) { place(impl_->lowerOne(p), true); }

bool ProgramBuilder::knowsNamedPorts(const Pod& pod) const {
  return std::all_of(pod.ports.begin(), pod.ports.end(), [&](const NamedPort& np) {
    if (np.name.empty()) return true;
    auto it = impl_->namedPorts().find({np.name, np.protocol});
    return it != impl_->namedPorts().end() && it->second.contains(np.port);
  });
}

bool ProgramBuilder::erase(const std::string& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return false;
  LoweredPolicyPtr old = it->second;
  by_key_.erase(it);
  for (size_t t = 0; t < program_.tiers.size(); ++t) {
    if (program_.tiers[t].name != old->tier) continue;
    auto& list = program_.policies[t];
    auto pos = std::lower_bound(list.begin(), list.end(), old, policyBeforePtr);
    if (pos != list.end() && *pos == old) list.erase(pos);
  }
  return true;
}

void ProgramBuilder::place(LoweredPolicyPtr pol, bool keep_sorted) {
  erase(pol->key);
  auto t = std::find_if(program_.tiers.begin(), program_.tiers.end(),
                        [&](const TierInfo& ti) { return ti.name == pol->tier; });
  if (t == program_.tiers.end()) return;  // undefined tier: validateStore reported it
  by_key_[pol->key] = pol;
  auto& list = program_.policies[static_cast<size_t>(t - program_.tiers.begin())];
  if (keep_sorted) {
    list.insert(std::upper_bound(list.begin(), list.end(), pol, policyBeforePtr), pol);
  } else {
    list.push_back(std::move(pol));
  }
}

Program lower(const Store& store) { return ProgramBuilder(store).program(); }

bool policyBefore(const LoweredPolicy& a, const LoweredPolicy& b) {
  return std::tie(a.order, a.sort_name, a.ns, a.key) < std::tie(b.order, b.sort_name, b.ns, b.key);
}

}  // namespace zonewall::compiler
