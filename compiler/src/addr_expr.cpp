// Address predicates (program.h AddrExpr): built canonical, so that equal predicates get equal
// keys whoever builds them, and the scope each kind of selector looks in.
#include <fmt/format.h>

#include <algorithm>

#include "zonewall/compiler/program.h"

namespace zonewall::compiler {
namespace {

using namespace policy;  // NOLINT: the model's vocabulary is this file's vocabulary

std::shared_ptr<AddrExpr> node(AddrExpr::Op op) {
  auto e = std::make_shared<AddrExpr>();
  e->op = op;
  return e;
}

std::string scopeKey(const Scope& s) {
  switch (s.kind) {
    case Scope::Kind::kNamespace:
      return "ns=" + s.ns;
    case Scope::Kind::kNamespaces:
      return "nssel=" + s.ns_selector.str();
    case Scope::Kind::kEverything:
      return "all";
    case Scope::Kind::kGlobalSets:
      return "global";
  }
  return "?";
}

AddrExprPtr combine(AddrExpr::Op op, std::vector<AddrExprPtr> kids) {
  // Flatten, drop identities, sort by key: equal predicates get equal keys.
  std::vector<AddrExprPtr> flat;
  for (auto& k : kids) {
    if (k->op == op) {
      flat.insert(flat.end(), k->kids.begin(), k->kids.end());
    } else {
      flat.push_back(k);
    }
  }
  if (op == AddrExpr::Op::kAnd) {
    std::erase_if(flat, [](const AddrExprPtr& k) { return k->op == AddrExpr::Op::kAll; });
    if (flat.empty()) return exprAll();
  } else if (std::any_of(flat.begin(), flat.end(),
                         [](const AddrExprPtr& k) { return k->op == AddrExpr::Op::kAll; })) {
    return exprAll();
  }
  std::sort(flat.begin(), flat.end(),
            [](const AddrExprPtr& a, const AddrExprPtr& b) { return a->key < b->key; });
  flat.erase(
      std::unique(flat.begin(), flat.end(),
                  [](const AddrExprPtr& a, const AddrExprPtr& b) { return a->key == b->key; }),
      flat.end());
  if (flat.size() == 1) return flat[0];
  auto e = node(op);
  e->key = op == AddrExpr::Op::kAnd ? "and(" : "or(";
  for (size_t i = 0; i < flat.size(); ++i) e->key += (i ? "," : "") + flat[i]->key;
  e->key += ")";
  e->kids = std::move(flat);
  return e;
}

}  // namespace

AddrExprPtr exprAll() {
  static const AddrExprPtr all = [] {
    auto e = node(AddrExpr::Op::kAll);
    e->key = "all";
    return e;
  }();
  return all;
}

AddrExprPtr exprEndpoints(Selector sel, Scope scope, bool calico) {
  auto e = node(AddrExpr::Op::kEndpoints);
  e->key = fmt::format("{}[{}]({})", calico ? "cal" : "k8s", scopeKey(scope), sel.str());
  e->selector = std::move(sel);
  e->scope = std::move(scope);
  e->calico = calico;
  return e;
}

Scope policyScope(const CalicoPolicy& p) {
  if (!p.global) {
    return Scope{Scope::Kind::kNamespace, p.ns, {}};
  }
  return p.namespace_selector ? Scope{Scope::Kind::kNamespaces, {}, *p.namespace_selector}
                              : Scope{Scope::Kind::kEverything, {}, {}};
}

Scope entityScope(const EntityRule& e, const CalicoPolicy& p) {
  if (e.namespace_selector) {
    if (e.namespace_selector->root().op == SelectorNode::Op::kGlobal) {
      return Scope{Scope::Kind::kGlobalSets, {}, {}};
    }
    return Scope{Scope::Kind::kNamespaces, {}, *e.namespace_selector};
  }
  return p.global ? Scope{Scope::Kind::kEverything, {}, {}}
                  : Scope{Scope::Kind::kNamespace, p.ns, {}};
}

Scope peerScope(const K8sPeer& peer, const std::string& ns) {
  return peer.namespace_selector ? Scope{Scope::Kind::kNamespaces, {}, *peer.namespace_selector}
                                 : Scope{Scope::Kind::kNamespace, ns, {}};
}

AddrExprPtr exprCidrs(const std::vector<Cidr>& cidrs) {
  auto e = node(AddrExpr::Op::kCidrs);
  for (const Cidr& c : cidrs) e->cidrs = e->cidrs.unite(IntervalSet::ofCidr(c));
  e->key = "cidrs{";
  for (const Range& r : e->cidrs.ranges()) {
    e->key += fmt::format("{}-{},", formatAddr(Addr{r.lo}), formatAddr(Addr{r.hi}));
  }
  e->key += "}";
  return e;
}

AddrExprPtr exprNamedPort(std::string name, Protocol proto, std::uint16_t port) {
  auto e = node(AddrExpr::Op::kNamedPort);
  e->key = fmt::format("port({}/{}={})", name, protocolName(proto), port);
  e->name = std::move(name);
  e->protocol = proto;
  e->port = port;
  return e;
}

AddrExprPtr exprFamily(Family f) {
  auto e = node(AddrExpr::Op::kFamily);
  e->family = f;
  e->key = f == Family::kV4 ? "ipv4" : "ipv6";
  return e;
}

AddrExprPtr exprAnd(std::vector<AddrExprPtr> kids) {
  return combine(AddrExpr::Op::kAnd, std::move(kids));
}
AddrExprPtr exprOr(std::vector<AddrExprPtr> kids) {
  if (kids.empty()) {
    auto e = node(AddrExpr::Op::kOr);
    e->key = "none";
    return e;
  }
  return combine(AddrExpr::Op::kOr, std::move(kids));
}
AddrExprPtr exprNot(AddrExprPtr kid) {
  if (kid->op == AddrExpr::Op::kNot) return kid->kids[0];
  auto e = node(AddrExpr::Op::kNot);
  e->key = "not(" + kid->key + ")";
  e->kids = {std::move(kid)};
  return e;
}

}  // namespace zonewall::compiler
