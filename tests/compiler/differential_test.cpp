// Differential test: on 10,000 seeded random clusters (Kubernetes and Calico policies mixed,
// ipBlocks with excepts, named ports, endPort ranges, tiers, Pass/Log/Deny, IPv6, network
// sets, staged policies, checked as loaded and as promotion would leave them, and
// cluster-admin policies of both API versions), the compiled tables decide every generated
// flow exactly as the reference evaluator does, on both sides (egress of the source, ingress
// of the destination); where there are cluster-admin policies, the tables that got them one by
// one through the incremental compiler decide the same.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <sstream>

#include "compiler/generator.h"
#include "compiler/harness.h"
#include "zonewall/compiler/compile.h"

namespace zonewall::compiler {
namespace {

// The oracle check: ≥ 10,000 random clusters, 20 flows each, both sides compared.
TEST(Differential, CompiledTablesAgreeWithReference) {
  constexpr std::uint32_t kClusters = 10000;
  constexpr int kFlows = 20;
  size_t sides = 0;
  size_t staged_clusters = 0;
  size_t admin_clusters = 0;
  size_t admin_sides = 0;
  for (std::uint32_t seed = 1; seed <= kClusters; ++seed) {
    Generator g(seed);
    std::string yaml = g.cluster();
    Cluster c(yaml);
    if (::testing::Test::HasFailure()) {
      FAIL() << "seed " << seed << " did not load:\n" << yaml;
    }
    // Staged policies are never enforced: the store as loaded is what is checked; with any,
    // the store as promotion would leave it is checked on the same flows too.
    std::optional<Cluster> promoted;
    if (!c.store().staged.empty()) {
      promoted.emplace(policy::promoteStaged(c.store()));
      ++staged_clusters;
    }
    // With cluster-admin policies, the same world compiled incrementally too: node tables
    // built without them, then each one added through the ProgramBuilder.
    std::map<std::string, std::unique_ptr<NodeCompiler>> incremental;
    std::optional<Inventory> inv;
    std::optional<ProgramBuilder> builder;
    if (!c.store().admin_policies.empty()) {
      ++admin_clusters;
      policy::Store without = c.store();
      without.admin_policies.clear();
      inv.emplace(c.store());
      builder.emplace(without);
      for (const char* node : {"n1", "n2"}) {
        auto nc = std::make_unique<NodeCompiler>(*inv, node);
        ASSERT_TRUE(nc->build(builder->program()).has_value());
        incremental.emplace(node, std::move(nc));
      }
      for (const auto& p : c.store().admin_policies) {
        builder->upsert(p);
        for (auto& [node, nc] : incremental) {
          ASSERT_TRUE(nc->programChanged(builder->program()).has_value());
        }
      }
    }
    ReferenceEvaluator ref(c.store());
    std::optional<ReferenceEvaluator> promoted_ref;
    if (promoted) promoted_ref.emplace(promoted->store());
    for (int f = 0; f < kFlows; ++f) {
      zonewall::Addr src = c.addrOf(g.address());
      zonewall::Addr dst = c.addrOf(g.address());
      auto [proto, port] = g.l4();
      if (src.family() != dst.family()) continue;
      for (Direction d : {Direction::kEgress, Direction::kIngress}) {
        zonewall::Addr local = d == Direction::kEgress ? src : dst;
        zonewall::Addr remote = d == Direction::kEgress ? dst : src;
        const policy::Pod* p = ref.podAt(local);
        if (p == nullptr) continue;
        for (int variant = 0; variant < (promoted ? 2 : 1); ++variant) {
          const Cluster& cl = variant == 0 ? c : *promoted;
          const ReferenceEvaluator& r = variant == 0 ? ref : *promoted_ref;
          const Outcome* o = cl.side(d, local, remote, proto, port);
          ASSERT_NE(o, nullptr);
          bool want = r.allows(d, *r.podAt(local), local, remote, proto, port);
          ASSERT_EQ(o->allow, want)
              << "seed " << seed << (variant ? " (promoted)" : "") << " " << directionName(d) << " "
              << zonewall::formatAddr(src) << " -> " << zonewall::formatAddr(dst) << " proto "
              << int(proto) << " port " << port << "\n"
              << yaml;
          ++sides;
          if (variant == 0 && !incremental.empty()) {
            const Outcome* inc =
                incremental.at(p->node)->table().decide(d, local, remote, proto, port);
            ASSERT_NE(inc, nullptr);
            ASSERT_EQ(inc->allow, want)
                << "seed " << seed << " incremental, " << directionName(d) << " "
                << zonewall::formatAddr(src) << " -> " << zonewall::formatAddr(dst) << "\n"
                << yaml;
            ++admin_sides;
          }
        }
      }
    }
  }
  EXPECT_GT(sides, kClusters * 10u);
  EXPECT_GT(staged_clusters, kClusters / 5);
  EXPECT_GT(admin_clusters, kClusters / 3);
  EXPECT_GT(admin_sides, kClusters * 3u);
}

}  // namespace
}  // namespace zonewall::compiler
