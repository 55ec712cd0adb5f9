// Cluster-admin policy (network-policy-api) among Calico's tiers and Kubernetes policies: the
// order README "Order of evaluation" documents, case by case. Every answer is the compiled
// table's and the reference evaluator's (Cluster::allowed checks they agree).
#include <gtest/gtest.h>

#include "compiler/harness.h"

namespace zonewall::compiler {
namespace {

using policy::kTcp;
using policy::kUdp;

const std::string kBase =
    ns("a", "zone: public") + ns("b", "zone: internal") + ns("s", "zone: secure") +
    pod("a/web", "app: web", "10.0.0.1") +
    pod("b/api", "app: api", "10.0.0.2", "n2", "{name: http, containerPort: 8080}") +
    pod("s/db", "app: db", "10.0.0.3", "n1", "{name: pg, containerPort: 5432}") +
    pod("s/vault", "app: vault", "10.0.0.4", "n2") +
    "---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {role: infra}}\n"
    "status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}\n"
    "---\napiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {role: worker}}\n"
    "status: {addresses: [{type: InternalIP, address: 192.168.0.2}]}\n";

std::string anp(const std::string& name, int priority, const std::string& body) {
  return "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n"
         "metadata: {name: " +
         name + "}\nspec:\n  priority: " + std::to_string(priority) + "\n" + body;
}

const std::string kDenyToSecure = anp("deny-secure", 10,
                                      "  subject: {namespaces: {matchLabels: {zone: secure}}}\n"
                                      "  ingress: [{action: Deny, from: [{namespaces: {}}]}]\n");

std::string calicoTier(const std::string& name, int order) {
  return "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: " + name +
         "}\nspec: {order: " + std::to_string(order) +
         ", defaultAction: Pass}\n---\napiVersion: projectcalico.org/v3\nkind: "
         "GlobalNetworkPolicy\nmetadata: {name: " +
         name + ".allow-api}\nspec:\n  tier: " + name +
         "\n  selector: app == 'db'\n  ingress: [{action: Allow, source: {selector: app == "
         "'api'}}]\n";
}

// A Calico tier ordered before kube-admin (1,000) decides first; one ordered after it is
// reached only if the admin tier passes.
TEST(AdminSemantics, CalicoTiersAroundTheAdminTier) {
  Cluster early(kBase + kDenyToSecure + calicoTier("early", 100));
  EXPECT_TRUE(early.allowed("b/api", "s/db", 5432));
  EXPECT_FALSE(early.allowed("a/web", "s/db", 5432));
  Cluster late(kBase + kDenyToSecure + calicoTier("late", 5000));
  EXPECT_FALSE(late.allowed("b/api", "s/db", 5432));
  EXPECT_EQ(
      late.decidedBy(Direction::kIngress, "s/db", "b/api", 5432)
          .rfind("AdminNetworkPolicy deny-secure (tier kube-admin, priority 10) ingress rule 0", 0),
      0u);
}

// Admin beats a NetworkPolicy; Pass hands the decision to it; the baseline applies only where
// no NetworkPolicy selects the pod.
TEST(AdminSemantics, AdminNetworkPolicyBaselineOrder) {
  const std::string np =
      "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, "
      "namespace: s}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: "
      "[{namespaceSelector: {matchLabels: {zone: internal}}}]}]\n";
  const std::string banp =
      "---\napiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
      "metadata: {name: default}\nspec:\n  subject: {namespaces: {}}\n"
      "  ingress: [{action: Deny, from: [{namespaces: {}}]}]\n";
  Cluster c(kBase + np + banp);
  EXPECT_TRUE(c.allowed("b/api", "s/db", 5432)) << "the NetworkPolicy, not the baseline";
  EXPECT_FALSE(c.allowed("a/web", "s/db", 5432)) << "isolated by the NetworkPolicy";
  EXPECT_FALSE(c.allowed("b/api", "s/vault", 80)) << "no NetworkPolicy: the baseline";
  Cluster admin(kBase + np + banp + kDenyToSecure);
  EXPECT_FALSE(admin.allowed("b/api", "s/db", 5432)) << "admin over the NetworkPolicy";
  const std::string pass =
      anp("pass-internal", 5,
          "  subject: {namespaces: {matchLabels: {zone: secure}}}\n"
          "  ingress: [{action: Pass, from: [{namespaces: {matchLabels: {zone: internal}}}]}]\n");
  Cluster passed(kBase + np + banp + kDenyToSecure + pass);
  EXPECT_TRUE(passed.allowed("b/api", "s/db", 5432)) << "passed on to the NetworkPolicy";
  EXPECT_FALSE(passed.allowed("b/api", "s/vault", 80)) << "passed on, then the baseline";
}

// networks match pod addresses too; nodes match the selected Nodes' addresses; a named port
// resolves on the destination pod in whatever protocol it declares.
TEST(AdminSemantics, NetworksNodesAndNamedPorts) {
  Cluster c(kBase +
            anp("egress", 1,
                "  subject: {namespaces: {matchLabels: {zone: public}}}\n"
                "  egress:\n"
                "  - {action: Deny, to: [{networks: [10.0.0.2/32]}]}\n"
                "  - {action: Deny, to: [{nodes: {matchLabels: {role: infra}}}]}\n") +
            anp("named", 2,
                "  subject: {namespaces: {matchLabels: {zone: secure}}}\n"
                "  ingress: [{action: Deny, from: [{namespaces: {}}], ports: [{namedPort: "
                "pg}]}]\n"));
  EXPECT_FALSE(c.allowed("a/web", "b/api", 8080)) << "a network that is a pod's address";
  EXPECT_TRUE(c.allowed("a/web", "s/vault", 80));
  EXPECT_FALSE(c.allowed("a/web", "192.168.0.1", 22)) << "the infra node";
  EXPECT_TRUE(c.allowed("a/web", "192.168.0.2", 22)) << "a worker node";
  EXPECT_FALSE(c.allowed("b/api", "s/db", 5432)) << "db's pg port";
  EXPECT_TRUE(c.allowed("b/api", "s/db", 5433));
  EXPECT_TRUE(c.allowed("b/api", "s/vault", 5432)) << "vault declares no pg port";
  EXPECT_TRUE(c.allowed("b/api", "s/db", 5432, kUdp)) << "db declares pg for TCP only";
  EXPECT_FALSE(c.allowed("b/api", "s/db", 5432, kTcp));
}

}  // namespace
}  // namespace zonewall::compiler
