// Kernel conformance: every case and step of the upstream e2e suite, and of the
// network-policy-api (ANP/BANP, and the same as ClusterNetworkPolicy) subset, applied with
// `zonewall apply` to a node in network namespaces, and the reachability measured with real
// TCP/UDP (and SCTP where the kernel has it) packets, equal to the expected matrix.
#include <gtest/gtest.h>

#include <set>

#include "conformance/anp_cases.h"
#include "conformance/conformance_cases.h"
#include "kernel/node_harness.h"
#include "zonewall/compiler/reference.h"
#include "zonewall/policy/loader.h"

namespace zonewall::testing {
namespace {

using KernelConformance = ConformanceFixture;

// Real packets agree with the upstream truth table for every probe (self pairs excluded:
// they never leave the pod).
TEST_F(KernelConformance, RealPacketsMatchUpstream) {
  ZONEWALL_REQUIRE_ROOT();
  const YAML::Node model = root_["model"];
  std::vector<NodeHarness::PodSpec> pods;
  for (const auto& ns : model["namespaces"]) {
    for (const auto& p : model["pods"]) {
      std::string key = ns.as<std::string>() + "/" + p.as<std::string>();
      pods.push_back({key, model["pod_ips"][key].as<std::string>()});
    }
  }
  NodeHarness node(pods, {80, 81});
  ASSERT_TRUE(node.ok()) << node.error();
  bool sctp = NodeHarness::sctpAvailable();
  if (!sctp)
    std::printf(
        "note: this kernel has no SCTP (socket: protocol not supported); SCTP probes skipped\n");
  size_t compared = 0;
  for (const Scenario& sc : loadScenarios(root_)) {
    SCOPED_TRACE(sc.name);
    TempDir dir;
    dir.write("inventory.yaml", inventoryYaml(model, sc));
    dir.write("policies.yaml", policiesYaml(model, sc.policies));
    RunResult applied = run(zonewallBinary() + " apply " + dir.path().string() +
                            " --node '' --netns " + node.nodeNs() + " 2>&1");
    ASSERT_EQ(applied.exit_code, 0) << applied.out;
    for (const Probe& probe : sc.probes) {
      if (probe.protocol == "SCTP" && !sctp) continue;
      std::map<std::string, bool> got = node.probe(probe.port, probe.protocol);
      ASSERT_EQ(got.size(), 72u);
      for (const auto& [pair, allowed] : got) {
        bool want = !probe.denied.contains(pair);
        EXPECT_EQ(allowed, want) << pair << " on " << probe.port << "/" << probe.protocol;
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 72u * 20);
}

using KernelAnpConformance = AnpConformanceFixture;

// Every step: the pairs upstream checks connect or time out as it says (a denial must be a
// silent drop: upstream counts a reset as a failure), and every other pair on TCP, UDP and
// SCTP (where the kernel has it) is what the reference evaluator says.
TEST_P(KernelAnpConformance, RealPacketsMatchUpstream) {
  ZONEWALL_REQUIRE_ROOT();
  const std::vector<AnpPod> model_pods = anpPods(model_);
  std::vector<NodeHarness::PodSpec> pods;
  std::map<std::string, std::string> key_of;  // "house/pod" → "namespace/pod"
  for (const AnpPod& p : model_pods) {
    pods.push_back({p.key, p.ip});
    key_of[p.ref] = p.key;
  }
  NodeHarness node(pods, {80, 8080, 53, 9003});
  ASSERT_TRUE(node.ok()) << node.error();
  std::vector<std::pair<int, std::string>> probes{{80, "TCP"}, {8080, "TCP"}, {53, "UDP"}};
  if (NodeHarness::sctpAvailable()) {
    probes.push_back({9003, "SCTP"});
  } else {
    std::printf("note: this kernel has no SCTP; SCTP probes skipped\n");
  }
  size_t checked = 0;
  size_t compared = 0;
  for (const AnpStep& step : loadAnpSteps(root_)) {
    SCOPED_TRACE(step.name);
    const std::string inventory = anpInventoryYaml(model_);
    const std::string objects = anpObjectsYaml(model_, step.objects, GetParam());
    TempDir dir;
    dir.write("inventory.yaml", inventory);
    dir.write("policies.yaml", objects);
    RunResult applied = run(zonewallBinary() + " apply " + dir.path().string() +
                            " --node '' --netns " + node.nodeNs() + " 2>&1");
    ASSERT_EQ(applied.exit_code, 0) << applied.out;
    policy::Store store;
    Diagnostics diags;
    policy::loadSources({{"inventory.yaml", inventory}, {"policies.yaml", objects}}, store, diags);
    ASSERT_FALSE(diags.hasErrors());
    const compiler::ReferenceEvaluator ref(store);
    for (const auto& [port, proto] : probes) {
      const std::map<std::string, std::string> got = node.verdicts(port, proto);
      ASSERT_EQ(got.size(), 90u);
      for (const AnpCheck& ch : step.checks) {
        if (ch.port != port || ch.protocol != proto) continue;
        const std::string pair = key_of[ch.from] + " -> " + key_of[ch.to];
        EXPECT_EQ(got.at(pair), ch.allowed ? "ok" : "fail") << pair << " " << port << "/" << proto;
        ++checked;
      }
      for (const auto& [pair, verdict] : got) {
        const std::string from = pair.substr(0, pair.find(" -> "));
        const std::string to = pair.substr(pair.find(" -> ") + 4);
        auto addr = [&](const std::string& key) {
          auto slash = key.find('/');
          return store.findPod(key.substr(0, slash), key.substr(slash + 1))->ips.front();
        };
        const bool want =
            ref.connectionAllowed({addr(from), addr(to), *policy::parseProtocol(proto),
                                   static_cast<std::uint16_t>(port)});
        EXPECT_EQ(verdict, want ? "ok" : "fail") << pair << " " << port << "/" << proto;
        ++compared;
      }
    }
  }
  EXPECT_EQ(checked, 28u);
  EXPECT_GE(compared, 13u * 3 * 90);
}

INSTANTIATE_TEST_SUITE_P(Api, KernelAnpConformance,
                         ::testing::Values(AnpApi::kV1Alpha1, AnpApi::kV1Alpha2), anpApiName);

}  // namespace
}  // namespace zonewall::testing
