// Lateral movement and the zone graph: paths (shortest paths, what is reachable within N hops,
// the smallest cut) and graph (DOT, SVG through Graphviz, JSON), both on the allowed-flow
// graph of pod groups (analysis/graph.h).
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cli.h"
#include "commands.h"
#include "process.h"
#include "review.h"
#include "zonewall/analysis/contract.h"
#include "zonewall/analysis/graph.h"
#include "zonewall/analysis/groups.h"
#include "zonewall/compiler/inventory.h"

namespace zonewall::tools {
namespace {

using json = nlohmann::ordered_json;
using analysis::kNoNode;
using analysis::PodGraph;

// Node names: per namespace, the group name of the node's pods there, joined with " + ".
std::vector<std::string> nodeNames(const policy::Store& store, const PodGraph& g) {
  analysis::GroupNamer namer(store);
  std::vector<std::vector<std::uint32_t>> ids(g.nodes.size());
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    std::map<std::string, std::vector<std::uint32_t>> by_ns;
    for (std::uint32_t p : g.nodes[n].pods) by_ns[store.pods[p].ns].push_back(p);
    for (auto& [ns, pods] : by_ns) ids[n].push_back(namer.add(pods));
  }
  const auto names = namer.names();
  std::vector<std::string> out;
  for (const auto& list : ids) {
    std::string s;
    for (std::uint32_t id : list) s += (s.empty() ? "" : " + ") + names[id];
    out.push_back(s);
  }
  return out;
}

// The pods an end of `paths` names: a zone of the contract, or a Calico selector (over the
// pod's labels and Calico's projectcalico.org/namespace).
std::expected<std::vector<bool>, std::string> podsNamed(
    const std::string& what, const std::string& text, const analysis::ClusterView& view,
    const policy::ZoneContract* contract, const std::vector<std::vector<std::uint32_t>>* zones) {
  const policy::Store& store = view.store();
  std::vector<bool> in(store.pods.size(), false);
  bool any = false;
  if (contract != nullptr && contract->zone(text) != nullptr) {
    for (size_t e = 0; e < view.endpoints().size(); ++e) {
      for (std::uint32_t z : (*zones)[e]) {
        if (contract->zones[z].name == text) {
          in[view.endpoints()[e].pod] = true;
          any = true;
        }
      }
    }
    return in;
  }
  auto sel = policy::parseSelector(text);
  if (!sel) {
    return std::unexpected(fmt::format(
        "{} '{}': invalid selector at column {}: {}{}", what, text, sel.error().offset + 1,
        sel.error().message, contract ? " (and no zone of the contract has that name)" : ""));
  }
  for (size_t p = 0; p < store.pods.size(); ++p) {
    if (!store.pods[p].ips.empty() && sel->matches(compiler::PodLabelView(store.pods[p], true))) {
      in[p] = true;
      any = true;
    }
  }
  if (!any) return std::unexpected(fmt::format("{} '{}' matches no pod", what, text));
  return in;
}

std::string edgeRules(const PodGraph::Edge& e) {
  std::string s;
  for (const auto& r : e.rules) s += (s.empty() ? "" : "; ") + r.str();
  return s.empty() ? "no policy applies" : s;
}

json edgeJson(const PodGraph::Edge& e, const std::vector<std::string>& names) {
  json rules = json::array();
  for (const auto& r : e.rules) rules.push_back(attributionJson(r));
  return {{"from", names[e.from]},
          {"to", names[e.to]},
          {"l4", analysis::l4Text(e.l4)},
          {"rules", rules}};
}

}  // namespace

int runPaths(const PathsOptions& o, Io io) {
  auto& [in, out, err] = io;
  auto loaded = loadForReview(o.paths, in, err);
  if (!loaded) return loaded.error();
  std::optional<Loaded> contract;
  if (!o.contract.empty()) {
    auto c = loadContract(o.contract, in, err, "paths");
    if (!c) return c.error();
    contract.emplace(std::move(*c));
  }
  const policy::ZoneContract* zc = contract ? &contract->store.contracts.front() : nullptr;
  auto view = analysis::ClusterView::build(loaded->store);
  if (!view) {
    err << "zonewall paths: " << view.error().str() << "\n";
    return kExitUsage;
  }
  std::vector<std::vector<std::uint32_t>> zones;
  if (zc != nullptr) {
    auto z = analysis::zoneMembership(**view, *zc);
    if (!z) {
      err << locatedError(z.error());
      return kExitUsage;
    }
    zones = std::move(*z);
  }
  const policy::Store& store = loaded->store;
  // Sources: --from, or the pods exposed outside the cluster (and the contract's exposed zones).
  std::vector<bool> from(store.pods.size(), false);
  std::string from_what;
  if (!o.from.empty()) {
    auto f = podsNamed("--from", o.from, **view, zc, zc ? &zones : nullptr);
    if (!f) {
      err << "zonewall paths: " << f.error() << "\n";
      return kExitUsage;
    }
    from = *f;
    from_what = o.from;
  } else {
    for (std::uint32_t p : analysis::exposedPods(**view)) from[p] = true;
    from_what = "pods that accept traffic from outside the cluster";
    if (zc != nullptr) {
      for (size_t e = 0; e < zones.size(); ++e) {
        for (std::uint32_t z : zones[e]) {
          if (zc->zones[z].exposed) from[(*view)->endpoints()[e].pod] = true;
        }
      }
      from_what += " or in an exposed zone";
    }
    if (std::none_of(from.begin(), from.end(), [](bool b) { return b; })) {
      out << "no pod accepts traffic from outside the cluster: no lateral path starts anywhere\n";
      return kExitOk;
    }
  }
  auto to = podsNamed("--to", o.to, **view, zc, zc ? &zones : nullptr);
  if (!to) {
    err << "zonewall paths: " << to.error() << "\n";
    return kExitUsage;
  }
  std::vector<std::uint32_t> extra(store.pods.size(), 0);
  for (size_t p = 0; p < store.pods.size(); ++p) {
    extra[p] = (from[p] ? 1U : 0U) | ((*to)[p] ? 2U : 0U);
  }
  const PodGraph g = analysis::buildPodGraph(**view, extra);
  const auto names = nodeNames(store, g);
  std::vector<std::uint32_t> sources;
  std::vector<std::uint32_t> targets;
  for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
    if (g.nodes[n].extra & 1U) sources.push_back(n);
    if (g.nodes[n].extra & 2U) targets.push_back(n);
  }
  const analysis::Reach reach = analysis::reachFrom(g, sources);
  auto within = [&](std::uint32_t n) {
    return reach.hops[n] >= 0 && (o.max_hops < 0 || reach.hops[n] <= o.max_hops);
  };
  auto pathTo = [&](std::uint32_t n) {
    std::vector<std::uint32_t> edges;
    for (std::uint32_t at = n; reach.via[at] != kNoNode; at = g.edges[reach.via[at]].from) {
      edges.push_back(reach.via[at]);
    }
    std::reverse(edges.begin(), edges.end());
    return edges;
  };
  std::vector<std::uint32_t> reached_targets;
  for (std::uint32_t t : targets) {
    if (within(t)) reached_targets.push_back(t);
  }
  std::sort(reached_targets.begin(), reached_targets.end(), [&](auto a, auto b) {
    return std::tie(reach.hops[a], names[a]) < std::tie(reach.hops[b], names[b]);
  });
  std::optional<std::vector<std::uint32_t>> cut;
  if (!reached_targets.empty()) cut = analysis::minimumCut(g, sources, targets);
  auto namesOf = [&](const std::vector<std::uint32_t>& nodes) {
    std::vector<std::string> v;
    for (std::uint32_t n : nodes) v.push_back(names[n]);
    std::sort(v.begin(), v.end());
    return v;
  };
  if (o.format == "json") {
    json paths = json::array();
    for (std::uint32_t t : reached_targets) {
      json hops = json::array();
      for (std::uint32_t e : pathTo(t)) hops.push_back(edgeJson(g.edges[e], names));
      paths.push_back({{"to", names[t]}, {"hops", reach.hops[t]}, {"path", hops}});
    }
    json reachable = json::array();
    for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
      if (within(n) && reach.hops[n] > 0) {
        reachable.push_back({{"group", names[n]}, {"hops", reach.hops[n]}});
      }
    }
    json doc = {{"from", {{"what", from_what}, {"groups", namesOf(sources)}}},
                {"to", {{"what", o.to}, {"groups", namesOf(targets)}}},
                {"max_hops", o.max_hops},
                {"paths", paths},
                {"reachable", reachable}};
    if (cut) {
      json c = json::array();
      for (std::uint32_t e : *cut) c.push_back(edgeJson(g.edges[e], names));
      doc["cut"] = c;
    }
    out << doc.dump(2) << "\n";
    return kExitOk;
  }
  out << fmt::format("from: {} ({})\n", from_what, fmt::join(namesOf(sources), ", "));
  out << fmt::format("to:   {} ({})\n", o.to, fmt::join(namesOf(targets), ", "));
  if (reached_targets.empty()) {
    out << (o.max_hops < 0 ? "no path: the targets cannot be reached\n"
                           : fmt::format("no path within {} hop(s)\n", o.max_hops));
    return kExitOk;
  }
  for (std::uint32_t t : reached_targets) {
    if (reach.hops[t] == 0) {
      out << fmt::format("\n{} is itself a source: 0 hops\n", names[t]);
      continue;
    }
    out << fmt::format("\nshortest path to {} ({} hop{}):\n", names[t], reach.hops[t],
                       reach.hops[t] == 1 ? "" : "s");
    for (std::uint32_t e : pathTo(t)) {
      const auto& edge = g.edges[e];
      out << fmt::format("  {} → {}  {}\n      allowed by {}\n", names[edge.from], names[edge.to],
                         analysis::l4Text(edge.l4), edgeRules(edge));
    }
  }
  out << fmt::format("\nreachable from the sources{}:\n",
                     o.max_hops < 0 ? "" : fmt::format(" within {} hop(s)", o.max_hops));
  std::vector<std::uint32_t> reachable;
  for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
    if (within(n) && reach.hops[n] > 0) reachable.push_back(n);
  }
  std::sort(reachable.begin(), reachable.end(), [&](auto a, auto b) {
    return std::tie(reach.hops[a], names[a]) < std::tie(reach.hops[b], names[b]);
  });
  for (std::uint32_t n : reachable) {
    out << fmt::format("  {} hop{}: {}\n", reach.hops[n], reach.hops[n] == 1 ? " " : "s", names[n]);
  }
  if (cut) {
    out << fmt::format(
        "\nsmallest cut: closing these {} flow(s) disconnects every source from every target:\n",
        cut->size());
    for (std::uint32_t e : *cut) {
      const auto& edge = g.edges[e];
      out << fmt::format("  {} → {}  {}\n      allowed by {}\n", names[edge.from], names[edge.to],
                         analysis::l4Text(edge.l4), edgeRules(edge));
    }
  }
  return kExitOk;
}

int runGraph(const GraphOptions& o, Io io) {
  auto& [in, out, err] = io;
  auto loaded = loadForReview(o.paths, in, err);
  if (!loaded) return loaded.error();
  std::optional<Loaded> contract;
  if (!o.contract.empty()) {
    auto c = loadContract(o.contract, in, err, "graph");
    if (!c) return c.error();
    contract.emplace(std::move(*c));
  }
  if (o.group == "zone" && !contract) {
    err << "zonewall graph: --group zone needs --contract FILE (the zones are the contract's)\n";
    return kExitUsage;
  }
  const policy::ZoneContract* zc = contract ? &contract->store.contracts.front() : nullptr;
  auto view = analysis::ClusterView::build(loaded->store);
  if (!view) {
    err << "zonewall graph: " << view.error().str() << "\n";
    return kExitUsage;
  }
  const policy::Store& store = loaded->store;
  // Nodes refined by the zones each pod is in, so that an edge is against the contract or not
  // for all of its pods.
  std::vector<std::vector<std::uint32_t>> pod_zones(store.pods.size());
  std::vector<std::uint32_t> extra(store.pods.size(), 0);
  if (zc != nullptr) {
    auto z = analysis::zoneMembership(**view, *zc);
    if (!z) {
      err << locatedError(z.error());
      return kExitUsage;
    }
    for (size_t e = 0; e < z->size(); ++e) {
      auto& pz = pod_zones[(*view)->endpoints()[e].pod];
      for (std::uint32_t zi : (*z)[e]) {
        if (std::find(pz.begin(), pz.end(), zi) == pz.end()) pz.push_back(zi);
      }
    }
    std::map<std::vector<std::uint32_t>, std::uint32_t> ids;
    for (size_t p = 0; p < store.pods.size(); ++p) {
      std::sort(pod_zones[p].begin(), pod_zones[p].end());
      extra[p] =
          ids.try_emplace(pod_zones[p], static_cast<std::uint32_t>(ids.size())).first->second;
    }
  }
  const PodGraph g = analysis::buildPodGraph(**view, extra);
  auto inZone = [&](const PodGraph::Node& n, const std::string& zone) {
    if (zone == "*") return true;
    const auto& pz = pod_zones[n.pods.front()];
    return std::any_of(pz.begin(), pz.end(),
                       [&](std::uint32_t z) { return zc->zones[z].name == zone; });
  };
  // Whether a flow of the edge breaks a deny or allowOnly statement of the contract.
  auto against = [&](const PodGraph::Edge& e) {
    if (zc == nullptr) return false;
    for (const auto& st : zc->statements) {
      if (st.kind == policy::ContractStatement::Kind::kRequire) continue;
      if (!inZone(g.nodes[e.from], st.from) || !inZone(g.nodes[e.to], st.to)) continue;
      for (const auto& r : e.l4) {
        for (const auto& pr : r.ports) {
          if (analysis::breakingPoint(st, r.proto_lo, r.proto_hi, pr.lo, pr.hi, true)) return true;
        }
      }
    }
    return false;
  };
  // The drawn graph: class nodes as they are, or merged by namespace or zone.
  struct DrawnEdge {
    std::vector<std::vector<analysis::L4Range>> l4;
    std::set<std::string> rules;
    bool against = false;
  };
  std::vector<std::string> labels;
  std::vector<std::vector<std::string>> members;  // pods, per drawn node
  std::map<std::pair<std::uint32_t, std::uint32_t>, DrawnEdge> drawn;
  std::vector<std::vector<std::uint32_t>> drawn_of(g.nodes.size());
  if (o.group == "class") {
    labels = nodeNames(store, g);
    for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
      drawn_of[n] = {n};
      members.emplace_back();
      for (std::uint32_t p : g.nodes[n].pods) members.back().push_back(store.pods[p].key());
    }
  } else {
    std::map<std::string, std::uint32_t> index;
    auto idOf = [&](const std::string& label) {
      auto [it, fresh] = index.try_emplace(label, static_cast<std::uint32_t>(labels.size()));
      if (fresh) {
        labels.push_back(label);
        members.emplace_back();
      }
      return it->second;
    };
    for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
      for (std::uint32_t p : g.nodes[n].pods) {
        std::vector<std::string> keys;
        if (o.group == "namespace") {
          keys.push_back(store.pods[p].ns);
        } else {
          for (std::uint32_t z : pod_zones[p]) keys.push_back(zc->zones[z].name);
          if (keys.empty()) keys.push_back("(no zone)");
        }
        for (const auto& k : keys) {
          std::uint32_t id = idOf(k);
          members[id].push_back(store.pods[p].key());
          if (std::find(drawn_of[n].begin(), drawn_of[n].end(), id) == drawn_of[n].end())
            drawn_of[n].push_back(id);
        }
      }
    }
  }
  for (const auto& e : g.edges) {
    const bool bad = against(e);
    for (std::uint32_t a : drawn_of[e.from]) {
      for (std::uint32_t b : drawn_of[e.to]) {
        if (a == b && o.group != "class") continue;  // flows inside a namespace or zone
        DrawnEdge& d = drawn[{a, b}];
        d.l4.push_back(e.l4);
        for (const auto& r : e.rules) d.rules.insert(r.str());
        d.against = d.against || bad;
      }
    }
  }
  if (o.format == "json") {
    json nodes = json::array();
    for (size_t n = 0; n < labels.size(); ++n) {
      auto pods = members[n];
      std::sort(pods.begin(), pods.end());
      pods.erase(std::unique(pods.begin(), pods.end()), pods.end());
      nodes.push_back({{"id", n}, {"label", labels[n]}, {"pods", pods}});
    }
    json edges = json::array();
    for (const auto& [ab, d] : drawn) {
      edges.push_back({{"from", ab.first},
                       {"to", ab.second},
                       {"l4", analysis::l4Text(analysis::unionL4(d.l4))},
                       {"rules", std::vector<std::string>(d.rules.begin(), d.rules.end())},
                       {"against_contract", d.against}});
    }
    out << json{{"group", o.group}, {"nodes", nodes}, {"edges", edges}}.dump(2) << "\n";
    return kExitOk;
  }
  auto quoted = [](const std::string& s) {
    std::string q = "\"";
    for (char c : s) {
      if (c == '"' || c == '\\') q += '\\';
      q += c;
    }
    return q + "\"";
  };
  std::string dot = "digraph zonewall {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n";
  for (size_t n = 0; n < labels.size(); ++n) {
    dot += fmt::format("  n{} [label={}];\n", n, quoted(labels[n]));
  }
  for (const auto& [ab, d] : drawn) {
    dot += fmt::format("  n{} -> n{} [label={}{}];\n", ab.first, ab.second,
                       quoted(analysis::l4Text(analysis::unionL4(d.l4))),
                       d.against ? ", color=red, fontcolor=red, penwidth=2" : "");
  }
  dot += "}\n";
  if (o.format == "dot") {
    out << dot;
    return kExitOk;
  }
  auto svg = runProcess({"dot", "-Tsvg"}, dot);
  if (!svg) {
    err << "zonewall graph: Graphviz's dot: " << svg.error().message
        << " (install the graphviz package, or use --format dot)\n";
    return kExitUsage;
  }
  out << *svg;
  return kExitOk;
}

}  // namespace zonewall::tools
