// Counters with real packets: each direction chain counts the packets it judges, each verdict
// map rule the denies it decides; a Log outcome's chain counts its own packets.
#include <gtest/gtest.h>

#include <regex>

#include "kernel/node_harness.h"

namespace zonewall::testing {
namespace {

// The packet counts of a chain's counted rules, by the rule's text up to "counter".
std::map<std::string, long> counters(const NodeHarness& node, const std::string& chain) {
  std::map<std::string, long> out;
  std::string listing =
      run("ip netns exec " + node.nodeNs() + " nft list chain inet zonewall " + chain).out;
  static const std::regex kCounted(R"(\t\t(.*) counter packets (\d+) bytes \d+.*)");
  std::istringstream lines(listing);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_match(line, m, kCounted)) out[m[1]] = std::stol(m[2]);
  }
  return out;
}

long sum(const std::map<std::string, long>& m, const std::string& containing) {
  long n = 0;
  for (const auto& [rule, packets] : m)
    n += rule.find(containing) != std::string::npos ? packets : 0;
  return n;
}

TEST(Counters, CountWhatEntersAndWhatIsDenied) {
  ZONEWALL_REQUIRE_ROOT();
  NodeHarness node({{"x/a", "10.244.0.10"}, {"x/b", "10.244.0.11"}}, {80, 81});
  ASSERT_TRUE(node.ok()) << node.error();
  TempDir dir;
  dir.write("cluster.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\nspec: "
            "{nodeName: n1}\n"
            "status: {podIP: 10.244.0.10}\n"
            "---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {app: "
            "b}}\nspec: {nodeName: n1}\n"
            "status: {podIP: 10.244.0.11}\n"
            "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: "
            "b-from-a, namespace: x}\n"
            "spec:\n  podSelector: {matchLabels: {app: b}}\n  ingress:\n"
            "  - from: [{podSelector: {matchLabels: {app: a}}}]\n    ports: [{port: 80}]\n");
  RunResult applied = run(zonewallBinary() + " apply " + dir.path().string() +
                          " --node n1 --netns " + node.nodeNs() + " 2>&1");
  ASSERT_EQ(applied.exit_code, 0) << applied.out;

  auto before = counters(node, "ingress4");
  ASSERT_EQ(sum(before, "meta mark set"), 0) << "nothing has entered ingress4 yet";

  // Allowed: one SYN enters ingress4 (the rest of the connection is established traffic).
  ASSERT_TRUE(node.probe(80, "TCP").at("x/a -> x/b"));
  auto allowed = counters(node, "ingress4");
  EXPECT_EQ(sum(allowed, "meta mark set"), 1);
  EXPECT_EQ(sum(allowed, "vmap"), 0) << "an allowed packet is no deny";
  EXPECT_EQ(sum(counters(node, "ingress4_rng"), "vmap"), 0);

  // Denied (b is isolated and port 81 is not allowed): every SYN that enters is dropped by the
  // default of b, and counted there.
  ASSERT_FALSE(node.probe(81, "TCP").at("x/a -> x/b"));
  long entered = sum(counters(node, "ingress4"), "meta mark set") - 1;
  auto rng = counters(node, "ingress4_rng");
  EXPECT_GE(entered, 1);
  EXPECT_EQ(sum(rng, "@ingress4_default"), entered);
  EXPECT_EQ(sum(rng, "@ingress4_ranges"), 0);
  EXPECT_EQ(sum(counters(node, "ingress4"), "vmap"), 0);
}

}  // namespace
}  // namespace zonewall::testing
