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
  using PodSet = std::vector<std::uint32_t>;  // store indices, sorted
  std::unordered_map<std::string, std::uint32_t> index_of;
  for (std::uint32_t p = 0; p < store.pods.size(); ++p) index_of[store.pods[p].key()] = p;
  std::map<std::string, PodSet> sets;
  for (const auto& [name, keys] : d.groups) {
    PodSet& set = sets[name];
    for (const std::string& k : keys) set.push_back(index_of.at(k));
    std::sort(set.begin(), set.end());
  }
  struct Line {
    FlowChange c;
    PodSet from;
    PodSet to;
  };
  std::vector<Line> lines;
  for (FlowChange& c : d.changes) {
    PodSet f = sets.at(c.from);
    PodSet t = sets.at(c.to);
    lines.push_back({std::move(c), std::move(f), std::move(t)});
  }
  std::vector<std::string> causes;
  for (const Line& l : lines) {
    causes.push_back(
        fmt::format("{}|{}|{}|{}", l.c.opened, joined(l.c.now), joined(l.c.before), l4Key(l.c.l4)));
  }
  // Lines with the same key (the kept side and the cause) gather the other side's pods; each
  // gathered set is sorted once, at the end.
  auto mergeBy = [&](bool same_to) {
    std::map<std::pair<const PodSet*, const std::string*>, size_t,
             bool (*)(const std::pair<const PodSet*, const std::string*>&,
                      const std::pair<const PodSet*, const std::string*>&)>
        index([](const auto& a, const auto& b) {
          return std::tie(*a.first, *a.second) < std::tie(*b.first, *b.second);
        });
    std::vector<Line> merged;
    std::vector<std::string> merged_causes;
    merged.reserve(lines.size());
    merged_causes.reserve(lines.size());
    for (size_t k = 0; k < lines.size(); ++k) {
      Line& l = lines[k];
      const PodSet* kept = same_to ? &l.to : &l.from;
      auto it = index.find({kept, &causes[k]});
      if (it == index.end()) {
        merged.push_back(std::move(l));
        merged_causes.push_back(std::move(causes[k]));
        // Keys point into `merged`, which was reserved: they stay valid.
        const Line& m = merged.back();
        index.emplace(std::make_pair(same_to ? &m.to : &m.from, &merged_causes.back()),
                      merged.size() - 1);
        continue;
      }
      PodSet& into = same_to ? merged[it->second].from : merged[it->second].to;
      const PodSet& add = same_to ? l.from : l.to;
      into.insert(into.end(), add.begin(), add.end());
    }
    for (Line& m : merged) {
      PodSet& grown = same_to ? m.from : m.to;
      std::sort(grown.begin(), grown.end());
      grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    }
    lines = std::move(merged);
    causes = std::move(merged_causes);
  };
  mergeBy(true);
  mergeBy(false);
  // Names: each set split by namespace, each part named by the namer.
  GroupNamer namer(store);
  auto parts = [&](const PodSet& set) {
    std::map<std::string, std::vector<std::uint32_t>> by_ns;
    for (std::uint32_t p : set) by_ns[store.pods[p].ns].push_back(p);
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
  auto keysOf = [&](const PodSet& set) {
    std::vector<std::string> keys;
    for (std::uint32_t p : set) keys.push_back(store.pods[p].key());
    std::sort(keys.begin(), keys.end());
    return keys;
  };
  d.changes.clear();
  d.groups.clear();
  for (size_t k = 0; k < lines.size(); ++k) {
    FlowChange c = std::move(lines[k].c);
    c.from = nameOf(ids[k].first);
    c.to = nameOf(ids[k].second);
    if (!d.groups.contains(c.from)) d.groups[c.from] = keysOf(lines[k].from);
    if (!d.groups.contains(c.to)) d.groups[c.to] = keysOf(lines[k].to);
    d.changes.push_back(std::move(c));
  }
}

// One side's allowed boxes (ClusterView::allowedBoxes) of each view, interned: equal ids mean
// equal verdicts on that side, so a pair of classes whose two sides keep their ids across the
// revisions cannot change, and is skipped without computing its flows.
class SidePatterns {
 public:
  std::uint32_t get(const ClusterView& v, int view, Direction d, std::uint32_t local,
                    compiler::RemoteClassId remote) {
    const std::uint64_t key = std::uint64_t{static_cast<std::uint32_t>(view)} << 50 |
                              std::uint64_t{static_cast<std::uint32_t>(d)} << 48 |
                              std::uint64_t{local} << 16 | remote;
    auto [it, fresh] = memo_.try_emplace(key, 0);
    if (fresh) {
      auto boxes = v.allowedBoxes(d, local, remote);
      auto [p, added] = ids_.try_emplace(std::move(boxes), static_cast<std::uint32_t>(ids_.size()));
      it->second = p->second;
    }
    return it->second;
  }

 private:
  std::unordered_map<std::uint64_t, std::uint32_t> memo_;
  std::map<std::vector<std::uint64_t>, std::uint32_t> ids_;
};

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
  SidePatterns patterns;
  auto sides = [&](const ClusterView& v, int which, std::uint32_t src, std::uint32_t dst) {
    const auto& s = v.classes()[src];
    const auto& d = v.classes()[dst];
    return std::make_pair(patterns.get(v, which, Direction::kEgress, s.egress, d.remote),
                          patterns.get(v, which, Direction::kIngress, d.ingress, s.remote));
  };
  for (const Joint& x : joints) {
    for (const Joint& y : joints) {
      if (before.classes()[x.before].family != before.classes()[y.before].family) continue;
      if (sides(before, 0, x.before, y.before) == sides(after, 1, x.after, y.after)) continue;
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
