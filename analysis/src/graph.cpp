#include "zonewall/analysis/graph.h"

// Boost's edge iterators trip GCC 12's -Wmaybe-uninitialized when inlined (a known false
// positive of boost::optional inside adj_list_edge_iterator): silenced for its headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/boykov_kolmogorov_max_flow.hpp>
#include <boost/graph/breadth_first_search.hpp>
#pragma GCC diagnostic pop
#include <map>
#include <set>
#include <tuple>

namespace zonewall::analysis {
namespace {

int familyIndex(Family f) { return f == Family::kV4 ? 0 : 1; }

// Address space that is not the Internet's: private, shared, loopback, link-local, multicast,
// reserved, unique-local (IPv4 as mapped into the 128-bit space).
IntervalSet nonPublic() {
  IntervalSet s;
  for (const char* c : {"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                        "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3", "::/127", "fc00::/7",
                        "fe80::/10", "ff00::/8"}) {
    s = s.unite(IntervalSet::ofCidr(parseCidr(c)->cidr));
  }
  return s;
}

}  // namespace

PodGraph buildPodGraph(const ClusterView& view, const std::vector<std::uint32_t>& extra) {
  PodGraph g;
  const policy::Store& store = view.store();
  g.node_of_pod.assign(store.pods.size(), kNoNode);
  // Each pod's class per family: its first address of the family, as diff and matrix use.
  std::vector<std::optional<std::uint32_t>> cls[2];
  cls[0].resize(store.pods.size());
  cls[1].resize(store.pods.size());
  for (const auto& e : view.endpoints()) {
    auto& slot = cls[familyIndex(e.addr.family())][e.pod];
    if (!slot) slot = e.cls;
  }
  std::map<std::tuple<std::optional<std::uint32_t>, std::optional<std::uint32_t>, std::uint32_t>,
           std::uint32_t>
      index;
  for (std::uint32_t p = 0; p < store.pods.size(); ++p) {
    if (!cls[0][p] && !cls[1][p]) continue;
    auto key = std::make_tuple(cls[0][p], cls[1][p], extra.empty() ? 0U : extra[p]);
    auto [it, fresh] = index.try_emplace(key, static_cast<std::uint32_t>(g.nodes.size()));
    if (fresh) g.nodes.push_back({{}, {cls[0][p], cls[1][p]}, std::get<2>(key)});
    g.nodes[it->second].pods.push_back(p);
    g.node_of_pod[p] = it->second;
  }
  for (std::uint32_t a = 0; a < g.nodes.size(); ++a) {
    for (std::uint32_t b = 0; b < g.nodes.size(); ++b) {
      if (a == b && g.nodes[a].pods.size() < 2) continue;  // a pod's flows to itself
      PodGraph::Edge e{a, b, {}, {}};
      std::set<std::string> seen;
      std::vector<std::tuple<Protocol, Protocol, std::uint16_t, std::uint16_t>> boxes;
      for (int f = 0; f < 2; ++f) {
        if (!g.nodes[a].cls[f] || !g.nodes[b].cls[f]) continue;
        for (const FlowSegment& s : view.flows(*g.nodes[a].cls[f], *g.nodes[b].cls[f])) {
          if (!s.allowed()) continue;
          boxes.emplace_back(s.proto_lo, s.proto_hi, s.port_lo, s.port_hi);
          for (const Outcome* o : {s.egress, s.ingress}) {
            const Attribution& at = view.attribution(*o);
            if (at.kind == Attribution::Kind::kRule && seen.insert(at.str()).second)
              e.rules.push_back(at);
          }
        }
      }
      if (boxes.empty()) continue;
      // Both families' boxes as one set: cut at every protocol boundary, ports merged.
      std::set<int> cuts{0, 256};
      for (const auto& [pl, ph, lo, hi] : boxes) {
        cuts.insert(pl);
        cuts.insert(ph + 1);
      }
      for (auto c = cuts.begin(); std::next(c) != cuts.end(); ++c) {
        std::vector<std::pair<std::uint16_t, std::uint16_t>> ports;
        for (const auto& [pl, ph, lo, hi] : boxes) {
          if (pl <= *c && *c <= ph) ports.push_back({lo, hi});
        }
        std::sort(ports.begin(), ports.end());
        for (const auto& [lo, hi] : ports) {
          addL4(e.l4, static_cast<Protocol>(*c), static_cast<Protocol>(*std::next(c) - 1), lo, hi);
        }
      }
      g.edges.push_back(std::move(e));
    }
  }
  return g;
}

Reach reachFrom(const PodGraph& g, const std::vector<std::uint32_t>& sources) {
  using Graph =
      boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, boost::no_property,
                            boost::property<boost::edge_index_t, std::uint32_t>>;
  const auto n = static_cast<std::uint32_t>(g.nodes.size());
  Graph bg(n + 1);  // vertex n: a start joined to every source
  for (std::uint32_t k = 0; k < g.edges.size(); ++k) {
    if (g.edges[k].from != g.edges[k].to) boost::add_edge(g.edges[k].from, g.edges[k].to, k, bg);
  }
  for (std::uint32_t s : sources) boost::add_edge(n, s, kNoNode, bg);
  std::vector<int> dist(n + 1, -1);
  std::vector<std::uint32_t> via(n + 1, kNoNode);
  dist[n] = -1;
  auto index = boost::get(boost::edge_index, bg);
  struct Recorder : boost::default_bfs_visitor {
    std::vector<int>* dist;
    std::vector<std::uint32_t>* via;
    decltype(index) idx;
    void tree_edge(Graph::edge_descriptor e, const Graph& gr) const {
      (*dist)[boost::target(e, gr)] = (*dist)[boost::source(e, gr)] + 1;
      (*via)[boost::target(e, gr)] = boost::get(idx, e);
    }
  };
  Recorder rec;
  rec.dist = &dist;
  rec.via = &via;
  rec.idx = index;
  boost::breadth_first_search(bg, boost::vertex(n, bg), boost::visitor(rec));
  Reach r;
  r.hops.assign(dist.begin(), dist.begin() + n);
  r.via.assign(via.begin(), via.begin() + n);
  return r;
}

std::optional<std::vector<std::uint32_t>> minimumCut(const PodGraph& g,
                                                     const std::vector<std::uint32_t>& sources,
                                                     const std::vector<std::uint32_t>& targets) {
  std::set<std::uint32_t> src(sources.begin(), sources.end());
  for (std::uint32_t t : targets) {
    if (src.contains(t)) return std::nullopt;
  }
  using Traits = boost::adjacency_list_traits<boost::vecS, boost::vecS, boost::directedS>;
  using Graph = boost::adjacency_list<
      boost::vecS, boost::vecS, boost::directedS,
      boost::property<boost::vertex_index_t, long,
                      boost::property<boost::vertex_color_t, boost::default_color_type,
                                      boost::property<boost::vertex_distance_t, long,
                                                      boost::property<boost::vertex_predecessor_t,
                                                                      Traits::edge_descriptor>>>>,
      boost::property<
          boost::edge_capacity_t, long,
          boost::property<boost::edge_residual_capacity_t, long,
                          boost::property<boost::edge_reverse_t, Traits::edge_descriptor>>>>;
  const auto n = static_cast<std::uint32_t>(g.nodes.size());
  const std::uint32_t s = n;
  const std::uint32_t t = n + 1;
  // Every real edge costs 1; the joins to the super source and sink cannot be cut.
  const long kUncuttable = static_cast<long>(g.edges.size()) + 1;
  Graph fg(n + 2);
  auto cap = boost::get(boost::edge_capacity, fg);
  auto rev = boost::get(boost::edge_reverse, fg);
  auto addArc = [&](std::uint32_t u, std::uint32_t v, long c) {
    auto e = boost::add_edge(u, v, fg).first;
    auto r = boost::add_edge(v, u, fg).first;
    cap[e] = c;
    cap[r] = 0;
    rev[e] = r;
    rev[r] = e;
    return e;
  };
  std::vector<std::pair<Traits::edge_descriptor, std::uint32_t>> real;
  for (std::uint32_t k = 0; k < g.edges.size(); ++k) {
    if (g.edges[k].from == g.edges[k].to) continue;
    real.push_back({addArc(g.edges[k].from, g.edges[k].to, 1), k});
  }
  for (std::uint32_t x : sources) addArc(s, x, kUncuttable);
  for (std::uint32_t x : targets) addArc(x, t, kUncuttable);
  boost::boykov_kolmogorov_max_flow(fg, s, t);
  // The source side: what the residual graph still reaches from s. Boykov-Kolmogorov leaves
  // the colors of the source tree black.
  auto color = boost::get(boost::vertex_color, fg);
  std::vector<std::uint32_t> cut;
  for (const auto& [e, k] : real) {
    const bool from_src = boost::get(color, boost::source(e, fg)) == boost::black_color;
    const bool to_src = boost::get(color, boost::target(e, fg)) == boost::black_color;
    if (from_src && !to_src) cut.push_back(k);
  }
  return cut;
}

std::vector<std::uint32_t> exposedPods(const ClusterView& view) {
  const compiler::NodeTable& t = view.table();
  const IntervalSet outside = nonPublic().complement();
  // The remote classes of the table's intervals (the gaps between them are class 0) that
  // hold a public address.
  std::set<compiler::RemoteClassId> public_classes;
  U128 next = 0;
  auto consider = [&](U128 lo, U128 hi, compiler::RemoteClassId c) {
    IntervalSet one;
    one.add({lo, hi});
    if (!one.intersect(outside).empty()) public_classes.insert(c);
  };
  for (const auto& [range, c] : t.remote_ranges) {
    if (range.lo > next) consider(next, range.lo - 1, compiler::kNoRemoteClass);
    consider(range.lo, range.hi, c);
    next = range.hi == kU128Max ? kU128Max : range.hi + 1;
    if (range.hi == kU128Max) break;
  }
  if (t.remote_ranges.empty() || t.remote_ranges.back().first.hi != kU128Max) {
    consider(next, kU128Max, compiler::kNoRemoteClass);
  }
  std::set<std::uint32_t> pods;
  std::map<std::uint32_t, bool> by_class;
  for (const auto& e : view.endpoints()) {
    auto [it, fresh] = by_class.try_emplace(e.cls, false);
    if (fresh) {
      for (compiler::RemoteClassId c : public_classes) {
        if (view.ingressAllowsAny(e.cls, c)) {
          it->second = true;
          break;
        }
      }
    }
    if (it->second) pods.insert(e.pod);
  }
  return {pods.begin(), pods.end()};
}

}  // namespace zonewall::analysis
