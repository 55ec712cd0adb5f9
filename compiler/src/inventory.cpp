#include "zonewall/compiler/inventory.h"

#include <algorithm>
#include <numeric>
#include <set>

namespace zonewall::compiler {

using namespace policy;  // NOLINT

namespace {

const std::string kK8s = "k8s";

class NamespaceLabelView final : public LabelView {
 public:
  NamespaceLabelView(const Labels& labels, const std::string& name, bool calico)
      : labels_(labels), name_(name), calico_(calico) {}
  const std::string* get(std::string_view key) const override {
    if (calico_ && key == kCalicoNameLabel) return &name_;
    auto it = labels_.find(key);
    return it == labels_.end() ? nullptr : &it->second;
  }

 private:
  const Labels& labels_;
  const std::string& name_;
  bool calico_;
};

class NetworkSetLabelView final : public LabelView {
 public:
  explicit NetworkSetLabelView(const NetworkSet& s) : set_(s) {}
  const std::string* get(std::string_view key) const override {
    if (!set_.global && key == kCalicoNamespaceLabel) return &set_.ns;
    auto it = set_.labels.find(key);
    return it == set_.labels.end() ? nullptr : &it->second;
  }

 private:
  const NetworkSet& set_;
};

}  // namespace

const std::string* PodLabelView::get(std::string_view key) const {
  if (calico_) {
    if (key == kCalicoNamespaceLabel) return &pod_.ns;
    if (key == kCalicoOrchestratorLabel) return &kK8s;
  }
  auto it = pod_.labels.find(key);
  return it == pod_.labels.end() ? nullptr : &it->second;
}

Inventory::Inventory(const Store& store) : store_(store) {
  for (std::uint32_t i = 0; i < store.pods.size(); ++i) {
    for (Addr a : store.pods[i].ips) addrs_.push_back({a, i});
  }
  std::sort(addrs_.begin(), addrs_.end(),
            [](const PodAddr& a, const PodAddr& b) { return a.addr < b.addr; });
  // Duplicate addresses are an input error (validateStore); keep the first deterministically.
  addrs_.erase(std::unique(addrs_.begin(), addrs_.end(),
                           [](const PodAddr& a, const PodAddr& b) { return a.addr == b.addr; }),
               addrs_.end());
  live_ = Bitset(addrs_.size(), true);
  order_.resize(addrs_.size());
  std::iota(order_.begin(), order_.end(), 0U);
  for (std::uint32_t i = 0; i < addrs_.size(); ++i) {
    const Pod& p = store.pods[addrs_[i].pod];
    for (const auto& [k, v] : p.labels) label_postings_[k][v].push_back(i);
    ns_postings_[p.ns].push_back(i);
    orchestrator_postings_[kK8s].push_back(i);
  }
  std::set<std::string> names;
  for (const Namespace& n : store.namespaces) names.insert(n.name);
  for (const Pod& p : store.pods) names.insert(p.ns);
  namespaces_.assign(names.begin(), names.end());
  for (const std::string& n : namespaces_) ns_labels_[n] = store.namespaceLabels(n);
}

std::vector<size_t> Inventory::addrsOf(std::uint32_t pod) const {
  std::vector<size_t> out;
  for (Addr a : store_.pods[pod].ips) {
    if (auto i = findAddr(a); i && addrs_[*i].pod == pod) out.push_back(*i);
  }
  return out;
}

void Inventory::relabel(std::uint32_t pod, const Labels& old_labels) {
  for (size_t i : addrsOf(pod)) {
    auto idx = static_cast<std::uint32_t>(i);
    for (const auto& [k, v] : old_labels) {
      auto& post = label_postings_[k][v];
      auto it = std::lower_bound(post.begin(), post.end(), idx);
      if (it != post.end() && *it == idx) post.erase(it);
    }
    for (const auto& [k, v] : store_.pods[pod].labels) {
      auto& post = label_postings_[k][v];
      auto it = std::lower_bound(post.begin(), post.end(), idx);
      if (it == post.end() || *it != idx) post.insert(it, idx);
    }
  }
}

std::vector<size_t> Inventory::addPod(std::uint32_t pod) {
  std::vector<size_t> added;
  const Pod& p = store_.pods[pod];
  auto post = [](std::vector<std::uint32_t>& list, std::uint32_t i) {
    list.insert(std::lower_bound(list.begin(), list.end(), i), i);
  };
  for (Addr a : p.ips) {
    if (findAddr(a)) continue;
    std::uint32_t i;
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
      addrs_[i] = {a, pod};
      --dead_;
    } else {
      i = static_cast<std::uint32_t>(addrs_.size());
      addrs_.push_back({a, pod});
      live_.resize(addrs_.size());
    }
    live_.set(i);
    order_.insert(orderAt(a), i);
    sorted_ = false;
    for (const auto& [k, v] : p.labels) post(label_postings_[k][v], i);
    post(ns_postings_[p.ns], i);
    post(orchestrator_postings_[kK8s], i);
    added.push_back(i);
  }
  if (!added.empty()) addNamespace(p.ns);
  return added;
}

std::vector<size_t> Inventory::removePod(std::uint32_t pod) {
  std::vector<size_t> removed = addrsOf(pod);
  const Pod& p = store_.pods[pod];
  auto drop = [](std::vector<std::uint32_t>& post, std::uint32_t i) {
    auto it = std::lower_bound(post.begin(), post.end(), i);
    if (it != post.end() && *it == i) post.erase(it);
  };
  for (size_t slot : removed) {
    auto i = static_cast<std::uint32_t>(slot);
    for (const auto& [k, v] : p.labels) drop(label_postings_[k][v], i);
    drop(ns_postings_[p.ns], i);
    drop(orchestrator_postings_[kK8s], i);
    order_.erase(orderAt(addrs_[i].addr));
    live_.reset(i);
    ++dead_;
    released_.push_back(i);
    sorted_ = false;
  }
  return removed;
}

void Inventory::recycle() {
  free_.insert(free_.end(), released_.begin(), released_.end());
  released_.clear();
}

void Inventory::namespaceChanged(const std::string& ns) {
  addNamespace(ns);
  ns_labels_[ns] = store_.namespaceLabels(ns);
}

// A namespace first seen on a pod added later (one without a Namespace object).
void Inventory::addNamespace(const std::string& ns) {
  auto at = std::lower_bound(namespaces_.begin(), namespaces_.end(), ns);
  if (at != namespaces_.end() && *at == ns) return;
  namespaces_.insert(at, ns);
  ns_labels_[ns] = store_.namespaceLabels(ns);
}

std::vector<std::uint32_t>::const_iterator Inventory::orderAt(Addr a) const {
  return std::lower_bound(order_.begin(), order_.end(), a,
                          [&](std::uint32_t s, Addr x) { return addrs_[s].addr < x; });
}

std::optional<size_t> Inventory::findAddr(Addr a) const {
  auto it = orderAt(a);
  if (it == order_.end() || addrs_[*it].addr != a) return std::nullopt;
  return static_cast<size_t>(*it);
}

const Pod* Inventory::podAt(Addr a) const {
  auto i = findAddr(a);
  return i ? &store_.pods[addrs_[*i].pod] : nullptr;
}

bool Inventory::namespaceMatches(const Selector& sel, const std::string& ns, bool calico) const {
  auto it = ns_labels_.find(ns);
  Labels fallback;
  if (it == ns_labels_.end()) fallback = store_.namespaceLabels(ns);
  return sel.matches(
      NamespaceLabelView(it == ns_labels_.end() ? fallback : it->second, ns, calico));
}

const Inventory::Postings* Inventory::postings(const std::string& key, bool calico) const {
  if (calico && key == kCalicoNamespaceLabel) return &ns_postings_;
  if (calico && key == kCalicoOrchestratorLabel) return &orchestrator_postings_;
  auto it = label_postings_.find(key);
  return it == label_postings_.end() ? nullptr : &it->second;
}

Bitset Inventory::selectPods(const SelectorNode& n, bool calico) const {
  using Op = SelectorNode::Op;
  const size_t size = addrs_.size();
  auto fromValues = [&](auto&& keep) {
    Bitset b(size);
    if (const auto* post = postings(n.key, calico)) {
      for (const auto& [value, idx] : *post) {
        if (keep(value)) {
          for (std::uint32_t i : idx) b.set(i);
        }
      }
    }
    return b;
  };
  switch (n.op) {
    case Op::kAll:
      return Bitset(size, true);
    case Op::kGlobal:
      return Bitset(size, true);  // Calico: global() matches like all()
    case Op::kHas:
      return fromValues([](const std::string&) { return true; });
    case Op::kEq:
    case Op::kNe: {
      Bitset b = fromValues([&](const std::string& v) { return v == n.values[0]; });
      if (n.op == Op::kNe) b.flip();
      return b;
    }
    case Op::kIn:
    case Op::kNotIn: {
      Bitset b = fromValues([&](const std::string& v) {
        return std::binary_search(n.values.begin(), n.values.end(), v);
      });
      if (n.op == Op::kNotIn) b.flip();
      return b;
    }
    case Op::kContains:
      return fromValues(
          [&](const std::string& v) { return v.find(n.values[0]) != std::string::npos; });
    case Op::kStartsWith:
      return fromValues([&](const std::string& v) { return v.starts_with(n.values[0]); });
    case Op::kEndsWith:
      return fromValues([&](const std::string& v) { return v.ends_with(n.values[0]); });
    case Op::kNot: {
      Bitset b = selectPods(*n.kids[0], calico);
      b.flip();
      return b;
    }
    case Op::kAnd: {
      Bitset b(size, true);
      for (const auto& k : n.kids) b &= selectPods(*k, calico);
      return b;
    }
    case Op::kOr: {
      Bitset b(size);
      for (const auto& k : n.kids) b |= selectPods(*k, calico);
      return b;
    }
  }
  return Bitset(size);
}

Bitset Inventory::scopePods(const Scope& s, bool calico) const {
  Bitset b(addrs_.size());
  auto addNs = [&](const std::string& ns) {
    auto it = ns_postings_.find(ns);
    if (it != ns_postings_.end()) {
      for (std::uint32_t i : it->second) b.set(i);
    }
  };
  switch (s.kind) {
    case Scope::Kind::kNamespace:
      addNs(s.ns);
      break;
    case Scope::Kind::kNamespaces:
      for (const std::string& ns : namespaces_) {
        if (namespaceMatches(s.ns_selector, ns, calico)) addNs(ns);
      }
      break;
    case Scope::Kind::kEverything:
      return Bitset(addrs_.size(), true);
    case Scope::Kind::kGlobalSets:
      break;
  }
  return b;
}

bool Inventory::podInScope(const Pod& pod, const Scope& s, bool calico) const {
  switch (s.kind) {
    case Scope::Kind::kNamespace:
      return pod.ns == s.ns;
    case Scope::Kind::kNamespaces:
      return namespaceMatches(s.ns_selector, pod.ns, calico);
    case Scope::Kind::kEverything:
      return true;
    case Scope::Kind::kGlobalSets:
      return false;
  }
  return false;
}

bool Inventory::netsetInScope(const NetworkSet& set, const Scope& s, bool calico) const {
  if (!calico) return false;  // Kubernetes selectors only ever select pods
  switch (s.kind) {
    case Scope::Kind::kNamespace:
      return !set.global && set.ns == s.ns;
    case Scope::Kind::kNamespaces:
      return set.global ? namespaceSelectorPicksGlobal(s.ns_selector)
                        : namespaceMatches(s.ns_selector, set.ns, true);
    case Scope::Kind::kEverything:
      return true;  // a GlobalNetworkPolicy's rule selector sees namespaced sets too
    case Scope::Kind::kGlobalSets:
      return set.global;
  }
  return false;
}

AddrSet Inventory::evaluate(const AddrExpr& e) const {
  AddrSet out = evaluateSlots(e);
  if (dead_ > 0) out.pods &= live_;  // complements and all() reach dead slots too
  return out;
}

AddrSet Inventory::evaluateSlots(const AddrExpr& e) const {
  const size_t size = addrs_.size();
  auto podsIn = [&](const IntervalSet& ranges) {
    Bitset b(size);
    for (const Range& r : ranges.ranges()) {
      auto lo = std::lower_bound(order_.begin(), order_.end(), r.lo,
                                 [&](std::uint32_t s, U128 v) { return addrs_[s].addr.v < v; });
      auto hi = std::upper_bound(order_.begin(), order_.end(), r.hi,
                                 [&](U128 v, std::uint32_t s) { return v < addrs_[s].addr.v; });
      if (sorted_) {
        b.setRange(static_cast<size_t>(lo - order_.begin()),
                   static_cast<size_t>(hi - order_.begin()));
      } else {
        for (auto it = lo; it != hi; ++it) b.set(*it);
      }
    }
    return b;
  };
  switch (e.op) {
    case AddrExpr::Op::kAll:
      return AddrSet{Bitset(size, true), IntervalSet::all()};
    case AddrExpr::Op::kEndpoints: {
      AddrSet out{selectPods(e.selector.root(), e.calico), {}};
      out.pods &= scopePods(e.scope, e.calico);
      for (const NetworkSet& set : store_.network_sets) {
        if (netsetInScope(set, e.scope, e.calico) && e.selector.matches(NetworkSetLabelView(set))) {
          for (const Cidr& c : set.nets) out.ranges = out.ranges.unite(IntervalSet::ofCidr(c));
        }
      }
      // A pod address inside a selected network set's nets matches too (Calico matches the
      // packet's address against the selector's IP set).
      if (!out.ranges.empty()) out.pods |= podsIn(out.ranges);
      return out;
    }
    case AddrExpr::Op::kCidrs:
      return AddrSet{podsIn(e.cidrs), e.cidrs};
    case AddrExpr::Op::kNamedPort: {
      AddrSet out{Bitset(size), {}};
      for (size_t i = 0; i < size; ++i) {
        if (store_.pods[addrs_[i].pod].namedPort(e.name, e.protocol) == e.port) out.pods.set(i);
      }
      return out;
    }
    case AddrExpr::Op::kFamily: {
      IntervalSet space = familySpace(e.family);
      return AddrSet{podsIn(space), space};
    }
    case AddrExpr::Op::kAnd: {
      AddrSet out{Bitset(size, true), IntervalSet::all()};
      for (const auto& k : e.kids) out &= evaluateSlots(*k);
      return out;
    }
    case AddrExpr::Op::kOr: {
      AddrSet out{Bitset(size), {}};
      for (const auto& k : e.kids) out |= evaluateSlots(*k);
      return out;
    }
    case AddrExpr::Op::kNot: {
      AddrSet out = evaluateSlots(*e.kids[0]);
      out.flip();
      return out;
    }
  }
  return AddrSet{Bitset(size), {}};
}

bool Inventory::contains(const AddrExpr& e, Addr a) const {
  switch (e.op) {
    case AddrExpr::Op::kAll:
      return true;
    case AddrExpr::Op::kEndpoints: {
      const Pod* pod = podAt(a);
      if (pod != nullptr && podInScope(*pod, e.scope, e.calico) &&
          e.selector.matches(PodLabelView(*pod, e.calico))) {
        return true;
      }
      for (const NetworkSet& set : store_.network_sets) {
        if (!netsetInScope(set, e.scope, e.calico)) continue;
        bool inside = std::any_of(set.nets.begin(), set.nets.end(),
                                  [&](const Cidr& c) { return c.contains(a); });
        if (inside && e.selector.matches(NetworkSetLabelView(set))) return true;
      }
      return false;
    }
    case AddrExpr::Op::kCidrs:
      return e.cidrs.contains(a.v);
    case AddrExpr::Op::kNamedPort: {
      const Pod* pod = podAt(a);
      return pod != nullptr && pod->namedPort(e.name, e.protocol) == e.port;
    }
    case AddrExpr::Op::kFamily:
      return a.family() == e.family;
    case AddrExpr::Op::kAnd:
      return std::all_of(e.kids.begin(), e.kids.end(),
                         [&](const AddrExprPtr& k) { return contains(*k, a); });
    case AddrExpr::Op::kOr:
      return std::any_of(e.kids.begin(), e.kids.end(),
                         [&](const AddrExprPtr& k) { return contains(*k, a); });
    case AddrExpr::Op::kNot:
      return !contains(*e.kids[0], a);
  }
  return false;
}

}  // namespace zonewall::compiler
