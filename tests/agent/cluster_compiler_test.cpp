// The agent's compile paths: after every change (a pod relabelled, a policy added, replaced
// or removed; a pod shown before it has an address, then deleted or addressed; now and then a
// pod added or removed, which compiles afresh), the kept-alive
// ClusterCompiler's table decides every probed flow exactly as a fresh compile of the same
// cluster does. 300 seeded random clusters, 8 changes each, through a ClusterState as the
// agent's sources fill it.
#include "zonewall/agent/cluster_compiler.h"

#include <gtest/gtest.h>

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
    for (int step = 0; step < 8; ++step) {
      std::string what;
      auto event = [&](auto&& f) {
        f(live);
        f(mirror);
      };
      int kind = g.pickInt(0, 11);
      if (kind <= 3 && !store.pods.empty()) {
        auto& pod = store.pods[g.pickInt(0, static_cast<int>(store.pods.size()) - 1)];
        pod.labels = g.podLabels();
        Object o;
        o.store.pods.push_back(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        what = "relabel " + pod.key();
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
        std::string key = store.pods.back().key();
        event([&](ClusterState& s) { s.erase(Kind::kPod, key); });
        store.pods.pop_back();
        what = "delete pod " + key;
      } else if (kind == 10 && !store.pods.empty()) {
        // A pod the API shows before its node has given it an address.
        policy::Pod pod = store.pods[g.pickInt(0, static_cast<int>(store.pods.size()) - 1)];
        pod.name = "pending-" + std::to_string(step);
        pod.ips.clear();
        pod.labels = g.podLabels();
        Object o;
        o.store.pods.push_back(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        pending.push_back(pod);
        what = "pending pod " + pod.key();
      } else if (kind == 11 && !pending.empty()) {
        // ...and then either goes away, or gets its address.
        policy::Pod pod = pending.back();
        pending.pop_back();
        if (g.pickInt(0, 1) == 0) {
          event([&](ClusterState& s) { s.erase(Kind::kPod, pod.key()); });
          what = "pending pod deleted " + pod.key();
        } else {
          pod.ips = {*parseAddr("10.250.0." + std::to_string(step + 1))};
          Object o;
          o.store.pods.push_back(pod);
          event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
          what = "pending pod addressed " + pod.key();
        }
      } else {
        // Two changes of different kinds in one snapshot: compiled afresh.
        if (store.pods.empty()) continue;
        auto& pod = store.pods.front();
        pod.labels = g.podLabels();
        Object o;
        o.store.pods.push_back(pod);
        event([&](ClusterState& s) { s.upsert(Kind::kPod, pod.key(), o); });
        for (auto& [key, obj] : objectsOf(load(g.policyYaml(200 + step, namespaces, tiers)))) {
          event([&](ClusterState& s) { s.upsert(key.first, key.second, obj); });
        }
        what = "relabel + upsert";
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
    }
  }
  // Every path ran, the incremental ones most.
  EXPECT_GT(paths[ClusterCompiler::Path::kLabels], 300);
  EXPECT_GT(paths[ClusterCompiler::Path::kPolicies], 300);
  EXPECT_GT(paths[ClusterCompiler::Path::kFull], 100);
  EXPECT_GT(paths[ClusterCompiler::Path::kUnchanged], 50);
}

}  // namespace
}  // namespace zonewall::agent
