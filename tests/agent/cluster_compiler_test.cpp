// The agent's compile paths: after every change (a pod relabelled, readdressed, added or
// deleted; a local pod's endpoint record come, changed or gone, a pod terminating; a policy
// added, replaced or removed; a pod shown before it has an address, then deleted or addressed;
// pods and a policy in one snapshot; and what compiles afresh: an address two pods claim, a
// namespace relabelled), the kept-alive ClusterCompiler's table decides every probed flow
// exactly as a fresh compile of the same cluster does. 300 seeded random clusters, 10 changes
// each, through a ClusterState as the agent's sources fill it.
#include "zonewall/agent/cluster_compiler.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "compiler/generator.h"
#include "compiler/harness.h"
#include "zonewall/agent/objects.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"

namespace zonewall::agent {
namespace {

using compiler::Direction;

struct Probe {
  Addr remote;
  policy::Protocol proto;
  std::uint16_t port;
};

policy::Store load(const std::string& yaml) {
  policy::Store s;
  Diagnostics d;
  policy::loadSources({{"gen.yaml", yaml}}, s, d);
  for (const auto& x : d.all()) {
    if (x.severity == Severity::kError) ADD_FAILURE() << x.str() << "\n" << yaml;
  }
  return s;
}

const std::atomic<bool> kNoStop{false};

ClusterState::Snapshot take(ClusterState& s,
                            const std::function<bool(const ClusterState::Snapshot&)>& f) {
  auto snap = s.take(0, Clock::now() + std::chrono::seconds(1), std::chrono::microseconds(0),
                     std::chrono::microseconds(0), kNoStop, f);
  EXPECT_TRUE(snap);
  return snap ? std::move(*snap) : ClusterState::Snapshot{};
}

TEST(ClusterCompiler, EveryPathEqualsAFreshCompile) {
  std::map<ClusterCompiler::Path, int> paths;
  for (std::uint32_t seed = 1; seed <= 300; ++seed) {
    compiler::Generator g(seed * 104729);
    std::string yaml = g.cluster();
    policy::Store store = load(yaml);
    // Two states fed the same events: the agent's (incremental when it can) and a mirror
    // compiled afresh every time.
    ClusterState live("n1");
    ClusterState mirror("n1");
    live.replaceAll(objectsOf(policy::Store(store)));
    mirror.replaceAll(objectsOf(policy::Store(store)));
    ClusterCompiler cc("n1");
    auto wants_full = [&](const ClusterState::Snapshot& s) { return !cc.incremental(s); };
    auto first = take(live, wants_full);
    ASSERT_TRUE(cc.apply(first).has_value()) << yaml;
    take(mirror, [](const auto&) { return true; });

    std::vector<Probe> probes;
    for (int i = 0; i < 16; ++i) {
      auto [proto, port] = g.l4();
      probes.push_back({*parseAddr(g.address()), proto, port});
    }
    for (const auto& p : store.pods) {
      for (Addr a : p.ips) probes.push_back({a, policy::kTcp, 80});
    }
    int namespaces = static_cast<int>(store.namespaces.size());
    bool tiers = !store.tiers.empty();
    std::vector<policy::Pod> pending;
    std::map<std::string, cni::EndpointRecord> records;  // by file
    // Addresses pods move to or are added with: free ones, some inside network sets' ranges.
    std::vector<Addr> pool;
    for (const char* a : {"10.0.0.3", "10.0.1.200", "192.0.2.130", "fd00::99", "10.0.0.40",
                          "10.0.1.41", "10.250.0.1", "10.250.0.2", "10.250.0.3", "fd00::41"}) {
      pool.push_back(*parseAddr(a));
      probes.push_back({pool.back(), policy::kTcp, 80});
    }
    auto used = [&](Addr a) {
      for (const auto& p : store.pods) {
        if (std::find(p.ips.begin(), p.ips.end(), a) != p.ips.end()) return true;
      }
      for (const auto& [file, r] : records) {
        if (std::find(r.ips.begin(), r.ips.end(), a) != r.ips.end()) return true;
      }
      return false;
    };
    auto freeAddr = [&]() -> std::optional<Addr> {
      std::vector<Addr> free;
      for (Addr a : pool) {
        if (!used(a)) free.push_back(a);
      }
      if (free.empty()) return std::nullopt;
      return free[static_cast<size_t>(g.pickInt(0, static_cast<int>(free.size()) - 1))];
    };
    auto upsertPod = [&](const policy::Pod& pod, bool terminating = false) {
      Object o;
      o.store.pods.push_back(pod);
      o.terminating = terminating;
      auto it = std::find_if(store.pods.begin(), store.pods.end(),
                             [&](const policy::Pod& q) { return q.key() == pod.key(); });
      if (it == store.pods.end()) {
        store.pods.push_back(pod);
      } else {
        *it = pod;
      }
      return o;
    };
    for (int step = 0; step < 10; ++step) {
      std::string what;
      auto event = [&](auto&& f) {
        f(live);
        f(mirror);
      };
      auto randomPod = [&]() -> policy::Pod& {
        return store.pods[g.pickInt(0, static_cast<int>(store.pods.size()) - 1)];
      };
      int kind = g.pickInt(0, 16);
      if (kind <= 2 && !store.pods.empty()) {
        policy::Pod pod = randomPod();
        pod.labels = g.podLabels();
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "relabel " + pod.key();
      } else if (kind == 3 && !store.pods.empty()) {
        auto a = freeAddr();
        if (!a) continue;
        policy::Pod pod = randomPod();
        pod.ips = {*a};
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "readdress " + pod.key() + " to " + formatAddr(*a);
      } else if (kind <= 6) {
        int i = kind == 4 ? 100 + step : g.pickInt(0, 3);
        for (auto& [key, o] : objectsOf(load(g.policyYaml(i, namespaces, tiers)))) {
          event([&](ClusterState& s) { s.upsert(key.first, key.second, o); });
          what = "upsert " + key.second;
        }
      } else if (kind == 7) {
        std::vector<ObjectKey> policies;
        for (const auto& p : store.k8s_policies)
          policies.push_back({Kind::kNetworkPolicy, p.key()});
        for (const auto& p : store.calico_policies) {
          policies.push_back({p.global ? Kind::kGlobalPolicy : Kind::kCalicoPolicy, p.key()});
        }
        if (policies.empty()) continue;
        ObjectKey k = policies[g.pickInt(0, static_cast<int>(policies.size()) - 1)];
        event([&](ClusterState& s) { s.erase(k.first, k.second); });
        what = "erase " + k.second;
      } else if (kind == 8 && !store.pods.empty()) {
        size_t i = static_cast<size_t>(g.pickInt(0, static_cast<int>(store.pods.size()) - 1));
        std::string key = store.pods[i].key();
        event([&](ClusterState& s) { s.erase(Kind::kPod, key); });
        store.pods.erase(store.pods.begin() + static_cast<std::ptrdiff_t>(i));
        what = "delete pod " + key;
      } else if (kind == 9 && !store.pods.empty()) {
        auto a = freeAddr();
        if (!a) continue;
        policy::Pod pod = randomPod();
        pod.name = "added-" + std::to_string(step);
        pod.node = g.pickInt(0, 1) == 0 ? "n1" : "n2";
        pod.labels = g.podLabels();
        pod.ips = {*a};
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "add pod " + pod.key() + " at " + formatAddr(*a) + " on " + pod.node;
      } else if (kind == 10 && !store.pods.empty()) {
        // A pod the API shows before its node has given it an address.
        policy::Pod pod = randomPod();
        pod.name = "pending-" + std::to_string(step);
        pod.ips.clear();
        pod.labels = g.podLabels();
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        pending.push_back(pod);
        what = "pending pod " + pod.key();
      } else if (kind == 11 && !pending.empty()) {
        // ...and then either goes away, or gets its address (from the API).
        policy::Pod pod = pending.back();
        pending.pop_back();
        auto a = freeAddr();
        if (g.pickInt(0, 1) == 0 || !a) {
          event([&](ClusterState& s) { s.erase(Kind::kPod, pod.key()); });
          std::erase_if(store.pods, [&](const policy::Pod& q) { return q.key() == pod.key(); });
          what = "pending pod deleted " + pod.key();
        } else {
          pod.ips = {*a};
          Object o = upsertPod(pod);
          event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
          what = "pending pod addressed " + pod.key();
        }
      } else if (kind == 12 && !store.pods.empty()) {
        // The CNI plugin's record of a pod (on this node: its addresses; or not, or a pod the
        // API does not show): written, rewritten with another address, or removed.
        policy::Pod& pod = randomPod();
        std::string file = "zw:c-" + pod.name + ":eth0.json";
        auto a = freeAddr();
        if (records.contains(file) && (g.pickInt(0, 1) == 0 || !a)) {
          event([&](ClusterState& s) { s.eraseEndpoint(file); });
          records.erase(file);
          what = "record gone " + pod.key();
        } else if (a) {
          cni::EndpointRecord r{.network = "zw",
                                .container_id = "c-" + pod.name,
                                .ifname = "eth0",
                                .pod_namespace = pod.ns,
                                .pod_name = g.pickInt(0, 5) == 0 ? "unknown" : pod.name,
                                .netns = "/run/netns/x",
                                .host_veth = pod.hostVeth(),
                                .ips = {*a}};
          event([&](ClusterState& s) { s.upsertEndpoint(file, r); });
          records[file] = r;
          what = "record " + r.pod_namespace + "/" + r.pod_name + " at " + formatAddr(*a);
        }
      } else if (kind == 13 && !store.pods.empty()) {
        // Terminating: a local pod keeps its addresses while its record does.
        policy::Pod pod = randomPod();
        Object o = upsertPod(pod, true);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "terminating " + pod.key();
      } else if (kind == 14 && store.pods.size() >= 2) {
        // Two pods claim one address: compiled afresh (the assembly picks the owner).
        policy::Pod pod = store.pods[0];
        pod.ips = store.pods[1].ips;
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "address of " + store.pods[1].key() + " claimed by " + pod.key();
      } else if (kind == 15 && !store.namespaces.empty()) {
        // A namespace relabelled (its pods re-added; with NetworkSets, compiled afresh), or
        // its object deleted while pods still run in it.
        auto& n = store.namespaces[g.pickInt(0, static_cast<int>(store.namespaces.size()) - 1)];
        if (g.pickInt(0, 3) == 0) {
          std::string name = n.name;
          event([&](ClusterState& s) { s.erase(Kind::kNamespace, name); });
          store.namespaces.erase(store.namespaces.begin() + (&n - store.namespaces.data()));
          what = "delete namespace " + name;
        } else {
          n.labels["team"] = g.pickInt(0, 1) == 0 ? "red" : "green";
          Object o;
          o.store.namespaces.push_back(n);
          event([&](ClusterState& s) { s.upsert(Kind::kNamespace, n.name, o); });
          what = "relabel namespace " + n.name;
        }
      } else {
        // Pods and a policy in one snapshot.
        if (store.pods.empty()) continue;
        policy::Pod pod = store.pods.front();
        pod.labels = g.podLabels();
        Object o = upsertPod(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        if (auto a = freeAddr()) {
          policy::Pod other = store.pods.back();
          other.ips = {*a};
          Object o2 = upsertPod(other);
          event([&](ClusterState& s) { s.upsert(Kind::kPod, other.key(), o2); });
        }
        for (auto& [key, obj] : objectsOf(load(g.policyYaml(200 + step, namespaces, tiers)))) {
          event([&](ClusterState& s) { s.upsert(key.first, key.second, obj); });
        }
        what = "pods + upsert";
      }
      auto snap = take(live, wants_full);
      auto path = cc.apply(snap);
      ASSERT_TRUE(path.has_value()) << path.error().str();
      paths[*path]++;
      auto fresh_snap = take(mirror, [](const auto&) { return true; });
      compiler::Inventory inv(fresh_snap.store);
      auto fresh = compiler::compileNode(compiler::lower(fresh_snap.store), inv, "n1");
      ASSERT_TRUE(fresh.has_value());
      const compiler::NodeTable& inc = cc.table();
      std::string context = "seed " + std::to_string(seed) + " step " + std::to_string(step) +
                            " (" + what + ", " + ClusterCompiler::pathName(*path) + ")";
      for (const auto& pa : inv.addrs()) {
        if (fresh_snap.store.pods[pa.pod].node != "n1") continue;
        for (const Probe& pr : probes) {
          if (pr.remote.family() != pa.addr.family()) continue;
          for (Direction d : {Direction::kIngress, Direction::kEgress}) {
            const auto* a = inc.decide(d, pa.addr, pr.remote, pr.proto, pr.port);
            const auto* b = fresh->decide(d, pa.addr, pr.remote, pr.proto, pr.port);
            ASSERT_NE(a, nullptr) << context;
            ASSERT_NE(b, nullptr) << context;
            ASSERT_EQ(a->allow, b->allow) << context << " " << compiler::directionName(d) << " "
                                          << formatAddr(pa.addr) << " <-> " << formatAddr(pr.remote)
                                          << " " << int(pr.proto) << "/" << pr.port << "\n"
                                          << yaml;
            ASSERT_EQ(inc.attributions[a->attribution], fresh->attributions[b->attribution])
                << context;
          }
        }
      }
      ASSERT_EQ(inc.endpoints.size(), fresh->endpoints.size()) << context;
      for (size_t e = 0; e < fresh->endpoints.size(); ++e) {
        EXPECT_EQ(inc.endpoints[e].pod, fresh->endpoints[e].pod) << context;
        EXPECT_EQ(inc.endpoints[e].iface, fresh->endpoints[e].iface) << context;
        EXPECT_EQ(inc.endpoints[e].addrs, fresh->endpoints[e].addrs) << context;
      }
      EXPECT_EQ(cc.dropped(), fresh_snap.dropped) << context;
    }
  }
  // Every path ran, the incremental ones most.
  for (const auto& [path, n] : paths) {
    std::printf("path %-14s %d snapshots\n", ClusterCompiler::pathName(path), n);
  }
  EXPECT_GT(paths[ClusterCompiler::Path::kPods], 800);
  EXPECT_GT(paths[ClusterCompiler::Path::kPolicies], 500);
  EXPECT_GT(paths[ClusterCompiler::Path::kPodsAndPolicies], 100);
  EXPECT_GT(paths[ClusterCompiler::Path::kFull], 150);
  EXPECT_GT(paths[ClusterCompiler::Path::kUnchanged], 50);
}

}  // namespace
}  // namespace zonewall::agent
