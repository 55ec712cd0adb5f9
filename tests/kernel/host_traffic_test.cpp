// Kubernetes NetworkPolicy: "traffic to and from the node where a Pod is running is always
// allowed" (kubelet's probes, node-local agents). A pod whose policies deny everything still
// accepts connections from its own node and reaches it; other pods still cannot reach it.
#include <gtest/gtest.h>

#include "kernel/node_harness.h"

namespace zonewall::testing {
namespace {

TEST(HostTraffic, OwnNodeAlwaysReachesItsPodsAndBack) {
  ZONEWALL_REQUIRE_ROOT();
  NodeHarness node({{"x/a", "10.244.0.10"}, {"x/b", "10.244.0.11"}}, {80});
  ASSERT_TRUE(node.ok()) << node.error();
  // The node's own address, and a server on it.
  ASSERT_TRUE(node.inNode("ip addr add 10.250.0.1/32 dev lo"));
  TempDir dir;
  dir.write("cluster.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {nodeName: "
            "n1}\nstatus: {podIP: 10.244.0.10}\n"
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {nodeName: "
            "n1}\nstatus: {podIP: 10.244.0.11}\n"
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
            "deny-all, namespace: x}\n"
            "spec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n");
  std::string from_node =
      "ip netns exec " + node.nodeNs() + " " + probeBinary() + " probe 400 10.244.0.11:80/TCP";
  ASSERT_TRUE(node.serveInNode({8099}));
  std::string to_node =
      "ip netns exec " + node.podNs(0) + " " + probeBinary() + " probe 400 10.250.0.1:8099/TCP";
  auto reaches = [](const std::string& probe) {
    for (int i = 0; i < 10; ++i) {  // the node's server may take a moment to listen
      if (run(probe).out.find(" ok") != std::string::npos) return true;
    }
    return false;
  };
  ASSERT_TRUE(reaches(from_node)) << "no table yet: the node reaches the pod";
  ASSERT_TRUE(reaches(to_node)) << "no table yet: the pod reaches the node";

  RunResult applied = run(zonewallBinary() + " apply " + dir.path().string() +
                          " --node n1 --netns " + node.nodeNs() + " 2>&1");
  ASSERT_EQ(applied.exit_code, 0) << applied.out;

  EXPECT_FALSE(node.probe(80, "TCP").at("x/a -> x/b")) << "pod to pod must be denied";
  EXPECT_TRUE(reaches(from_node)) << "the pod's own node must reach it";
  EXPECT_TRUE(reaches(to_node)) << "a pod must reach its own node";
}

}  // namespace
}  // namespace zonewall::testing
