// What Calico's validator refuses, zonewall's loader refuses, with Calico's reason, at the
// field's file:line:col; what it accepts, zonewall accepts. Each case cites its source in
// projectcalico/calico: libcalico-go/lib/validator/v3/validator.go (and its validator_test.go
// entries) and the CEL rules on the API types in api/pkg/apis/projectcalico/v3/.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "zonewall/policy/loader.h"

namespace zonewall::policy {
namespace {

struct Case {
  const char* source;  // where upstream says so
  std::string yaml;
  const char* error;  // a substring of the one error expected; nullptr = valid
  int line = 0;       // the error's line in `yaml` (1-based), 0 = not checked
};

std::string gnpRule(const std::string& rule) {
  return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
         "spec:\n  ingress:\n  - " +
         rule + "\n";
}
std::string gnpSpec(const std::string& spec) {
  return "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: p}\n"
         "spec:\n" +
         spec;
}

void check(const Case& c) {
  Store store;
  Diagnostics diags;
  loadSources({{"c.yaml", c.yaml}}, store, diags);
  validateStore(store, diags);
  std::vector<const Diagnostic*> errs;
  for (const Diagnostic& d : diags.all()) {
    if (d.severity == Severity::kError) errs.push_back(&d);
  }
  if (c.error == nullptr) {
    EXPECT_TRUE(errs.empty()) << c.source << ": refused valid input:\n"
                              << c.yaml << "\n"
                              << errs.front()->str();
    return;
  }
  ASSERT_FALSE(errs.empty()) << c.source << ": accepted:\n" << c.yaml;
  EXPECT_NE(errs.front()->message.find(c.error), std::string::npos)
      << c.source << ": got " << errs.front()->str() << "\nwant: " << c.error;
  EXPECT_EQ(errs.front()->loc.file, "c.yaml");
  if (c.line != 0) {
    EXPECT_EQ(errs.front()->loc.line, c.line) << errs.front()->str();
  }
  // An object with an error is dropped whole: it can never be half enforced.
  EXPECT_TRUE(store.calico_policies.empty() && store.network_sets.empty() && store.tiers.empty())
      << c.source;
}

// Item 3 of the issue: global() stands only as a rule's whole namespaceSelector.
TEST(CalicoUpstreamValidator, GlobalSelectorPlacement) {
  const Case cases[] = {
      {"globalnetworkpolicy.go CEL; validator_test.go 'disallow global() in selector field'",
       gnpSpec("  selector: global()\n"),
       "global() can only be used in an EntityRule "
       "namespaceSelector",
       5},
      {"globalnetworkpolicy.go CEL; validator_test.go 'disallow global() in namespaceSelector "
       "field'",
       gnpSpec("  namespaceSelector: global()\n"), "global() can only be used", 5},
      {"networkpolicy.go CEL",
       "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: "
       "x}\nspec:\n  selector: has(a) && global()\n",
       "global() can only be used", 5},
      {"policy_common.go CEL on EntityRule; validator_test.go 'disallow global() in EntityRule "
       "selector field'",
       gnpRule("{action: Allow, source: {selector: global()}}"), "global() can only be used", 6},
      {"validator.go validateEntityRule (globalSelectorOnly)",
       gnpRule("{action: Allow, source: {namespaceSelector: \"global() && has(a)\"}}"),
       "global() cannot be combined with other selectors", 6},
      {"validator.go validateEntityRule: tokens other than global() alone",
       gnpRule("{action: Allow, source: {namespaceSelector: \"(global())\"}}"),
       "global() cannot be combined", 6},
      {"validator_test.go 'allow global() and projectcalico.org/name in EntityRule "
       "namespaceSelector field'",
       gnpRule("{action: Allow, source: {namespaceSelector: global(), selector: "
               "\"projectcalico.org/name == 'x'\"}}"),
       nullptr},
      {"validator.go validateEntityRule: blanks around global() are one token",
       gnpRule("{action: Allow, source: {namespaceSelector: \" global( ) \"}}"), nullptr},
      {"policy_common.go: the CEL rule covers selector, not notSelector",
       gnpRule("{action: Deny, source: {notSelector: global()}}"), nullptr},
  };
  for (const Case& c : cases) check(c);
}

// Item 4: IP versions (validator.go validateRule, scanNets) and the ICMP CEL rules.
TEST(CalicoUpstreamValidator, IpVersions) {
  const Case cases[] = {
      {"validator_test.go 'should reject rule mixed IPv4 (src) and IPv6 (dest)'",
       gnpRule("{action: Allow, protocol: TCP, source: {nets: [10.0.0.0/8]}, destination: {nets: "
               "[\"fd00::/64\"]}}"),
       "rule contains both IPv4 and IPv6 CIDRs", 6},
      {"validator.go scanNets: v4 && v6 in one list",
       gnpRule("{action: Allow, source: {nets: [10.0.0.0/8, \"fd00::/64\"]}}"),
       "rule contains both IPv4 and IPv6 CIDRs"},
      {"validator_test.go 'should reject rule mixed IPVersion and Source Net IP version'",
       gnpRule("{action: Allow, protocol: TCP, ipVersion: 6, source: {nets: [10.0.0.0/8]}}"),
       "rule IP version doesn't match CIDR version"},
      {"validator_test.go 'net list: should reject rule mixed IPv6 version and IPv4 Net' "
       "(notNets)",
       gnpRule("{action: Allow, ipVersion: 6, destination: {notNets: [10.0.0.0/8]}}"),
       "rule IP version doesn't match CIDR version"},
      {"validator.go scanNets: catch-all CIDR in negation",
       gnpRule("{action: Deny, source: {notNets: [0.0.0.0/0]}}"),
       "catch-all CIDR 0.0.0.0/0 in negation creates logical contradiction"},
      {"validator.go scanNets: ::/0 in negation",
       gnpRule("{action: Deny, destination: {notNets: [\"::/0\"]}}"), "catch-all CIDR"},
      {"validator_test.go 'should reject rule with an IPv4 protocol and an IPVersion=6'",
       gnpRule("{action: Allow, protocol: ICMP, ipVersion: 6}"),
       "protocol ICMP requires ipVersion 4"},
      {"validator_test.go 'should reject rule with an IPv6 protocol and an IPVersion=4'",
       gnpRule("{action: Allow, protocol: ICMPv6, ipVersion: 4}"),
       "protocol ICMPv6 requires ipVersion 6"},
      {"policy_common.go CEL on notProtocol",
       gnpRule("{action: Allow, notProtocol: ICMPv6, ipVersion: 4}"),
       "protocol ICMPv6 requires ipVersion 6"},
      {"validator_test.go 'should allow Rule with correct ipversion for icmpv6'",
       gnpRule("{action: Allow, ipVersion: 6, protocol: ICMPv6, icmp: {type: 0}}"), nullptr},
      {"validator_test.go 'should not reject Rule with icmp fields and no ipversion'",
       gnpRule("{action: Allow, protocol: ICMP, icmp: {type: 0}}"), nullptr},
      {"validator_test.go 'should reject Rule with icmp fields and no protocol'",
       gnpRule("{action: Allow, ipVersion: 4, icmp: {type: 0}}"),
       "ICMP fields require protocol to be ICMP or ICMPv6"},
      {"policy_common.go CEL on ICMPFields; validator_test.go 'should reject ICMP with code and "
       "no type'",
       gnpRule("{action: Allow, protocol: ICMP, icmp: {code: 0}}"),
       "ICMP code specified without an ICMP type"},
      {"validator_test.go 'should accept ICMP with no config'",
       gnpRule("{action: Allow, protocol: ICMP, icmp: {}}"), nullptr},
      {"validator_test.go 'should reject ICMP with type too high'",
       gnpRule("{action: Allow, protocol: ICMP, icmp: {type: 255}}"), "out of range"},
      {"one IP version throughout: valid",
       gnpRule("{action: Allow, ipVersion: 6, source: {nets: [\"fd00::/64\"]}, destination: "
               "{notNets: [\"fd00::1/128\"]}}"),
       nullptr},
  };
  for (const Case& c : cases) check(c);
}

// Ports and protocols (validator.go validateRule, validatePort, validateProtocol; the Action
// enum in policy_common.go).
TEST(CalicoUpstreamValidator, PortsProtocolsActions) {
  const Case cases[] = {
      {"validator_test.go 'should reject Rule with one invalid port in the port range (MinPort "
       "0)'",
       gnpRule("{action: Allow, protocol: TCP, destination: {notPorts: ['0:100']}}"),
       "invalid port range"},
      {"validator.go validatePort: port number must be between 1 and 65535",
       gnpRule("{action: Allow, protocol: TCP, destination: {ports: [0]}}"),
       "port number must be between 1 and 65535"},
      {"validator.go validateRule: protocolSingleOrRangePortsMsg",
       gnpRule("{action: Allow, destination: {ports: [80]}}"),
       "rules with numeric port or port range must set protocol to TCP or UDP or SCTP"},
      {"numorstring.Protocol SupportsPorts: not UDPLite (protocolPortsMsg)",
       gnpRule("{action: Allow, protocol: UDPLite, destination: {ports: [80]}}"),
       "rules that specify ports must set protocol to TCP or UDP or SCTP"},
      {"validator_test.go 'should allow Rule with dest ports and protocol type sctp'",
       gnpRule("{action: Allow, protocol: SCTP, destination: {ports: [1]}}"), nullptr},
      {"validator.go validateProtocol: protocolRegex is case-sensitive",
       gnpRule("{action: Allow, protocol: tcp}"), "protocol name invalid"},
      {"validator.go validateProtocol: protocol number invalid",
       gnpRule("{action: Allow, protocol: 0}"), "protocol number invalid"},
      {"validator_test.go protocolFromInt(100)", gnpRule("{action: Allow, protocol: 100}"),
       nullptr},
      {"policy_common.go: Action is the enum Allow;Deny;Log;Pass", gnpRule("{action: allow}"),
       "unsupported action 'allow'"},
      {"policy_common.go: ports MaxItems=50",
       gnpRule("{action: Allow, protocol: TCP, destination: {ports: [" +
               [] {
                 std::string p;
                 for (int i = 1; i <= 51; ++i) p += (i > 1 ? "," : "") + std::to_string(i);
                 return p;
               }() +
               "]}}"),
       "51 entries; Calico's limit is 50"},
  };
  for (const Case& c : cases) check(c);
}

// Item 5 and the object rules: names, labels (k8s IsQualifiedName / IsValidLabelValue, which
// validator.go validateObjectMetaLabels applies), types, selector length, tiers.
TEST(CalicoUpstreamValidator, NamesLabelsTypesTiers) {
  const std::string long_key(64, 'k');
  const Case cases[] = {
      {"validator.go validateObjectMetaLabels: name part must be no more than 63 characters",
       "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  "
       "labels: {" +
           long_key + ": x}\nspec: {nets: [10.0.0.0/8]}\n",
       "name part must be no more than 63 characters", 5},
      {"k8s IsQualifiedName: prefix must be a DNS subdomain",
       "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  "
       "labels: {Example.COM/x: y}\nspec: {nets: [10.0.0.0/8]}\n",
       "prefix part a lowercase RFC 1123 subdomain"},
      {"k8s IsValidLabelValue",
       "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata:\n  name: s\n  "
       "labels: {a: -x}\nspec: {nets: [10.0.0.0/8]}\n",
       "a valid label must be an empty string or consist of alphanumeric characters"},
      {"validator.go validateNetworkSet: projectcalico.org/namespace is not a valid label name",
       "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata:\n  name: s\n  namespace: "
       "x\n  labels: {projectcalico.org/namespace: y}\nspec: {nets: [10.0.0.0/8]}\n",
       "projectcalico.org/namespace is not a valid label name"},
      {"validator.go globalNetworkPolicyNameRegex: at most one dot",
       "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: a.b.c}\n"
       "spec: {}\n",
       "name 'a.b.c' must consist of lower case alphanumeric characters or '-'"},
      {"validator.go networkPolicyNameRegex: knp.default.<subdomain>",
       "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: knp.default.a.b.c, "
       "namespace: x}\nspec: {}\n",
       nullptr},
      {"validator.go tierNameRegex: no dots in a tier name",
       "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: a.b}\nspec: {order: 1}\n",
       "name 'a.b' must consist of"},
      {"validator.go validateGlobalNetworkPolicySpec: type specified more than once",
       gnpSpec("  types: [Ingress, Ingress]\n"), "'Ingress' type specified more than once"},
      {"globalnetworkpolicy.go: types MinItems=1", gnpSpec("  types: []\n"),
       "should have at least 1 item"},
      {"policy_common.go: selector MaxLength=1024",
       gnpSpec("  selector: \"" + std::string(1020, 'a') + " == 'b'\"\n"),
       "selector is 1027 characters long; Calico's limit is 1024"},
      {"tier.go CEL: default tier order must be 1000000",
       "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: "
       "5}\n",
       "default tier order must be 1000000"},
      {"tier.go CEL: kube-admin must have default action Pass",
       "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: kube-admin}\nspec: {order: "
       "1000, defaultAction: Deny}\n",
       "The 'kube-admin' tier must have default action 'Pass'"},
      {"tier.go CEL: the default tier as Calico creates it",
       "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: default}\nspec: {order: "
       "1000000, defaultAction: Deny}\n",
       nullptr},
  };
  for (const Case& c : cases) check(c);
}

}  // namespace
}  // namespace zonewall::policy
