// Staged policies (Calico's StagedNetworkPolicy, StagedGlobalNetworkPolicy and
// StagedKubernetesNetworkPolicy, projectcalico.org/v3): read and checked like the policy each
// would become, never enforced, and promoteStaged() shows what promoting them would do
// (api/pkg/apis/projectcalico/v3/staged*.go: ConvertStaged*ToEnforced copies the spec onto
// the enforced kind of the same name; validator.go refuses a Delete with other spec fields).
#include <gtest/gtest.h>

#include "zonewall/policy/loader.h"

namespace zonewall::policy {
namespace {

Store load(const std::string& text, Diagnostics& d) {
  Store s;
  loadSources({{"s.yaml", text}}, s, d);
  validateStore(s, d);
  return s;
}

std::string errors(const Diagnostics& d) {
  std::string out;
  for (const auto& x : d.all()) out += x.str() + "\n";
  return out;
}

const char* kStaged = R"(apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  selector: app == 'api'
  ingress: [{action: Allow, source: {selector: app == 'web'}}]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata: {name: allow-web, namespace: shop}
spec:
  selector: app == 'api'
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: lockdown}
spec:
  stagedAction: Set
  selector: all()
  egress: [{action: Deny, protocol: UDP}]
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: old, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: old, namespace: shop}
spec: {stagedAction: Delete}
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata: {name: recommended}
spec: {stagedAction: Learn, selector: all(), ingress: [{action: Deny}]}
)";

TEST(Staged, LoadedNeverEnforced) {
  Diagnostics d;
  Store s = load(kStaged, d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.staged.size(), 5u);
  // The enforced lists hold only the enforced objects.
  ASSERT_EQ(s.calico_policies.size(), 1u);
  EXPECT_EQ(s.calico_policies[0].ingress_rules[0].action, Action::kAllow);
  ASSERT_EQ(s.k8s_policies.size(), 1u);
  EXPECT_EQ(s.staged[0].kind(), std::string("StagedNetworkPolicy"));
  EXPECT_EQ(s.staged[0].action, StagedAction::kSet);  // Calico's default
  EXPECT_EQ(s.staged[0].target(), "Calico NetworkPolicy shop/allow-web");
  EXPECT_EQ(s.staged[1].target(), "GlobalNetworkPolicy lockdown");
  EXPECT_EQ(s.staged[2].target(), "NetworkPolicy shop/default-deny");
  EXPECT_EQ(s.staged[3].action, StagedAction::kDelete);
  EXPECT_EQ(s.staged[4].action, StagedAction::kLearn);
  EXPECT_EQ(s.staged[0].loc.line, 8);
}

TEST(Staged, PromotionSetsReplacesAndDeletes) {
  Diagnostics d;
  Store s = load(kStaged, d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  Store p = promoteStaged(s);
  EXPECT_TRUE(p.staged.empty());
  ASSERT_EQ(p.calico_policies.size(), 2u);  // allow-web replaced, lockdown created
  EXPECT_EQ(p.calico_policies[0].key(), "shop/allow-web");
  EXPECT_EQ(p.calico_policies[0].ingress_rules[0].action, Action::kDeny);
  EXPECT_EQ(p.calico_policies[1].key(), "lockdown");
  EXPECT_TRUE(p.calico_policies[1].global);
  ASSERT_EQ(p.k8s_policies.size(), 1u);  // old deleted, default-deny created
  EXPECT_EQ(p.k8s_policies[0].key(), "shop/default-deny");
  // Learn changes nothing: no "recommended" policy appears.
  for (const auto& c : p.calico_policies) EXPECT_NE(c.name, "recommended");
}

// What Calico refuses in a staged policy, zonewall refuses, at file:line:col.
TEST(Staged, RefusesWhatCalicoRefuses) {
  struct Bad {
    const char* yaml;
    const char* error;
    int line;
  };
  const Bad cases[] = {
      {"apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: p, "
       "namespace: x}\nspec:\n  stagedAction: Delete\n  selector: all()\n",
       "should all be zero-value if stagedAction is Delete", 6},
      {"apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: "
       "p}\nspec:\n  stagedAction: Promote\n",
       "unsupported stagedAction 'Promote'", 5},
      {"apiVersion: projectcalico.org/v3\nkind: StagedKubernetesNetworkPolicy\nmetadata: {name: "
       "p, namespace: x}\nspec:\n  stagedAction: Delete\n  podSelector: {}\n",
       "Spec fields should all be zero-value", 6},
      // The enforced kind's rules hold: global() in a policy selector.
      {"apiVersion: projectcalico.org/v3\nkind: StagedGlobalNetworkPolicy\nmetadata: {name: "
       "p}\nspec:\n  selector: global()\n",
       "global() can only be used in an EntityRule namespaceSelector", 5},
      {"apiVersion: projectcalico.org/v3\nkind: StagedNetworkPolicy\nmetadata: {name: p, "
       "namespace: x}\nspec:\n  tier: nope\n",
       "names tier 'nope', which is not defined", 1},
  };
  for (const Bad& b : cases) {
    Diagnostics d;
    Store s = load(b.yaml, d);
    ASSERT_TRUE(d.hasErrors()) << b.yaml;
    const Diagnostic* first = nullptr;
    for (const auto& x : d.all()) {
      if (x.severity == Severity::kError && first == nullptr) first = &x;
    }
    EXPECT_NE(first->message.find(b.error), std::string::npos) << first->str();
    EXPECT_EQ(first->loc.line, b.line) << first->str();
  }
}

}  // namespace
}  // namespace zonewall::policy
