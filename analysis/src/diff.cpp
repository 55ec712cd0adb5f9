#include "zonewall/analysis/diff.h"

#include <fmt/format.h>

#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include "zonewall/analysis/groups.h"

namespace zonewall::analysis {
namespace {

// A pod present in both revisions, with one address of one family in each.
struct Unit {
  std::uint32_t before = 0;  // endpoint indices
  std::uint32_t after = 0;
};

std::string joined(const std::vector<Attribution>& as) {
  std::string s;
  for (const Attribution& a : as) s += a.str() + "\n";
  return s;
}

// Flows of a view between two classes, computed once per pair.
class FlowCache {
 public:
  explicit FlowCache(const ClusterView& v) : v_(v) {}
  const std::vector<FlowSegment>& get(std::uint32_t a, std::uint32_t b) {
    auto [it, fresh] = cache_.try_emplace(std::uint64_t{a} << 32 | b);
    if (fresh) it->second = v_.flows(a, b);
    return it->second;
  }

 private:
  const ClusterView& v_;
  std::unordered_map<std::uint64_t, std::vector<FlowSegment>> cache_;
};

std::string l4Key(const std::vector<L4Range>& l4) {
  std::string s;
  for (const L4Range& r : l4) {
    s += fmt::format("{}-{}:", r.proto_lo, r.proto_hi);
    for (const auto& p : r.ports) s += fmt::format("{}-{},", p.lo, p.hi);
    s += ";";
  }
  return s;
}

// The lines people read: changes with the same destinations and the same cause merged over
// their sources, then those with the same sources merged over their destinations. Each step
// keeps a line's meaning exact (every source pod to every destination pod), and one rule's
// change becomes a line per pair of pod sets it touches, not one per pair of classes. Groups
// are renamed for the merged sets (one name per namespace, joined with " + ").
void mergeLines(const policy::Store& store, FlowDiff& d) {
  using PodSet = std::vector<std::string>;
  struct Line {
    FlowChange c;
    PodSet from;
    PodSet to;
  };
  std::vector<Line> lines;
  for (FlowChange& c : d.changes) {
    PodSet f = d.groups.at(c.from);
    PodSet t = d.groups.at(c.to);
    lines.push_back({std::move(c), std::move(f), std::move(t)});
  }
  auto cause = [](const FlowChange& c) {
    return fmt::format("{}|{}|{}|{}", c.opened, joined(c.now), joined(c.before), l4Key(c.l4));
  };
  auto mergeBy = [&](bool same_to) {
    std::map<std::pair<PodSet, std::string>, size_t> index;
    std::vector<Line> merged;
    for (Line& l : lines) {
      auto [it, fresh] = index.try_emplace({same_to ? l.to : l.from, cause(l.c)}, merged.size());
      if (fresh) {
        merged.push_back(std::move(l));
        continue;
      }
      PodSet& into = same_to ? merged[it->second].from : merged[it->second].to;
      const PodSet& add = same_to ? l.from : l.to;
      into.insert(into.end(), add.begin(), add.end());
      std::sort(into.begin(), into.end());
      into.erase(std::unique(into.begin(), into.end()), into.end());
    }
    lines = std::move(merged);
  };
  mergeBy(true);
  mergeBy(false);
  // Names: each set split by namespace, each part named by the namer.
  std::unordered_map<std::string, std::uint32_t> index_of;
  for (std::uint32_t p = 0; p < store.pods.size(); ++p) index_of[store.pods[p].key()] = p;
  GroupNamer namer(store);
  auto parts = [&](const PodSet& set) {
    std::map<std::string, std::vector<std::uint32_t>> by_ns;
    for (const std::string& k : set) {
      std::uint32_t p = index_of.at(k);
      by_ns[store.pods[p].ns].push_back(p);
    }
    std::vector<std::uint32_t> ids;
    for (auto& [ns, pods] : by_ns) ids.push_back(namer.add(pods));
    return ids;
  };
  std::vector<std::pair<std::vector<std::uint32_t>, std::vector<std::uint32_t>>> ids;
  for (const Line& l : lines) ids.push_back({parts(l.from), parts(l.to)});
  const std::vector<std::string> names = namer.names();
  auto nameOf = [&](const std::vector<std::uint32_t>& list) {
    std::string s;
    for (std::uint32_t id : list) s += (s.empty() ? "" : " + ") + names[id];
    return s;
  };
  d.changes.clear();
  d.groups.clear();
  for (size_t k = 0; k < lines.size(); ++k) {
    FlowChange c = std::move(lines[k].c);
    c.from = nameOf(ids[k].first);
    c.to = nameOf(ids[k].second);
    d.groups[c.from] = lines[k].from;
    d.groups[c.to] = lines[k].to;
    d.changes.push_back(std::move(c));
  }
}

}  // namespace

FlowDiff diffViews(const ClusterView& before, const ClusterView& after) {
  FlowDiff out;
  const policy::Store& bs = before.store();
  const policy::Store& as = after.store();
  for (const policy::Pod& p : bs.pods) {
    if (as.findPod(p.ns, p.name) == nullptr) out.pods_removed.push_back(p.key());
  }
  std::vector<Unit> units;
  for (size_t ai = 0; ai < as.pods.size(); ++ai) {
    const policy::Pod& p = as.pods[ai];
    const policy::Pod* old = bs.findPod(p.ns, p.name);
    if (old == nullptr) {
      out.pods_added.push_back(p.key());
      continue;
    }
    for (Family f : {Family::kV4, Family::kV6}) {
      auto first = [f](const policy::Pod& x) {
        return std::find_if(x.ips.begin(), x.ips.end(), [f](Addr a) { return a.family() == f; });
      };
      auto a = first(p);
      auto b = first(*old);
      if (a == p.ips.end() || b == old->ips.end()) continue;
      const auto* ea = after.endpointAt(*a);
      const auto* eb = before.endpointAt(*b);
      units.push_back({static_cast<std::uint32_t>(eb - before.endpoints().data()),
                       static_cast<std::uint32_t>(ea - after.endpoints().data())});
    }
  }
  std::sort(out.pods_added.begin(), out.pods_added.end());
  std::sort(out.pods_removed.begin(), out.pods_removed.end());

  // Joint classes: units of one class in each revision behave alike in both.
  struct Joint {
    std::uint32_t before = 0;
    std::uint32_t after = 0;
    std::map<std::string, std::vector<std::uint32_t>> pods_by_ns;  // after-store indices
    std::map<std::string, std::uint32_t> group_by_ns;
  };
  std::vector<Joint> joints;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> joint_index;
  for (const Unit& u : units) {
    const auto& ea = after.endpoints()[u.after];
    auto key = std::make_pair(before.endpoints()[u.before].cls, ea.cls);
    auto [it, fresh] = joint_index.try_emplace(key, static_cast<std::uint32_t>(joints.size()));
    if (fresh) joints.push_back({key.first, key.second, {}, {}});
    joints[it->second].pods_by_ns[as.pods[ea.pod].ns].push_back(ea.pod);
  }
  GroupNamer namer(as);
  for (Joint& j : joints) {
    for (auto& [ns, pods] : j.pods_by_ns) j.group_by_ns[ns] = namer.add(pods);
  }
  const std::vector<std::string> names = namer.names();

  // Changes merged by everything but their protocols and ports, which are collected as boxes.
  using Key = std::tuple<std::string, std::string, bool, std::string, std::string>;
  struct Box {
    Protocol p_lo, p_hi;
    std::uint16_t lo, hi;
  };
  std::map<Key, std::pair<FlowChange, std::vector<Box>>> merged;
  FlowCache fb(before);
  FlowCache fa(after);
  for (const Joint& x : joints) {
    for (const Joint& y : joints) {
      const auto& sb = fb.get(x.before, y.before);
      const auto& sa = fa.get(x.after, y.after);
      if (sa.empty()) continue;  // families differ
      overlay(sb, sa,
              [&](Protocol p_lo, Protocol p_hi, std::uint16_t lo, std::uint16_t hi,
                  const FlowSegment& b, const FlowSegment& a) {
                if (b.allowed() == a.allowed()) return;
                const bool opened = a.allowed();
                FlowChange c;
                c.opened = opened;
                // The sides that decided the old verdict (opened) or decide the new one.
                const FlowSegment& deciding = opened ? b : a;
                if (!deciding.egress->allow) {
                  c.now.push_back(after.attribution(*a.egress));
                  c.before.push_back(before.attribution(*b.egress));
                }
                if (!deciding.ingress->allow) {
                  c.now.push_back(after.attribution(*a.ingress));
                  c.before.push_back(before.attribution(*b.ingress));
                }
                for (const auto& [sns, sg] : x.group_by_ns) {
                  for (const auto& [dns, dg] : y.group_by_ns) {
                    Key k{names[sg], names[dg], opened, joined(c.now), joined(c.before)};
                    auto [it, fresh] = merged.try_emplace(k, c, std::vector<Box>{});
                    FlowChange& m = it->second.first;
                    if (fresh) {
                      for (const auto& [name, ns, pods] :
                           {std::tie(names[sg], sns, x.pods_by_ns.at(sns)),
                            std::tie(names[dg], dns, y.pods_by_ns.at(dns))}) {
                        auto& keys = out.groups[name];
                        if (!keys.empty()) continue;
                        for (std::uint32_t pod : pods) keys.push_back(as.pods[pod].key());
                        std::sort(keys.begin(), keys.end());
                        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
                      }
                      m.from = names[sg];
                      m.to = names[dg];
                      m.example_from = as.pods[x.pods_by_ns.at(sns).front()].key();
                      m.example_to = as.pods[y.pods_by_ns.at(dns).front()].key();
                    }
                    it->second.second.push_back({p_lo, p_hi, lo, hi});
                  }
                }
              });
    }
  }
  // Each change's boxes as protocol ranges with merged ports: the boxes of one change may come
  // from several class pairs, cut differently.
  for (auto& [k, entry] : merged) {
    auto& [c, boxes] = entry;
    std::set<int> cuts{0, 256};
    for (const Box& b : boxes) {
      cuts.insert(b.p_lo);
      cuts.insert(b.p_hi + 1);
    }
    for (auto at = cuts.begin(); std::next(at) != cuts.end(); ++at) {
      const auto p = static_cast<Protocol>(*at);
      std::vector<std::pair<std::uint16_t, std::uint16_t>> ports;
      for (const Box& b : boxes) {
        if (b.p_lo <= p && p <= b.p_hi) ports.push_back({b.lo, b.hi});
      }
      std::sort(ports.begin(), ports.end());
      for (const auto& [lo, hi] : ports) {
        addL4(c.l4, p, static_cast<Protocol>(*std::next(at) - 1), lo, hi);
      }
    }
    out.changes.push_back(std::move(c));
  }
  mergeLines(as, out);
  std::sort(out.changes.begin(), out.changes.end(), [](const FlowChange& p, const FlowChange& q) {
    return std::tie(p.from, p.to, p.opened) < std::tie(q.from, q.to, q.opened);
  });
  return out;
}

}  // namespace zonewall::analysis
