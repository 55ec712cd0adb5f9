#include "zonewall/analysis/view.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace zonewall::analysis {
namespace {

using compiler::Entry;

// One side's verdicts for (local class, remote class): its table entries and the class's
// default for everything they leave out.
struct Side {
  const compiler::NodeTable* table = nullptr;
  std::vector<const Entry*> entries;
  const Outcome* fallback = nullptr;
};

Side sideOf(const compiler::NodeTable& t, Direction d, std::uint32_t local,
            compiler::RemoteClassId remote) {
  const compiler::DirectionTable& dt = t.dir(d);
  Side s{&t, {}, &t.outcomes[dt.classes[local - 1].default_outcome]};
  auto key = [](const Entry& e) { return std::make_pair(e.local_class, e.remote_class); };
  auto range =
      std::equal_range(dt.entries.begin(), dt.entries.end(), Entry{local, remote, 0, 0, 0, 0, 0},
                       [&](const Entry& a, const Entry& b) { return key(a) < key(b); });
  for (auto it = range.first; it != range.second; ++it) s.entries.push_back(&*it);
  return s;
}

struct PortRun {
  std::uint32_t hi = 0;  // inclusive
  const Outcome* outcome = nullptr;
};

// The side's verdicts for protocol `p` as runs covering ports 0..65535, in order.
std::vector<PortRun> portRuns(const Side& s, Protocol p) {
  std::vector<const Entry*> on;
  for (const Entry* e : s.entries) {
    if (e->proto_lo <= p && p <= e->proto_hi) on.push_back(e);
  }
  std::sort(on.begin(), on.end(),
            [](const Entry* a, const Entry* b) { return a->port_lo < b->port_lo; });
  std::vector<PortRun> runs;
  std::uint32_t next = 0;
  for (const Entry* e : on) {
    if (e->port_lo > next) runs.push_back({e->port_lo - 1U, s.fallback});
    runs.push_back({e->port_hi, &s.table->outcomes[e->outcome]});
    next = e->port_hi + 1U;
  }
  if (next <= 65535) runs.push_back({65535, s.fallback});
  return runs;
}

}  // namespace

ClusterView::ClusterView(const policy::Store& store) : store_(store) {}

std::expected<std::unique_ptr<ClusterView>, Error> ClusterView::build(const policy::Store& store) {
  std::unique_ptr<ClusterView> v(new ClusterView(store));
  v->inventory_ = std::make_unique<compiler::Inventory>(store);
  v->program_ = compiler::lower(store);
  auto table = compiler::compileNode(v->program_, *v->inventory_, compiler::kEveryNode);
  if (!table) return std::unexpected(table.error());
  v->table_ = std::move(*table);
  std::map<std::tuple<std::uint32_t, std::uint32_t, compiler::RemoteClassId>, std::uint32_t> index;
  for (const compiler::Inventory::PodAddr& pa : v->inventory_->addrs()) {
    const compiler::LocalClass* e = v->table_.localClassOf(Direction::kEgress, pa.addr);
    const compiler::LocalClass* i = v->table_.localClassOf(Direction::kIngress, pa.addr);
    // Every pod is local in this table: both classes exist.
    auto key = std::make_tuple(e->id, i->id, v->table_.remoteClassOf(pa.addr));
    auto [it, fresh] = index.try_emplace(key, static_cast<std::uint32_t>(v->classes_.size()));
    if (fresh) {
      v->classes_.push_back({pa.addr.family(), e->id, i->id, std::get<2>(key), {}});
    }
    v->classes_[it->second].endpoints.push_back(static_cast<std::uint32_t>(v->endpoints_.size()));
    v->endpoints_.push_back({pa.addr, pa.pod, it->second});
  }
  return v;
}

const ClusterView::Endpoint* ClusterView::endpointAt(Addr a) const {
  auto it = std::lower_bound(endpoints_.begin(), endpoints_.end(), a,
                             [](const Endpoint& e, Addr x) { return e.addr < x; });
  return it != endpoints_.end() && it->addr == a ? &*it : nullptr;
}

std::vector<FlowSegment> ClusterView::flows(std::uint32_t from, std::uint32_t to) const {
  const Class& src = classes_[from];
  const Class& dst = classes_[to];
  if (src.family != dst.family) return {};
  Side e = sideOf(table_, Direction::kEgress, src.egress, dst.remote);
  Side i = sideOf(table_, Direction::kIngress, dst.ingress, src.remote);
  std::set<int> cuts{0, 256};
  for (const Side* s : {&e, &i}) {
    for (const Entry* x : s->entries) {
      cuts.insert(x->proto_lo);
      cuts.insert(x->proto_hi + 1);
    }
  }
  std::vector<FlowSegment> out;
  for (auto c = cuts.begin(); std::next(c) != cuts.end(); ++c) {
    auto p_lo = static_cast<Protocol>(*c);
    auto p_hi = static_cast<Protocol>(*std::next(c) - 1);
    std::vector<PortRun> er = portRuns(e, p_lo);
    std::vector<PortRun> ir = portRuns(i, p_lo);
    std::uint32_t lo = 0;
    size_t a = 0;
    size_t b = 0;
    while (a < er.size() && b < ir.size()) {
      std::uint32_t hi = std::min(er[a].hi, ir[b].hi);
      if (!out.empty() && out.back().proto_lo == p_lo && out.back().egress == er[a].outcome &&
          out.back().ingress == ir[b].outcome) {
        out.back().port_hi = static_cast<std::uint16_t>(hi);
      } else {
        out.push_back({p_lo, p_hi, static_cast<std::uint16_t>(lo), static_cast<std::uint16_t>(hi),
                       er[a].outcome, ir[b].outcome});
      }
      lo = hi + 1;
      if (er[a].hi == hi) ++a;
      if (ir[b].hi == hi) ++b;
    }
  }
  return out;
}

std::vector<std::uint64_t> ClusterView::allowedBoxes(Direction d, std::uint32_t local,
                                                     compiler::RemoteClassId remote) const {
  Side side = sideOf(table_, d, local, remote);
  std::set<int> cuts{0, 256};
  for (const Entry* x : side.entries) {
    cuts.insert(x->proto_lo);
    cuts.insert(x->proto_hi + 1);
  }
  std::vector<std::uint64_t> out;
  for (auto c = cuts.begin(); std::next(c) != cuts.end(); ++c) {
    const auto lo = static_cast<std::uint64_t>(*c);
    const auto hi = static_cast<std::uint64_t>(*std::next(c) - 1);
    std::uint32_t from = 0;
    for (const PortRun& r : portRuns(side, static_cast<Protocol>(*c))) {
      if (r.outcome->allow) out.push_back(lo << 56 | hi << 48 | std::uint64_t{from} << 16 | r.hi);
      from = r.hi + 1;
    }
  }
  return out;
}

bool ClusterView::ingressAllowsAny(std::uint32_t to, compiler::RemoteClassId remote) const {
  Side i = sideOf(table_, Direction::kIngress, classes_[to].ingress, remote);
  std::set<int> cuts{0, 256};
  for (const Entry* x : i.entries) {
    cuts.insert(x->proto_lo);
    cuts.insert(x->proto_hi + 1);
  }
  for (auto c = cuts.begin(); std::next(c) != cuts.end(); ++c) {
    for (const PortRun& r : portRuns(i, static_cast<Protocol>(*c))) {
      if (r.outcome->allow) return true;
    }
  }
  return false;
}

std::optional<FlowSegment> ClusterView::flow(std::uint32_t from, std::uint32_t to,
                                             Protocol protocol, std::uint16_t port) const {
  for (const FlowSegment& s : flows(from, to)) {
    if (s.proto_lo <= protocol && protocol <= s.proto_hi && s.port_lo <= port && port <= s.port_hi)
      return s;
  }
  return std::nullopt;
}

}  // namespace zonewall::analysis
