// The compiler's table: Kubernetes semantics, table properties (disjoint, deterministic,
// stable class ids), IPv6.
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/harness.h"

namespace zonewall::compiler {
namespace {

using policy::kSctp;
using policy::kTcp;
using policy::kUdp;

std::string knp(const std::string& ns, const std::string& name, const std::string& spec) {
  return "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n" + spec;
}

const std::string kPods =
    ns("x", "team: a") + ns("y", "team: b") +
    pod("x/a", "app: a", "10.0.0.1,fd00::1", "n1", "{name: web, containerPort: 8080}") +
    pod("x/b", "app: b", "10.0.0.2,fd00::2", "n1", "{name: web, containerPort: 9090}") +
    pod("y/c", "app: c", "10.0.1.1,fd00::11", "n2");

// No policy: everything allowed; a pod selected for ingress only accepts what the union of
// the selecting policies allows, and egress stays open.
TEST(Compile, KubernetesIsolationIsPerDirection) {
  Cluster c(kPods +
            knp("x", "a-from-b",
                "  podSelector: {matchLabels: {app: a}}\n  ingress: [{from: [{podSelector: "
                "{matchLabels: {app: b}}}]}]\n") +
            knp("x", "a-from-y",
                "  podSelector: {matchLabels: {app: a}}\n  ingress: [{from: [{namespaceSelector: "
                "{matchLabels: {team: b}}}], ports: [{port: 53, protocol: UDP}]}]\n"));
  EXPECT_TRUE(c.allowed("x/b", "x/a", 80));
  EXPECT_FALSE(c.allowed("y/c", "x/a", 80));
  EXPECT_TRUE(c.allowed("y/c", "x/a", 53, kUdp));
  EXPECT_FALSE(c.allowed("y/c", "x/a", 53, kTcp));
  EXPECT_TRUE(c.allowed("x/a", "y/c", 80));  // egress not isolated
  EXPECT_TRUE(c.allowed("y/c", "x/b", 80));  // x/b not selected
}

// ipBlock with except, endPort ranges, SCTP never confused with TCP.
TEST(Compile, IpBlocksAndPortRanges) {
  Cluster c(kPods +
            knp("x", "p",
                "  podSelector: {matchLabels: {app: a}}\n  ingress:\n"
                "  - from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]\n"
                "    ports: [{port: 1000, endPort: 2000}, {port: 5000, protocol: SCTP}]\n"));
  EXPECT_TRUE(c.allowed("x/b", "x/a", 1000));
  EXPECT_TRUE(c.allowed("x/b", "x/a", 2000));
  EXPECT_FALSE(c.allowed("x/b", "x/a", 2001));
  EXPECT_FALSE(c.allowed("y/c", "x/a", 1500));  // 10.0.1.1 is in the except
  EXPECT_TRUE(c.allowed("10.0.200.1", "x/a", 1500));
  EXPECT_TRUE(c.allowed("x/b", "x/a", 5000, kSctp));
  EXPECT_FALSE(c.allowed("x/b", "x/a", 5000, kTcp));
  EXPECT_FALSE(c.allowed("fd00::2", "fd00::1", 1500));  // an IPv4 block never matches IPv6
}

// Named ports: ingress resolves on the selected (local) pod, egress on each peer.
TEST(Compile, NamedPortsResolvePerPod) {
  Cluster c(
      kPods + knp("x", "in", "  podSelector: {}\n  ingress: [{ports: [{port: web}]}]\n") +
      knp("y", "out",
          "  podSelector: {}\n  policyTypes: [Egress]\n  egress: [{ports: [{port: web}]}]\n"));
  EXPECT_TRUE(c.allowed("x/b", "x/a", 8080));
  EXPECT_FALSE(c.allowed("x/b", "x/a", 9090));
  EXPECT_TRUE(c.allowed("x/a", "x/b", 9090));
  EXPECT_TRUE(c.allowed("y/c", "x/b", 9090));
  EXPECT_FALSE(c.allowed("y/c", "x/b", 8080));
  EXPECT_FALSE(c.allowed("y/c", "10.9.9.9", 8080));  // not a pod: no port named web
}

// Dual stack: policies apply to both families; ipBlocks only to theirs.
TEST(Compile, DualStack) {
  Cluster c(kPods + knp("x", "p",
                        "  podSelector: {matchLabels: {app: a}}\n  ingress: [{from: [{podSelector: "
                        "{}}, {ipBlock: {cidr: \"fd00::10/124\"}}]}]\n"));
  EXPECT_TRUE(c.allowed("fd00::2", "fd00::1", 80));
  EXPECT_TRUE(c.allowed("fd00::11", "fd00::1", 80));
  EXPECT_FALSE(c.allowed("10.0.1.1", "10.0.0.1", 80));
}

// Entries of one (local, remote) pair never overlap, so insertion order never decides.
TEST(Compile, EntriesAreDisjoint) {
  Cluster c(kPods + knp("x", "p",
                        "  podSelector: {}\n  ingress:\n  - ports: [{port: 80}, {port: 70, "
                        "endPort: 90}, {port: 80, protocol: UDP}]\n"
                        "  - from: [{podSelector: {matchLabels: {app: b}}}]\n"));
  for (const auto& node : {"n1", "n2"}) {
    for (const DirectionTable& dt : c.table(node).directions) {
      for (size_t i = 0; i < dt.entries.size(); ++i) {
        for (size_t j = i + 1; j < dt.entries.size(); ++j) {
          const Entry& a = dt.entries[i];
          const Entry& b = dt.entries[j];
          if (a.local_class != b.local_class || a.remote_class != b.remote_class) continue;
          bool overlap = a.proto_lo <= b.proto_hi && b.proto_lo <= a.proto_hi &&
                         a.port_lo <= b.port_hi && b.port_lo <= a.port_hi;
          EXPECT_FALSE(overlap) << i << " " << j;
        }
      }
    }
  }
  EXPECT_GT(c.table("n1").entryCount(), 0u);
}

// Same input, same table; load order does not change verdicts.
TEST(Compile, Deterministic) {
  std::string a =
      knp("x", "p1",
          "  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {app: b}}}]}]\n");
  std::string b = knp(
      "x", "p2", "  podSelector: {matchLabels: {app: a}}\n  ingress: [{ports: [{port: 443}]}]\n");
  Cluster c1(kPods + a + b);
  Cluster c2(kPods + a + b);
  Cluster c3(kPods + b + a);
  EXPECT_EQ(c1.table("n1").dir(Direction::kIngress).entries,
            c2.table("n1").dir(Direction::kIngress).entries);
  EXPECT_EQ(c1.table("n1").remote_exact, c2.table("n1").remote_exact);
  for (const char* from : {"x/a", "x/b", "y/c"}) {
    for (std::uint16_t port : {std::uint16_t{80}, std::uint16_t{443}}) {
      EXPECT_EQ(c1.allowed(from, "x/a", port), c3.allowed(from, "x/a", port));
    }
  }
  EXPECT_EQ(c1.table("n1").remote_classes.size(), c3.table("n1").remote_classes.size());
}

// A new pod in an unrelated namespace leaves existing class ids (and so entries) alone.
TEST(Compile, ClassIdsAreStable) {
  std::string pol = knp("x", "p",
                        "  podSelector: {}\n  ingress: [{from: [{podSelector: {matchLabels: {app: "
                        "b}}}, {namespaceSelector: {matchLabels: {team: b}}}]}]\n");
  Cluster before(kPods + pol);
  Cluster after(kPods + pol + ns("z", "team: c") + pod("z/new", "app: new", "10.0.2.1", "n3"));
  const auto& e1 = before.table("n1").dir(Direction::kIngress).entries;
  const auto& e2 = after.table("n1").dir(Direction::kIngress).entries;
  EXPECT_EQ(e1, e2);
  EXPECT_EQ(before.table("n1").remote_classes.size(), after.table("n1").remote_classes.size());
}

// Compiled per node: a node's table holds only its own pods as local endpoints.
TEST(Compile, LocalEndpointsArePerNode) {
  Cluster c(kPods);
  EXPECT_NE(c.table("n1").localClassOf(Direction::kIngress, c.addrOf("x/a")), nullptr);
  EXPECT_EQ(c.table("n1").localClassOf(Direction::kIngress, c.addrOf("y/c")), nullptr);
  EXPECT_EQ(c.table("n1").entryCount(), 0u);  // no policy, nothing but defaults
}

}  // namespace
}  // namespace zonewall::compiler
