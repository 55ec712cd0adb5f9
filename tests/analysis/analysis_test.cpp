// Analysis on classes against brute force over pods: on random worlds (the differential test's
// generator), the class view decides every pod pair and every port segment as the reference
// evaluator does, and diff reports exactly the (pod pair, protocol, port) whose verdict a
// random change (policies added, removed, pods relabelled) flips, with the rule that flipped
// it.
#include <gtest/gtest.h>

#include <set>
#include <tuple>

#include "compiler/generator.h"
#include "zonewall/analysis/contract.h"
#include "zonewall/analysis/diff.h"
#include "zonewall/analysis/graph.h"
#include "zonewall/analysis/view.h"
#include "zonewall/compiler/reference.h"
#include "zonewall/policy/loader.h"

namespace zonewall::analysis {
namespace {

using compiler::Generator;

policy::Store loadYaml(const std::string& yaml) {
  policy::Store store;
  Diagnostics diags;
  policy::loadSources({{"world.yaml", yaml}}, store, diags);
  policy::validateStore(store, diags);
  for (const auto& d : diags.all()) {
    if (d.severity == Severity::kError) ADD_FAILURE() << d.str() << "\n" << yaml;
  }
  return store;
}

// Every elementary segment of the ports the generator writes (53, 80, 443, 1000-2000,
// 1500-1600, 8080 and their neighbours), ICMP types and codes, and a protocol without ports.
std::vector<std::pair<Protocol, std::uint16_t>> probes() {
  std::vector<std::pair<Protocol, std::uint16_t>> out;
  std::set<int> ports{0, 65535};
  for (int b : {53, 80, 443, 1000, 1500, 1600, 2000, 8080}) {
    for (int d : {-1, 0, 1}) ports.insert(b + d);
  }
  for (Protocol p : {policy::kTcp, policy::kUdp, policy::kSctp}) {
    for (int port : ports) out.push_back({p, static_cast<std::uint16_t>(port)});
  }
  for (int type : {0, 3, 8}) {
    for (int code : {0, 1})
      out.push_back({policy::kIcmp, static_cast<std::uint16_t>(type << 8 | code)});
  }
  for (int type : {128, 129})
    out.push_back({policy::kIcmpV6, static_cast<std::uint16_t>(type << 8)});
  out.push_back({47, 0});
  return out;
}

// The address a flow between two pods uses: the destination's first of `f`, the source's.
std::optional<Addr> firstOf(const policy::Pod& p, Family f) {
  for (Addr a : p.ips) {
    if (a.family() == f) return a;
  }
  return std::nullopt;
}

TEST(View, DecidesEveryPodPairAsTheReference) {
  const auto l4s = probes();
  size_t checked = 0;
  for (std::uint32_t seed = 1; seed <= 300; ++seed) {
    Generator g(seed);
    policy::Store store = loadYaml(g.cluster());
    auto view = ClusterView::build(store);
    ASSERT_TRUE(view.has_value()) << view.error().str();
    compiler::ReferenceEvaluator ref(store);
    const auto& eps = (*view)->endpoints();
    for (const auto& s : eps) {
      for (const auto& d : eps) {
        if (s.addr.family() != d.addr.family()) {
          EXPECT_TRUE((*view)->flows(s.cls, d.cls).empty());
          continue;
        }
        for (const auto& [proto, port] : l4s) {
          auto seg = (*view)->flow(s.cls, d.cls, proto, port);
          ASSERT_TRUE(seg.has_value());
          ASSERT_EQ(seg->allowed(), ref.connectionAllowed({s.addr, d.addr, proto, port}))
              << "seed " << seed << ": " << formatAddr(s.addr) << " -> " << formatAddr(d.addr)
              << " " << port << "/" << int(proto);
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 100000U);
}

// A random change of a world: a policy added, a policy removed, a pod relabelled (any of them).
std::string changed(const std::string& yaml, Generator& g, std::uint32_t seed) {
  std::vector<std::string> docs;
  size_t at = 0;
  while (at < yaml.size()) {
    size_t next = yaml.find("---\n", at + 1);
    if (next == std::string::npos) next = yaml.size();
    docs.push_back(yaml.substr(at, next - at));
    at = next;
  }
  std::string out;
  const bool drop = seed % 3 != 1;
  const bool add = seed % 3 != 2;
  const bool relabel = seed % 4 == 0;
  bool dropped = false;
  bool relabelled = false;
  for (const std::string& d : docs) {
    const bool is_policy =
        d.find("Policy\n") != std::string::npos && d.find("Staged") == std::string::npos;
    if (drop && !dropped && is_policy) {
      dropped = true;
      continue;
    }
    if (relabel && !relabelled && d.find("kind: Pod") != std::string::npos) {
      std::string r = d;
      if (auto p = r.find("app: a"); p != std::string::npos) {
        r.replace(p, 6, "app: b");
        relabelled = true;
      } else if (auto q = r.find("app: b"); q != std::string::npos) {
        r.replace(q, 6, "app: c");
        relabelled = true;
      }
      out += r;
      continue;
    }
    out += d;
  }
  if (add) out += g.policyYaml(90, 1, false);
  return out;
}

TEST(Diff, ReportsExactlyTheFlowsAChangeFlips) {
  const auto l4s = probes();
  size_t worlds = 0;
  size_t flipped = 0;
  for (std::uint32_t seed = 1; seed <= 1000; ++seed) {
    Generator g(seed);
    std::string before_yaml = g.cluster();
    std::string after_yaml = changed(before_yaml, g, seed);
    policy::Store bs = loadYaml(before_yaml);
    policy::Store as = loadYaml(after_yaml);
    if (::testing::Test::HasFailure()) FAIL() << "seed " << seed;
    auto bv = ClusterView::build(bs);
    auto av = ClusterView::build(as);
    ASSERT_TRUE(bv.has_value() && av.has_value());
    FlowDiff diff = diffViews(**bv, **av);
    ++worlds;

    // What diff says, expanded to pod pairs and probes.
    using Flip = std::tuple<std::string, std::string, Protocol, std::uint16_t, bool>;
    std::set<Flip> said;
    for (const FlowChange& c : diff.changes) {
      ASSERT_FALSE(c.now.empty());
      ASSERT_EQ(c.now.size(), c.before.size());
      for (const auto& [proto, port] : l4s) {
        bool in = std::any_of(c.l4.begin(), c.l4.end(), [&](const L4Range& r) {
          return r.proto_lo <= proto && proto <= r.proto_hi &&
                 std::any_of(r.ports.begin(), r.ports.end(),
                             [&](const auto& pr) { return pr.lo <= port && port <= pr.hi; });
        });
        if (!in) continue;
        for (const std::string& s : diff.groups.at(c.from)) {
          for (const std::string& d : diff.groups.at(c.to)) {
            // A group names pods; a flip holds for the family the classes were of: collected
            // below per family, so keep both and let the brute force decide which exist.
            said.insert({s, d, proto, port, c.opened});
          }
        }
      }
    }
    // Brute force over every pod pair of both revisions and every probe.
    compiler::ReferenceEvaluator rb(bs);
    compiler::ReferenceEvaluator ra(as);
    std::set<Flip> truth;
    for (const policy::Pod& s : as.pods) {
      const policy::Pod* s0 = bs.findPod(s.ns, s.name);
      for (const policy::Pod& d : as.pods) {
        const policy::Pod* d0 = bs.findPod(d.ns, d.name);
        for (Family f : {Family::kV4, Family::kV6}) {
          auto sa = firstOf(s, f);
          auto da = firstOf(d, f);
          auto sb = firstOf(*s0, f);
          auto db = firstOf(*d0, f);
          if (!sa || !da || !sb || !db) continue;
          for (const auto& [proto, port] : l4s) {
            bool was = rb.connectionAllowed({*sb, *db, proto, port});
            bool now = ra.connectionAllowed({*sa, *da, proto, port});
            if (was != now) truth.insert({s.key(), d.key(), proto, port, now});
          }
        }
      }
    }
    // A dual-stack pair may flip in one family only while its groups name both: compare what
    // the brute force found with what diff said, for the pairs diff could mean.
    for (const Flip& t : truth) {
      ASSERT_TRUE(said.contains(t))
          << "seed " << seed << ": diff misses " << std::get<0>(t) << " -> " << std::get<1>(t)
          << " " << std::get<3>(t) << "/" << int(std::get<2>(t))
          << (std::get<4>(t) ? " opened" : " closed") << "\nbefore:\n"
          << before_yaml << "\nafter:\n"
          << after_yaml;
    }
    for (const Flip& s : said) {
      ASSERT_TRUE(truth.contains(s))
          << "seed " << seed << ": diff invents " << std::get<0>(s) << " -> " << std::get<1>(s)
          << " " << std::get<3>(s) << "/" << int(std::get<2>(s))
          << (std::get<4>(s) ? " opened" : " closed") << "\nbefore:\n"
          << before_yaml << "\nafter:\n"
          << after_yaml;
    }
    flipped += truth.size();
  }
  EXPECT_EQ(worlds, 1000U);
  EXPECT_GT(flipped, 1000U);  // the changes do flip flows: the check has something to check
}

// A random contract over the generator's labels: zones by app, by the pods' zone label, by
// namespace labels; statements of every kind with ports on the generator's boundaries.
policy::ZoneContract randomContract(std::mt19937& rng) {
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  auto sel = [](const char* text) { return *policy::parseSelector(text); };
  policy::ZoneContract c;
  c.name = "random";
  const char* pod_sels[] = {"app == 'a'",    "app == 'b'",    "app in {'b', 'c'}",
                            "zone == 'pub'", "zone == 'sec'", "all()"};
  const char* ns_sels[] = {"all()", "team == 'red'", "team == 'blue'", "has(env)"};
  for (int z = 0; z < 4; ++z) {
    c.zones.push_back({"z" + std::to_string(z),
                       sel(ns_sels[pick(4)]),
                       sel(pod_sels[pick(6)]),
                       false,
                       {"contract.yaml", z + 1, 1}});
  }
  const std::vector<policy::ContractPort> port_choices = {
      {policy::kTcp, 80, 80, {}},    {policy::kTcp, 1000, 2000, {}}, {policy::kUdp, 53, 53, {}},
      {policy::kTcp, 443, 443, {}},  {policy::kSctp, 0, 65535, {}},  {policy::kTcp, 0, 65535, {}},
      {policy::kUdp, 1500, 1600, {}}};
  for (int k = 0; k < 4; ++k) {
    policy::ContractStatement st;
    st.kind = static_cast<policy::ContractStatement::Kind>(pick(3));
    st.from = pick(5) == 0 ? "*" : c.zones[pick(4)].name;
    st.to = pick(5) == 0 ? "*" : c.zones[pick(4)].name;
    if (st.kind != policy::ContractStatement::Kind::kDeny) {
      int n = 1 + pick(2);
      for (int i = 0; i < n; ++i) st.ports.push_back(port_choices[pick(7)]);
    }
    st.loc = {"contract.yaml", 10 + k, 3};
    c.statements.push_back(st);
  }
  return c;
}

bool inZone(const policy::ZoneContract& c, const std::string& zone, const policy::Store& store,
            const policy::Pod& pod) {
  if (zone == "*") return true;
  const policy::Zone* z = c.zone(zone);
  return z->namespace_selector.matches(store.namespaceLabels(pod.ns)) &&
         z->selector.matches(pod.labels);
}

bool portListed(const std::vector<policy::ContractPort>& ports, Protocol p, std::uint16_t port) {
  return std::any_of(ports.begin(), ports.end(), [&](const policy::ContractPort& c) {
    return c.protocol == p && c.lo <= port && port <= c.hi;
  });
}

// Brute force: whether the flow breaks the statement, written from the statement's meaning.
bool bruteBreaks(const policy::ContractStatement& st, Protocol p, std::uint16_t port,
                 bool allowed) {
  switch (st.kind) {
    case policy::ContractStatement::Kind::kDeny:
      return allowed;
    case policy::ContractStatement::Kind::kAllowOnly:
      return allowed && !portListed(st.ports, p, port);
    case policy::ContractStatement::Kind::kRequire:
      return !allowed && portListed(st.ports, p, port);
  }
  return false;
}

TEST(Contract, VerdictsAgreeWithBruteForceAndCounterexamplesAreReal) {
  const auto l4s = probes();
  size_t checked = 0;
  size_t violated = 0;
  size_t empty_zone = 0;
  for (std::uint32_t seed = 1; seed <= 1000; ++seed) {
    Generator g(seed);
    policy::Store store = loadYaml(g.cluster());
    std::mt19937 rng(seed);
    policy::ZoneContract contract = randomContract(rng);
    // Most runs keep only zones some pod is in (statements about the others say "*"): one in
    // ten keeps an empty zone, which must be an error.
    if (seed % 10 != 0) {
      std::set<std::string> unused;
      for (const policy::Zone& z : contract.zones) {
        if (std::none_of(store.pods.begin(), store.pods.end(), [&](const policy::Pod& p) {
              return !p.ips.empty() && inZone(contract, z.name, store, p);
            }))
          unused.insert(z.name);
      }
      std::erase_if(contract.zones, [&](const policy::Zone& z) { return unused.contains(z.name); });
      for (auto& st : contract.statements) {
        if (st.from != "*" && contract.zone(st.from) == nullptr) st.from = "*";
        if (st.to != "*" && contract.zone(st.to) == nullptr) st.to = "*";
      }
    }
    auto view = ClusterView::build(store);
    ASSERT_TRUE(view.has_value());
    compiler::ReferenceEvaluator ref(store);
    auto result = checkContract(**view, contract);
    // A zone no pod (with an address) is in is an error, at the zone.
    std::optional<std::string> empty;
    for (const policy::Zone& z : contract.zones) {
      bool any = std::any_of(store.pods.begin(), store.pods.end(), [&](const policy::Pod& p) {
        return !p.ips.empty() && inZone(contract, z.name, store, p);
      });
      if (!any && !empty) empty = z.name;
    }
    if (empty) {
      ASSERT_FALSE(result.has_value()) << "seed " << seed;
      EXPECT_NE(result.error().message.find("zone '" + *empty + "' matches no pod"),
                std::string::npos)
          << result.error().message;
      ++empty_zone;
      continue;
    }
    ASSERT_TRUE(result.has_value()) << result.error().str();
    for (size_t k = 0; k < contract.statements.size(); ++k) {
      const auto& st = contract.statements[k];
      bool truth = false;
      for (const policy::Pod& s : store.pods) {
        if (!inZone(contract, st.from, store, s)) continue;
        for (const policy::Pod& d : store.pods) {
          if (&s == &d || !inZone(contract, st.to, store, d)) continue;
          for (Addr sa : s.ips) {
            for (Addr da : d.ips) {
              if (sa.family() != da.family()) continue;
              for (const auto& [proto, port] : l4s) {
                truth = truth ||
                        bruteBreaks(st, proto, port, ref.connectionAllowed({sa, da, proto, port}));
              }
            }
          }
        }
      }
      const auto& found = result->statements[k].violations;
      ASSERT_EQ(!found.empty(), truth) << "seed " << seed << " statement " << k;
      for (const Counterexample& v : found) {
        const auto& eps = (*view)->endpoints();
        const policy::Pod& s = store.pods[eps[v.from].pod];
        const policy::Pod& d = store.pods[eps[v.to].pod];
        ASSERT_NE(&s, &d);
        ASSERT_TRUE(inZone(contract, st.from, store, s) && inZone(contract, st.to, store, d));
        bool allowed =
            ref.connectionAllowed({eps[v.from].addr, eps[v.to].addr, v.protocol, v.port});
        ASSERT_EQ(allowed, v.flow.allowed());
        ASSERT_TRUE(bruteBreaks(st, v.protocol, v.port, allowed))
            << "seed " << seed << ": a counterexample that keeps the statement";
      }
      ++checked;
      violated += truth;
    }
  }
  EXPECT_GT(checked, 2000U);
  EXPECT_GT(violated, 200U);
  EXPECT_GT(empty_zone, 10U);
  EXPECT_LT(empty_zone, 100U);
}

// paths on the pod-group graph: the hops from a set of source pods to every pod equal a
// breadth-first search over the pods themselves (an edge wherever some flow is allowed), and
// the cut leaves no target reachable.
TEST(Paths, HopsAgreeWithBruteForceOverPodsAndTheCutDisconnects) {
  const auto l4s = probes();
  size_t worlds = 0;
  size_t far = 0;
  for (std::uint32_t seed = 1; seed <= 1000; ++seed) {
    Generator g(seed);
    policy::Store store = loadYaml(g.cluster());
    auto view = ClusterView::build(store);
    ASSERT_TRUE(view.has_value());
    compiler::ReferenceEvaluator ref(store);
    const size_t n = store.pods.size();
    std::vector<std::uint32_t> extra(n, 0);
    std::vector<size_t> sources;
    for (size_t p = 0; p < n; ++p) {
      if (store.pods[p].labels.at("app") == "a") {
        extra[p] |= 1;
        sources.push_back(p);
      }
      if (store.pods[p].labels.at("zone") == "sec") extra[p] |= 2;
    }
    if (sources.empty()) continue;
    // Brute force: pods, and an edge where any probe passes in either family.
    std::vector<std::vector<size_t>> adj(n);
    for (size_t a = 0; a < n; ++a) {
      for (size_t b = 0; b < n; ++b) {
        if (a == b) continue;
        bool edge = false;
        for (Family f : {Family::kV4, Family::kV6}) {
          auto sa = firstOf(store.pods[a], f);
          auto db = firstOf(store.pods[b], f);
          if (!sa || !db) continue;
          for (const auto& [proto, port] : l4s) {
            if (ref.connectionAllowed({*sa, *db, proto, port})) {
              edge = true;
              break;
            }
          }
          if (edge) break;
        }
        if (edge) adj[a].push_back(b);
      }
    }
    std::vector<int> hops(n, -1);
    std::vector<size_t> queue = sources;
    for (size_t s : sources) hops[s] = 0;
    for (size_t k = 0; k < queue.size(); ++k) {
      for (size_t b : adj[queue[k]]) {
        if (hops[b] < 0) {
          hops[b] = hops[queue[k]] + 1;
          queue.push_back(b);
        }
      }
    }
    PodGraph pg = buildPodGraph(**view, extra);
    std::vector<std::uint32_t> src_nodes;
    std::vector<std::uint32_t> dst_nodes;
    for (std::uint32_t k = 0; k < pg.nodes.size(); ++k) {
      if (pg.nodes[k].extra & 1) src_nodes.push_back(k);
      if (pg.nodes[k].extra & 2) dst_nodes.push_back(k);
    }
    Reach reach = reachFrom(pg, src_nodes);
    for (size_t p = 0; p < n; ++p) {
      if (store.pods[p].ips.empty()) continue;
      ASSERT_EQ(reach.hops[pg.node_of_pod[p]], hops[p])
          << "seed " << seed << ": hops to " << store.pods[p].key();
      far += hops[p] >= 2;
    }
    // The cut: without its edges no target node is reachable.
    auto cut = minimumCut(pg, src_nodes, dst_nodes);
    const bool overlap = std::any_of(src_nodes.begin(), src_nodes.end(), [&](std::uint32_t x) {
      return std::find(dst_nodes.begin(), dst_nodes.end(), x) != dst_nodes.end();
    });
    ASSERT_EQ(cut.has_value(), !overlap);
    if (cut) {
      PodGraph without = pg;
      std::set<std::uint32_t> gone(cut->begin(), cut->end());
      without.edges.clear();
      for (std::uint32_t k = 0; k < pg.edges.size(); ++k) {
        if (!gone.contains(k)) without.edges.push_back(pg.edges[k]);
      }
      Reach after = reachFrom(without, src_nodes);
      for (std::uint32_t t : dst_nodes) {
        ASSERT_EQ(after.hops[t], -1) << "seed " << seed << ": the cut leaves a target reachable";
      }
      // Not more edges than the targets' in-edges (a cut that size always exists).
      size_t in_edges = 0;
      for (const auto& e : pg.edges) {
        in_edges += e.from != e.to &&
                    std::find(dst_nodes.begin(), dst_nodes.end(), e.to) != dst_nodes.end();
      }
      ASSERT_LE(cut->size(), in_edges);
    }
    ++worlds;
  }
  EXPECT_GT(worlds, 500U);
  EXPECT_GT(far, 100U);  // paths of two hops or more happen: BFS depth is exercised
}

}  // namespace
}  // namespace zonewall::analysis
