// Lint findings: one case per rule id, each with the location it must point at.
#include "zonewall/compiler/lint.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "zonewall/policy/loader.h"

namespace zonewall::compiler {
namespace {

std::vector<zonewall::Diagnostic> lintText(const std::string& yaml) {
  policy::Store s;
  zonewall::Diagnostics d;
  policy::loadSources({{"p.yaml", yaml}}, s, d);
  policy::validateStore(s, d);
  Inventory inv(s);
  lint(s, inv, d);
  d.sort();
  return d.all();
}

bool has(const std::vector<zonewall::Diagnostic>& ds, const std::string& rule, int line) {
  return std::any_of(ds.begin(), ds.end(), [&](const zonewall::Diagnostic& d) {
    return d.rule_id == rule && d.loc.line == line;
  });
}

std::string dump(const std::vector<zonewall::Diagnostic>& ds) {
  std::string s;
  for (const auto& d : ds) s += d.str() + "\n";
  return s;
}

const char* kInventory = R"(apiVersion: v1
kind: Namespace
metadata: {name: x, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {app: web}}
status: {podIP: 10.0.0.1}
)";

// Selectors that match nothing in the inventory, and policies that select nothing.
TEST(Lint, SelectorsMatchingNothing) {
  auto ds = lintText(std::string(kInventory) + R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: nope}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: ghost}}
    - namespaceSelector: {matchLabels: {team: ghost}}
)");
  EXPECT_TRUE(has(ds, "policy-selects-nothing", 10)) << dump(ds);
  EXPECT_TRUE(has(ds, "selector-matches-nothing", 17)) << dump(ds);
  EXPECT_TRUE(has(ds, "selector-matches-nothing", 18)) << dump(ds);
}

// Without an inventory there is nothing to check selectors against: no such findings.
TEST(Lint, NoInventoryNoSelectorFindings) {
  auto ds = lintText(R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {matchLabels: {app: nope}}
)");
  EXPECT_TRUE(ds.empty()) << dump(ds);
}

// A rule after a catch-all Deny in the same tier is never reached.
TEST(Lint, ShadowedRules) {
  auto ds = lintText(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: first}
spec:
  order: 1
  selector: all()
  ingress:
  - action: Deny
    protocol: TCP
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: second}
spec:
  order: 2
  selector: app == 'web'
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80]}
  - action: Allow
    protocol: UDP
)");
  EXPECT_TRUE(has(ds, "shadowed-rule", 18)) << dump(ds);
  EXPECT_FALSE(has(ds, "shadowed-rule", 21)) << dump(ds);
}

// A Pass in the last tier, and the k8s two-peers footgun, and allow from the world.
TEST(Lint, PassFootgunAndWorld) {
  auto ds = lintText(R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: p}
spec:
  selector: all()
  ingress:
  - action: Pass
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: q, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
    - podSelector: {matchLabels: {app: web}}
  - from:
    - ipBlock: {cidr: 0.0.0.0/0}
)");
  EXPECT_TRUE(has(ds, "pass-in-last-tier", 7)) << dump(ds);
  EXPECT_TRUE(has(ds, "k8s-peer-split", 17)) << dump(ds);
  EXPECT_TRUE(has(ds, "allow-from-world", 19)) << dump(ds);
}

// Cluster-admin policy: tied priorities, a second BANP not named default, Pass in the
// Baseline tier, a rule an earlier one of its policy decides first, a subject without pods.
TEST(Lint, ClusterAdminPolicy) {
  auto ds = lintText(std::string(kInventory) + R"(
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: a}
spec:
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
    ports: [{portRange: {start: 1, end: 1024}}]
  - name: late
    action: Allow
    from: [{pods: {namespaceSelector: {matchLabels: {team: a}}, podSelector: {}}}]
    ports: [{portNumber: {port: 80}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: b}
spec:
  tier: Admin
  priority: 5
  subject: {namespaces: {matchLabels: {team: nobody}}}
  egress:
  - action: Deny
    to: [{networks: [10.0.0.0/8]}]
  - action: Accept
    to: [{networks: [10.1.0.0/16]}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: c}
spec:
  tier: Baseline
  priority: 5
  subject: {namespaces: {}}
  ingress:
  - action: Pass
    from: [{namespaces: {}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: extra}
spec:
  subject: {namespaces: {}}
)");
  const int base =
      1 + static_cast<int>(std::count(kInventory, kInventory + std::strlen(kInventory), '\n'));
  EXPECT_TRUE(has(ds, "shadowed-rule", base + 12)) << dump(ds);  // 'late'
  EXPECT_TRUE(has(ds, "admin-priority-tie", base + 17)) << dump(ds);
  EXPECT_TRUE(has(ds, "policy-selects-nothing", base + 17)) << dump(ds);
  EXPECT_TRUE(has(ds, "shadowed-rule", base + 27)) << dump(ds);  // 10.1/16 inside 10/8
  EXPECT_TRUE(has(ds, "pass-in-baseline", base + 38)) << dump(ds);
  EXPECT_TRUE(has(ds, "banp-name", base + 47)) << dump(ds);
  // Not a tie: the Baseline tier's priority 5 is another tier's.
  EXPECT_EQ(std::count_if(ds.begin(), ds.end(),
                          [](const auto& d) { return d.rule_id == "admin-priority-tie"; }),
            1)
      << dump(ds);
}

}  // namespace
}  // namespace zonewall::compiler
