// Anti-spoofing: a pod that sends with an address that is not its own is dropped at its host
// veth, even where a route back exists and policy would allow the connection.
#include <gtest/gtest.h>

#include "kernel/node_harness.h"

namespace zonewall::testing {
namespace {

TEST(AntiSpoof, ForeignSourceAddressIsDropped) {
  ZONEWALL_REQUIRE_ROOT();
  NodeHarness node({{"x/a", "10.244.0.10"}, {"x/b", "10.244.0.11"}}, {80});
  ASSERT_TRUE(node.ok()) << node.error();
  TempDir dir;
  dir.write("cluster.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x}\nspec: {nodeName: "
            "n1}\nstatus: {podIP: 10.244.0.10}\n"
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x}\nspec: {nodeName: "
            "n1}\nstatus: {podIP: 10.244.0.11}\n");
  // Pod a also holds 10.244.0.99, and the node routes that address back to a: without
  // anti-spoofing, a connection from it would work.
  ASSERT_TRUE(node.inPod(0, "ip addr add 10.244.0.99/32 dev eth0"));
  auto slash_host = zonewall::hostVethName("x", "a");
  ASSERT_TRUE(node.inNode("ip route add 10.244.0.99/32 dev " + slash_host));
  std::string spoofed = "ip netns exec " + node.podNs(0) + " " + probeBinary() +
                        " probe 400 10.244.0.11:80/TCP@10.244.0.99";
  EXPECT_NE(run(spoofed).out.find(" ok"), std::string::npos)
      << "no zonewall table yet: the spoofed source passes";

  RunResult applied = run(zonewallBinary() + " apply " + dir.path().string() +
                          " --node n1 --netns " + node.nodeNs() + " 2>&1");
  ASSERT_EQ(applied.exit_code, 0) << applied.out;
  EXPECT_NE(run(spoofed).out.find(" fail"), std::string::npos) << "the spoofed source got through";
  EXPECT_TRUE(node.probe(80, "TCP").at("x/a -> x/b")) << "the pod's own address must still work";
}

}  // namespace
}  // namespace zonewall::testing
