// Hand-written cases for Calico's ordered semantics, mixed with Kubernetes policies. Every
// verdict is checked against both the compiled table and the reference evaluator (harness.h).
#include <gtest/gtest.h>

#include "compiler/harness.h"

namespace zonewall::compiler {
namespace {

using policy::kIcmp;
using policy::kTcp;
using policy::kUdp;

const std::string kBase = ns("a", "zone: public") + ns("b", "zone: internal") +
                          ns("s", "zone: secure") +
                          pod("a/web", "app: web, zone: public", "10.0.0.1") +
                          pod("b/api", "app: api, zone: internal", "10.0.0.2", "n2",
                              "{name: http, containerPort: 8080}") +
                          pod("s/db", "app: db, zone: secure", "10.0.0.3") +
                          pod("s/vault", "app: vault, zone: secure", "10.0.0.4", "n2");

std::string gnp(const std::string& name, const std::string& body) {
  return "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: " +
         name + "}\nspec:\n" + body;
}

std::string tier(const std::string& name, int order, const std::string& def = "Deny") {
  return "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: " + name +
         "}\nspec: {order: " + std::to_string(order) + ", defaultAction: " + def + "}\n";
}

// Tiers run by order: a Deny in an earlier tier beats an Allow in a later one, whatever the
// policies' own order values.
TEST(CalicoSemantics, TiersRunInOrder) {
  Cluster c(
      kBase + tier("first", 10) + tier("second", 20) +
      gnp("second.allow",
          "  tier: second\n  order: 1\n  selector: app == 'db'\n  ingress: [{action: Allow}]\n") +
      gnp("first.deny",
          "  tier: first\n  order: 999\n  selector: app == 'db'\n  ingress: [{action: Deny, "
          "source: {selector: app == 'web'}}, {action: Pass}]\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 80));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));  // passed on to "second", which allows
  EXPECT_NE(c.decidedBy(Direction::kIngress, "s/db", "a/web", 80).find("first.deny"),
            std::string::npos);
}

// Within a tier, a lower order goes first; equal orders fall back to the name.
TEST(CalicoSemantics, OrderAndNameTies) {
  Cluster c(
      kBase + gnp("zz", "  order: 5\n  selector: app == 'db'\n  ingress: [{action: Deny}]\n") +
      gnp("aa",
          "  order: 5\n  selector: app == 'db'\n  ingress: [{action: Allow, protocol: TCP}]\n") +
      gnp("mm",
          "  order: 1\n  selector: app == 'db'\n  ingress: [{action: Deny, protocol: UDP}]\n"));
  EXPECT_TRUE(c.allowed("a/web", "s/db", 80, kTcp));   // "aa" < "zz" at order 5
  EXPECT_FALSE(c.allowed("a/web", "s/db", 53, kUdp));  // order 1 first
  EXPECT_FALSE(c.allowed("a/web", "s/db", 0, kIcmp));  // falls to "zz"
}

// A policy without order runs after every ordered one.
TEST(CalicoSemantics, MissingOrderIsLast) {
  Cluster c(
      kBase + gnp("a-unordered", "  selector: app == 'db'\n  ingress: [{action: Deny}]\n") +
      gnp("z-ordered", "  order: 100000\n  selector: app == 'db'\n  ingress: [{action: Allow}]\n"));
  EXPECT_TRUE(c.allowed("a/web", "s/db", 80));
}

// Deny before Allow in one policy: the first matching rule wins.
TEST(CalicoSemantics, FirstMatchingRuleWins) {
  Cluster c(kBase + gnp("p",
                        "  order: 1\n  selector: app == 'db'\n  ingress:\n"
                        "  - {action: Deny, protocol: TCP, destination: {ports: [22]}}\n"
                        "  - {action: Allow, protocol: TCP}\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 22));
  EXPECT_TRUE(c.allowed("a/web", "s/db", 23));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 53, kUdp));  // end of tier: no rule matched
}

// Pass skips the rest of the tier; a Pass in the last tier reaches the profile (allow).
TEST(CalicoSemantics, PassJumpsToNextTier) {
  Cluster c(kBase + tier("first", 10) +
            gnp("first.p",
                "  tier: first\n  selector: all()\n  ingress: [{action: Pass, source: {selector: "
                "zone == 'internal'}}, {action: Deny}]\n") +
            gnp("later", "  order: 1\n  selector: app == 'db'\n  ingress: [{action: Pass}]\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 80));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));     // Pass, Pass: allowed by the profile
  EXPECT_TRUE(c.allowed("b/api", "s/vault", 80));  // Pass; the default tier does not select vault
  EXPECT_EQ(c.decidedBy(Direction::kIngress, "s/db", "b/api", 80),
            "every tier passed: allowed by the namespace profile");
}

// A tier with defaultAction Pass lets unmatched traffic through to later tiers.
TEST(CalicoSemantics, TierDefaultActionPass) {
  Cluster c(kBase + tier("first", 10, "Pass") +
            gnp("first.p",
                "  tier: first\n  selector: all()\n  ingress: [{action: Deny, source: {selector: "
                "app == 'web'}}]\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 80));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));
}

// Log logs and goes on: the verdict comes from a later rule, and the outcome names the Log rule.
TEST(CalicoSemantics, LogContinues) {
  Cluster c(kBase + gnp("p",
                        "  order: 1\n  selector: app == 'db'\n  ingress: [{action: Log, protocol: "
                        "TCP}, {action: Allow, source: {selector: app == 'api'}}]\n"));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 80));
  zonewall::Addr db = c.addrOf("s/db");
  const Outcome* o = c.side(Direction::kIngress, db, c.addrOf("b/api"), kTcp, 80);
  ASSERT_NE(o, nullptr);
  ASSERT_EQ(o->logs.size(), 1u);
  EXPECT_EQ(c.table("n1").attributions[o->logs[0]].action, Action::kLog);
  const Outcome* udp = c.side(Direction::kIngress, db, c.addrOf("b/api"), kUdp, 80);
  EXPECT_TRUE(udp->logs.empty());  // the Log rule is TCP only
}

// notSelector, notNets and notPorts exclude exactly what they name; notSelector also matches
// addresses outside the cluster.
TEST(CalicoSemantics, NegatedMatches) {
  Cluster c(kBase + gnp("p",
                        "  order: 1\n  selector: app == 'db'\n  ingress:\n"
                        "  - {action: Allow, protocol: TCP, source: {notSelector: app == 'web'}, "
                        "destination: {notPorts: [22, '6000:6010']}}\n"
                        "  - {action: Allow, protocol: UDP, source: {notNets: [10.0.0.0/30]}}\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 80));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));
  EXPECT_FALSE(c.allowed("b/api", "s/db", 22));
  EXPECT_FALSE(c.allowed("b/api", "s/db", 6005));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 6011));
  EXPECT_TRUE(c.allowed("192.0.2.1", "s/db", 80));      // external: not a web pod
  EXPECT_FALSE(c.allowed("b/api", "s/db", 53, kUdp));   // 10.0.0.2 is inside 10.0.0.0/30
  EXPECT_TRUE(c.allowed("s/vault", "s/db", 53, kUdp));  // 10.0.0.4 is outside
}

// Zone isolation: pods labelled zone=secure talk only to zone=secure, except on what a higher
// tier allows.
TEST(CalicoSemantics, ZoneIsolation) {
  std::string policies =
      tier("platform", 10) + tier("zones", 20) +
      gnp("platform.monitoring",
          "  tier: platform\n  selector: all()\n  ingress:\n"
          "  - {action: Allow, protocol: TCP, source: {selector: app == 'api'}, destination: "
          "{ports: [9090]}}\n"
          "  - {action: Pass}\n") +
      gnp("zones.secure",
          "  tier: zones\n  selector: zone == 'secure'\n  types: [Ingress, Egress]\n"
          "  ingress: [{action: Allow, source: {selector: zone == 'secure'}}, {action: Deny}]\n"
          "  egress: [{action: Allow, destination: {selector: zone == 'secure'}}, {action: "
          "Deny}]\n");
  Cluster c(kBase + policies);
  EXPECT_TRUE(c.allowed("s/db", "s/vault", 5432));
  EXPECT_TRUE(c.allowed("s/vault", "s/db", 80, kUdp));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 5432));
  EXPECT_FALSE(c.allowed("b/api", "s/db", 5432));
  EXPECT_TRUE(c.allowed("b/api", "s/db", 9090));   // the higher tier's exception
  EXPECT_FALSE(c.allowed("s/db", "b/api", 8080));  // egress out of the zone
  EXPECT_TRUE(c.allowed("a/web", "b/api", 8080));  // outside the zone: untouched
}

// Kubernetes policies sit in the default tier at order 1000, among Calico policies.
TEST(CalicoSemantics, KubernetesPoliciesInDefaultTier) {
  std::string knp =
      "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-web, "
      "namespace: s}\n"
      "spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{namespaceSelector: "
      "{matchLabels: {zone: public}}}]}]\n";
  Cluster c(
      kBase + knp +
      gnp("deny-first",
          "  order: 999\n  selector: app == 'db'\n  ingress: [{action: Deny, protocol: UDP}]\n") +
      gnp("allow-later",
          "  order: 1001\n  selector: app == 'db'\n  ingress: [{action: Allow, source: {selector: "
          "app == 'api'}}]\n"));
  EXPECT_FALSE(c.allowed("a/web", "s/db", 53, kUdp));  // order 999 before the k8s policy
  EXPECT_TRUE(c.allowed("a/web", "s/db", 80));         // the k8s policy
  EXPECT_TRUE(c.allowed("b/api", "s/db", 80));         // order 1001, after the k8s policy
  EXPECT_FALSE(c.allowed("s/vault", "s/db", 80));      // end of the default tier
}

// ICMP type/code, protocol numbers, ipVersion and IPv6 peers.
TEST(CalicoSemantics, IcmpAndIpVersion) {
  std::string pods = pod("v/six", "app: six", "10.0.1.1,fd00::1") +
                     pod("v/other", "app: other", "10.0.1.2,fd00::2");
  Cluster c(kBase + pods +
            gnp("p",
                "  order: 1\n  selector: app == 'six'\n  ingress:\n"
                "  - {action: Allow, protocol: ICMP, icmp: {type: 8}}\n"
                "  - {action: Allow, protocol: ICMPv6, icmp: {type: 128, code: 0}}\n"
                "  - {action: Allow, ipVersion: 6, protocol: TCP}\n"
                "  - {action: Allow, protocol: 47}\n"));
  EXPECT_TRUE(c.allowed("v/other", "v/six", 8 << 8, kIcmp));
  EXPECT_FALSE(c.allowed("v/other", "v/six", 0, kIcmp));
  EXPECT_TRUE(c.allowed("fd00::2", "fd00::1", 128 << 8, policy::kIcmpV6));
  EXPECT_FALSE(c.allowed("fd00::2", "fd00::1", 128 << 8 | 1, policy::kIcmpV6));
  EXPECT_TRUE(c.allowed("fd00::2", "fd00::1", 443));
  EXPECT_FALSE(c.allowed("v/other", "v/six", 443));  // IPv4: ipVersion 6 only
  EXPECT_TRUE(c.allowed("v/other", "v/six", 0, 47));
}

// Network sets: a selector matches their nets; namespaceSelector global() reaches global sets.
TEST(CalicoSemantics, NetworkSets) {
  std::string sets =
      "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: office, "
      "labels: {role: office}}\nspec: {nets: [192.0.2.0/24]}\n"
      "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: partner, "
      "namespace: s, labels: {role: partner}}\nspec: {nets: [198.51.100.0/24]}\n";
  Cluster c(
      kBase + sets +
      "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: "
      "s}\nspec:\n  order: 1\n  selector: app == 'db'\n  ingress:\n"
      "  - {action: Allow, source: {selector: role == 'partner'}}\n"
      "  - {action: Allow, source: {selector: role == 'office', namespaceSelector: global()}}\n"
      "  - {action: Deny, source: {selector: role == 'office'}}\n");
  EXPECT_TRUE(c.allowed("198.51.100.7", "s/db", 80));
  EXPECT_TRUE(c.allowed("192.0.2.7", "s/db", 80));
  EXPECT_FALSE(c.allowed("203.0.113.1", "s/db", 80));
}

// Named ports in Calico rules resolve on the destination pod.
TEST(CalicoSemantics, NamedPorts) {
  Cluster c(kBase +
            gnp("p",
                "  order: 1\n  selector: app == 'api'\n  ingress: [{action: Allow, protocol: TCP, "
                "destination: {ports: [http]}}]\n") +
            gnp("q",
                "  order: 1\n  selector: app == 'web'\n  types: [Egress]\n  egress: [{action: "
                "Allow, protocol: TCP, destination: {ports: [http]}}]\n"));
  EXPECT_TRUE(c.allowed("s/db", "b/api", 8080));
  EXPECT_FALSE(c.allowed("s/db", "b/api", 80));
  EXPECT_TRUE(c.allowed("a/web", "b/api", 8080));  // egress: http resolves on api
  EXPECT_FALSE(c.allowed("a/web", "s/db", 8080));  // db has no port named http
}

}  // namespace
}  // namespace zonewall::compiler
