// Cluster-admin policy conformance: every step of the network-policy-api ConformanceTests in
// tests/conformance/data/anp-conformance-subset.yaml, through the compiler, in both API
// versions (v1alpha1 AdminNetworkPolicy/BaselineAdminNetworkPolicy as transcribed, and the
// same objects rewritten into v1alpha2 ClusterNetworkPolicy). Every pair upstream checks must
// match; every other pair on every declared port must agree with the reference evaluator.
#include <gtest/gtest.h>

#include "compiler/harness.h"
#include "conformance/anp_cases.h"

namespace zonewall::testing {
namespace {

using AnpConformance = AnpConformanceFixture;

policy::Protocol protocolOf(const std::string& name) { return *policy::parseProtocol(name); }

TEST_P(AnpConformance, EveryStepMatchesUpstream) {
  const std::vector<AnpStep> steps = loadAnpSteps(root_);
  ASSERT_EQ(steps.size(), 13u);  // 6 + 3 + 4 subtests
  const std::vector<AnpPod> pods = anpPods(model_);
  size_t checked = 0;
  size_t compared = 0;
  for (const AnpStep& step : steps) {
    SCOPED_TRACE(step.name);
    compiler::Cluster c(anpInventoryYaml(model_) + "\n" +
                        anpObjectsYaml(model_, step.objects, GetParam()));
    ASSERT_FALSE(c.diags().hasErrors());
    ASSERT_EQ(c.store().admin_policies.size(), step.objects.size());
    for (const AnpCheck& ch : step.checks) {
      EXPECT_EQ(c.allowed(anpPodKey(model_, ch.from), anpPodKey(model_, ch.to),
                          static_cast<std::uint16_t>(ch.port), protocolOf(ch.protocol)),
                ch.allowed)
          << ch.from << " -> " << ch.to << " " << ch.port << "/" << ch.protocol;
      ++checked;
    }
    // Every other pair, on every port the servers declare: the table and the reference
    // evaluator agree (Cluster::allowed expects it).
    for (const auto& port : model_["container_ports"]) {
      for (const AnpPod& from : pods) {
        for (const AnpPod& to : pods) {
          if (from.key == to.key) continue;
          c.allowed(from.key, to.key, port["port"].as<std::uint16_t>(),
                    protocolOf(port["protocol"].as<std::string>()));
          ++compared;
        }
      }
    }
  }
  EXPECT_EQ(checked, 28u);
  EXPECT_EQ(compared, 13u * 6 * 90);
}

INSTANTIATE_TEST_SUITE_P(Api, AnpConformance,
                         ::testing::Values(AnpApi::kV1Alpha1, AnpApi::kV1Alpha2), anpApiName);

}  // namespace
}  // namespace zonewall::testing
