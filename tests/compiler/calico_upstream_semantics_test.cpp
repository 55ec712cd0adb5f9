// Calico's meaning of a rule, from Calico's own source rather than zonewall's reading of it:
// every verdict below is what Felix renders, with the upstream place that decides it named in
// the test (projectcalico/calico). Checked against the compiled table and the reference
// evaluator (harness.h), which must agree.
#include <gtest/gtest.h>

#include "compiler/harness.h"
#include "zonewall/compiler/lint.h"

namespace zonewall::compiler {
namespace {

using policy::kTcp;

const std::string kBase = ns("team", "owner: payments") + ns("shop", "env: prod") +
                          pod("shop/web", "app: web", "10.0.0.1,fd00::1") +
                          pod("shop/api", "app: api", "10.0.0.2,fd00::2") +
                          pod("team/job", "app: job", "10.0.1.1");

std::string gnp(const std::string& name, const std::string& body) {
  return "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: " +
         name + "}\nspec:\n" + body;
}
std::string cnp(const std::string& name, const std::string& ns, const std::string& body) {
  return "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n" + body;
}

// Item 1. A GlobalNetworkPolicy rule selector matches every endpoint and network set,
// namespaced NetworkSets included: libcalico-go updateprocessors/rules.go gives a global
// policy's selector no namespace term, and a NetworkSet carries its labels into Felix's IP
// sets (updateprocessors/networksetprocessor.go); Calico's docs: "global network policy ...
// rule selectors match network sets in any namespace". A security team's GNP Deny aimed at
// a team's blocklist NetworkSet fires.
TEST(CalicoUpstreamSemantics, GlobalRuleSelectorSeesNamespacedNetworkSets) {
  const std::string yaml =
      kBase +
      "---\napiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: blocklist, "
      "namespace: team, labels: {list: blocked}}\nspec: {nets: [203.0.113.0/24]}\n" +
      gnp("deny-blocked",
          "  order: 1\n  selector: all()\n  ingress:\n"
          "  - {action: Deny, source: {selector: list == 'blocked'}}\n"
          "  - {action: Allow}\n");
  Cluster c(yaml);
  EXPECT_FALSE(c.allowed("203.0.113.9", "shop/web", 80));
  EXPECT_TRUE(c.allowed("198.51.100.9", "shop/web", 80));
  // lint no longer says the selector matches nothing.
  Diagnostics d;
  Inventory inv(c.store());
  lint(c.store(), inv, d);
  for (const Diagnostic& x : d.all()) EXPECT_NE(x.rule_id, "selector-matches-nothing") << x.str();
}

// Item 2. Felix renders a rule only for the IP versions it can match (felix/rules/policy.go,
// FilterRuleToIPVersion): a rule whose notNets are all IPv4 does not exist for IPv6 traffic.
TEST(CalicoUpstreamSemantics, RulesExistOnlyForTheirIpVersion) {
  Cluster c(kBase + gnp("v4-only",
                        "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                        "  - {action: Deny, source: {notNets: [10.0.0.0/8]}}\n"
                        "  - {action: Allow, source: {nets: [\"fd00::/64\"]}}\n"
                        "  - {action: Allow, destination: {nets: [10.0.0.0/8]}}\n"));
  EXPECT_FALSE(c.allowed("192.0.2.1", "10.0.0.1", 80));  // IPv4 outside 10/8: denied
  EXPECT_TRUE(c.allowed("10.0.0.2", "10.0.0.1", 80));    // falls to the third rule
  // IPv6 from outside fd00::/64: the Deny does not exist for IPv6, the second rule does not
  // match, the third does not exist for IPv6: end of tier, denied — but by the tier, not by
  // a rule that Calico never renders.
  EXPECT_FALSE(c.allowed("2001:db8::1", "fd00::1", 80));
  EXPECT_NE(c.decidedBy(Direction::kIngress, "fd00::1", "2001:db8::1", 80).find("end of tier"),
            std::string::npos);
  // IPv6 inside fd00::/64: the IPv4-only Deny is not in its way.
  EXPECT_TRUE(c.allowed("fd00::2", "fd00::1", 80));
}

// notSelector, as libcalico-go's getEndpointSelector builds it (updateprocessors/rules.go;
// rules_test.go expects DstSelector "projectcalico.org/namespace == 'namespace2'" for a
// destination with only a notSelector) and Felix's combineMatchesIfPossible folds it into the
// positive selector (felix/calc/rule_scanner.go).
TEST(CalicoUpstreamSemantics, NotSelectorAsCalicoBuildsIt) {
  // In a namespaced policy a lone notSelector still keeps the rule in its namespace.
  Cluster scoped(kBase + cnp("p", "shop",
                             "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                             "  - {action: Allow, source: {notSelector: app == 'api'}}\n"));
  EXPECT_FALSE(scoped.allowed("shop/api", "shop/web", 80));
  EXPECT_FALSE(scoped.allowed("team/job", "shop/web", 80));   // another namespace: no match
  EXPECT_FALSE(scoped.allowed("192.0.2.1", "shop/web", 80));  // outside the cluster: no match

  // In a global policy it stands alone: anything it does not pick, anywhere, matches.
  Cluster global(kBase + gnp("g",
                             "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                             "  - {action: Allow, source: {notSelector: app == 'api'}}\n"));
  EXPECT_FALSE(global.allowed("shop/api", "shop/web", 80));
  EXPECT_TRUE(global.allowed("team/job", "shop/web", 80));
  EXPECT_TRUE(global.allowed("192.0.2.1", "shop/web", 80));

  // With a selector, one IP set of `selector && !notSelector`: a pod the selector picks stays
  // matched even inside a network set the notSelector picks.
  Cluster folded(
      kBase +
      "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: lab, "
      "labels: {zone: lab}}\nspec: {nets: [10.0.0.0/24]}\n" +
      gnp("f",
          "  order: 1\n  selector: app == 'web'\n  ingress:\n"
          "  - {action: Allow, source: {selector: has(app), notSelector: zone == 'lab'}}\n"));
  EXPECT_TRUE(folded.allowed("shop/api", "shop/web", 80));
  EXPECT_FALSE(folded.allowed("10.0.0.77", "shop/web", 80));  // only the lab set: not has(app)
}

// global(): Felix evaluates it true (libcalico-go/lib/selector/parser/ast.go, GlobalNode), and
// a rule's whole namespaceSelector global() becomes !has(projectcalico.org/namespace); other
// namespaceSelectors are prefixed with pcns., so one that picks "no namespace" reaches the
// GlobalNetworkSets too (updateprocessors/rules.go).
TEST(CalicoUpstreamSemantics, GlobalAndNamespaceSelectors) {
  const std::string sets =
      "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: office, "
      "labels: {role: office}}\nspec: {nets: [192.0.2.0/24]}\n";
  // notSelector global() in a global policy: every endpoint and set is excluded, so only
  // addresses outside all of them match.
  Cluster outside(kBase + sets +
                  gnp("o",
                      "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                      "  - {action: Deny, source: {notSelector: global()}}\n"
                      "  - {action: Allow}\n"));
  EXPECT_FALSE(outside.allowed("198.51.100.1", "shop/web", 80));
  EXPECT_TRUE(outside.allowed("192.0.2.5", "shop/web", 80));  // in the office set
  EXPECT_TRUE(outside.allowed("shop/api", "shop/web", 80));

  Cluster c(kBase + sets +
            cnp("p", "shop",
                "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                "  - {action: Allow, source: {namespaceSelector: \"!has(owner)\", selector: role "
                "== 'office'}}\n"
                "  - {action: Allow, source: {namespaceSelector: all(), selector: app == "
                "'job'}}\n"));
  EXPECT_TRUE(c.allowed("192.0.2.5", "shop/web", 80));  // !has(pcns.owner) holds for it
  EXPECT_TRUE(c.allowed("team/job", "shop/web", 80));
  Cluster all_ns(kBase + sets +
                 cnp("p", "shop",
                     "  order: 1\n  selector: app == 'web'\n  ingress:\n"
                     "  - {action: Allow, source: {namespaceSelector: all(), selector: role == "
                     "'office'}}\n"));
  // all() becomes has(projectcalico.org/namespace): never a GlobalNetworkSet.
  EXPECT_FALSE(all_ns.allowed("192.0.2.5", "shop/web", 80));
}

}  // namespace
}  // namespace zonewall::compiler
