// The incremental compiler: after every change (a pod relabelled; pods added, deleted or
// readdressed, one or two at a time; a policy of any kind — cluster-admin ones included —
// added, replaced or removed), the kept-alive NodeCompiler's table decides every probed flow
// exactly as a fresh compile of the same input (a fresh inventory too) and as the reference
// evaluator do. 1,000 seeded random clusters, 6 changes each.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <tuple>

#include "compiler/generator.h"
#include "compiler/harness.h"
#include "zonewall/compiler/compile.h"

namespace zonewall::compiler {
namespace {

// Loads one policy document into a scratch store and returns it there.
policy::Store loadOne(const std::string& yaml) {
  policy::Store s;
  zonewall::Diagnostics d;
  policy::loadSources({{"change.yaml", yaml}}, s, d);
  for (const auto& x : d.all()) {
    if (x.severity == zonewall::Severity::kError) ADD_FAILURE() << x.str() << "\n" << yaml;
  }
  return s;
}

struct Probe {
  zonewall::Addr remote;
  Protocol proto;
  std::uint16_t port;
};

// Every local address of the node against the probes, both directions.
void expectSameDecisions(const NodeTable& inc, const NodeTable& fresh, const policy::Store& store,
                         const Inventory& inv, const std::vector<Probe>& probes,
                         const std::string& context) {
  ReferenceEvaluator ref(store);
  for (const auto& pa : inv.addrs()) {
    const policy::Pod& pod = store.pods[pa.pod];
    if (pod.node != inc.node) continue;
    for (const Probe& pr : probes) {
      if (pr.remote.family() != pa.addr.family()) continue;
      for (Direction d : {Direction::kIngress, Direction::kEgress}) {
        const Outcome* a = inc.decide(d, pa.addr, pr.remote, pr.proto, pr.port);
        const Outcome* b = fresh.decide(d, pa.addr, pr.remote, pr.proto, pr.port);
        ASSERT_NE(a, nullptr);
        ASSERT_NE(b, nullptr);
        bool want = ref.allows(d, pod, pa.addr, pr.remote, pr.proto, pr.port);
        ASSERT_EQ(b->allow, want) << context << ": fresh compile vs reference";
        ASSERT_EQ(a->allow, b->allow)
            << context << " " << directionName(d) << " " << zonewall::formatAddr(pa.addr) << " <-> "
            << zonewall::formatAddr(pr.remote) << " " << int(pr.proto) << "/" << pr.port;
        ASSERT_EQ(inc.attributions[a->attribution], fresh.attributions[b->attribution]) << context;
      }
    }
  }
}

// Incremental results equal fresh compiles after every kind of change.
TEST(Incremental, EqualsFreshCompileAfterEveryChange) {
  constexpr std::uint32_t kClusters = 1000;
  size_t changes = 0;
  for (std::uint32_t seed = 1; seed <= kClusters; ++seed) {
    Generator g(seed * 7919);
    std::string yaml = g.cluster();
    policy::Store store;
    zonewall::Diagnostics diags;
    policy::loadSources({{"cluster.yaml", yaml}}, store, diags);
    policy::validateStore(store, diags);
    ASSERT_FALSE(diags.hasErrors()) << yaml;
    Inventory inv(store);
    ProgramBuilder builder(store);
    NodeCompiler nc(inv, "n1");
    ASSERT_TRUE(nc.build(builder.program()).has_value());
    std::vector<Probe> probes;
    for (int i = 0; i < 24; ++i) {
      auto [proto, port] = g.l4();
      probes.push_back({*zonewall::parseAddr(g.address()), proto, port});
    }
    int namespaces = static_cast<int>(store.namespaces.size());
    bool tiers = !store.tiers.empty();
    // Addresses a pod may move to or be added with: free ones, some inside network sets'
    // ranges or among the probes' outside addresses.
    std::vector<zonewall::Addr> pool;
    for (const char* a : {"10.0.0.3", "10.0.1.200", "172.18.0.2", "fd00::99", "10.0.0.40",
                          "10.0.1.41", "192.0.2.130", "fd00::41"}) {
      pool.push_back(*zonewall::parseAddr(a));
      auto [proto, port] = g.l4();
      probes.push_back({pool.back(), proto, port});
    }
    auto freeAddr = [&]() -> std::optional<zonewall::Addr> {
      std::vector<zonewall::Addr> free;
      for (zonewall::Addr a : pool) {
        if (!inv.findAddr(a)) free.push_back(a);
      }
      if (free.empty()) return std::nullopt;
      return free[static_cast<size_t>(g.pickInt(0, static_cast<int>(free.size()) - 1))];
    };
    auto livePod = [&]() -> std::optional<std::uint32_t> {
      std::vector<std::uint32_t> live;
      for (std::uint32_t i = 0; i < store.pods.size(); ++i) {
        if (!store.pods[i].ips.empty()) live.push_back(i);
      }
      if (live.empty()) return std::nullopt;
      return live[static_cast<size_t>(g.pickInt(0, static_cast<int>(live.size()) - 1))];
    };
    for (int step = 0; step < 6; ++step) {
      std::string what;
      int kind = g.pickInt(0, 4);
      if (kind == 4) {
        // One or two pod changes at once, as the agent batches them.
        std::vector<size_t> removed, added;
        int ops = g.pickInt(1, 2);
        for (int op = 0; op < ops; ++op) {
          int which = g.pickInt(0, 2);
          auto victim = livePod();
          if (which == 0 || !victim) {
            auto a = freeAddr();
            if (!a) continue;
            policy::Pod pod = store.pods[static_cast<size_t>(
                g.pickInt(0, static_cast<int>(store.pods.size()) - 1))];
            pod.name = "new" + std::to_string(step) + "-" + std::to_string(op);
            pod.node = g.pickInt(0, 1) == 0 ? "n1" : "n2";
            pod.labels = g.podLabels();
            pod.ips = {*a};
            ASSERT_TRUE(builder.knowsNamedPorts(pod));
            store.pods.push_back(pod);
            auto slots = inv.addPod(static_cast<std::uint32_t>(store.pods.size() - 1));
            added.insert(added.end(), slots.begin(), slots.end());
            what += " add " + pod.key() + "@" + zonewall::formatAddr(*a);
          } else if (which == 1) {
            auto slots = inv.removePod(*victim);
            removed.insert(removed.end(), slots.begin(), slots.end());
            store.pods[*victim].ips.clear();
            what += " delete " + store.pods[*victim].key();
          } else {
            auto a = freeAddr();
            if (!a) continue;
            auto gone = inv.removePod(*victim);
            removed.insert(removed.end(), gone.begin(), gone.end());
            store.pods[*victim].ips = {*a};
            if (g.pickInt(0, 1) == 0) store.pods[*victim].labels = g.podLabels();
            auto slots = inv.addPod(*victim);
            added.insert(added.end(), slots.begin(), slots.end());
            what += " readdress " + store.pods[*victim].key() + "@" + zonewall::formatAddr(*a);
          }
        }
        ASSERT_TRUE(nc.podsChanged(removed, added).has_value());
        inv.recycle();
      } else if (kind == 0 && livePod()) {
        auto pod =
            static_cast<std::uint32_t>(g.pickInt(0, static_cast<int>(store.pods.size()) - 1));
        policy::Labels old = store.pods[pod].labels;
        store.pods[pod].labels = g.podLabels();
        inv.relabel(pod, old);
        ASSERT_TRUE(nc.podLabelsChanged(pod).has_value());
        what = "relabel " + store.pods[pod].key();
      } else if (kind == 1 || kind == 2) {
        // Add a policy, or replace one of the same name.
        int i = kind == 1 ? 100 + step : g.pickInt(0, 3);
        policy::Store one = loadOne(g.policyYaml(i, namespaces, tiers));
        for (auto& p : one.k8s_policies) {
          std::erase_if(store.k8s_policies, [&](const auto& q) { return q.key() == p.key(); });
          builder.upsert(p);
          store.k8s_policies.push_back(p);
          what = "upsert " + p.key();
        }
        for (auto& p : one.calico_policies) {
          std::erase_if(store.calico_policies,
                        [&](const auto& q) { return q.key() == p.key() && q.global == p.global; });
          builder.upsert(p);
          store.calico_policies.push_back(p);
          what = "upsert " + p.key();
        }
        for (auto& p : one.admin_policies) {
          std::erase_if(store.admin_policies,
                        [&](const auto& q) { return q.name == p.name && q.kind == p.kind; });
          builder.upsert(p);
          store.admin_policies.push_back(p);
          what = "upsert " + p.display();
        }
        ASSERT_TRUE(nc.programChanged(builder.program()).has_value());
      } else if (!store.admin_policies.empty() && g.pickInt(0, 2) == 0) {
        builder.erase(ProgramBuilder::keyOf(store.admin_policies.back()));
        what = "erase " + store.admin_policies.back().display();
        store.admin_policies.pop_back();
        ASSERT_TRUE(nc.programChanged(builder.program()).has_value());
      } else if (!store.k8s_policies.empty() || !store.calico_policies.empty()) {
        if (!store.k8s_policies.empty() &&
            (store.calico_policies.empty() || g.pickInt(0, 1) == 0)) {
          builder.erase(ProgramBuilder::keyOf(store.k8s_policies.back()));
          what = "erase " + store.k8s_policies.back().key();
          store.k8s_policies.pop_back();
        } else {
          builder.erase(ProgramBuilder::keyOf(store.calico_policies.back()));
          what = "erase " + store.calico_policies.back().key();
          store.calico_policies.pop_back();
        }
        ASSERT_TRUE(nc.programChanged(builder.program()).has_value());
      }
      Inventory fresh_inv(store);
      auto fresh = compileNode(lower(store), fresh_inv, "n1");
      ASSERT_TRUE(fresh.has_value());
      std::string context =
          "seed " + std::to_string(seed) + " step " + std::to_string(step) + " (" + what + ")";
      expectSameDecisions(nc.table(), *fresh, store, fresh_inv, probes, context);
      // The same local endpoints; no address a pod gave up left in the exact map.
      ASSERT_EQ(nc.table().endpoints.size(), fresh->endpoints.size()) << context;
      for (size_t e = 0; e < fresh->endpoints.size(); ++e) {
        ASSERT_EQ(nc.table().endpoints[e].pod, fresh->endpoints[e].pod) << context;
        ASSERT_EQ(nc.table().endpoints[e].addrs, fresh->endpoints[e].addrs) << context;
      }
      for (const auto& [addr, id] : nc.table().remote_exact) {
        ASSERT_TRUE(fresh_inv.findAddr(addr).has_value())
            << context << ": " << zonewall::formatAddr(addr) << " is no pod's";
      }
      // No entry left behind for a class that is gone (its id could be a new class's later),
      // and the entries as sorted and as many as the table says.
      std::set<std::pair<Family, RemoteClassId>> listed;
      for (const RemoteClass& rc : nc.table().remote_classes) listed.insert({rc.family, rc.id});
      for (const DirectionTable& dt : nc.table().directions) {
        for (const Entry& e : dt.entries) {
          ASSERT_GE(e.local_class, 1u) << context;
          ASSERT_LE(e.local_class, dt.classes.size()) << context;
          Family fam = dt.classes[e.local_class - 1].family;
          ASSERT_TRUE(e.remote_class == kNoRemoteClass || listed.contains({fam, e.remote_class}))
              << context << ": an entry names remote class " << e.remote_class
              << ", listed by none";
        }
        ASSERT_TRUE(
            std::is_sorted(dt.entries.begin(), dt.entries.end(),
                           [](const Entry& a, const Entry& b) {
                             return std::tie(a.local_class, a.remote_class, a.proto_lo, a.port_lo) <
                                    std::tie(b.local_class, b.remote_class, b.proto_lo, b.port_lo);
                           }))
            << context;
      }
      if (::testing::Test::HasFatalFailure()) {
        FAIL() << context << "\n" << yaml;
      }
      ++changes;
    }
  }
  EXPECT_GE(changes, kClusters * 5u);
}

}  // namespace
}  // namespace zonewall::compiler
