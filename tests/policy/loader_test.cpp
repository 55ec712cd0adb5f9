#include "zonewall/policy/loader.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

namespace zonewall::policy {
namespace {

namespace fs = std::filesystem;

Store load(const std::string& text, Diagnostics& diags, const std::string& name = "t.yaml") {
  Store s;
  loadSources({{name, text}}, s, diags);
  validateStore(s, diags);
  return s;
}

std::string errors(const Diagnostics& d) {
  std::string out;
  for (const auto& x : d.all()) out += x.str() + "\n";
  return out;
}

// Every field of a Kubernetes NetworkPolicy lands in the model.
TEST(Loader, ReadsKubernetesNetworkPolicy) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [a, b]}
    - {key: old, operator: DoesNotExist}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
      podSelector: {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - {port: 80}
    - {port: http, protocol: UDP}
    - {port: 1000, endPort: 2000, protocol: SCTP}
  egress:
  - to: [{podSelector: {}}]
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.k8s_policies.size(), 1u);
  const K8sPolicy& p = s.k8s_policies[0];
  EXPECT_EQ(p.pod_selector.str(), "!has(old) && app == 'web' && tier in {'a', 'b'}");
  EXPECT_TRUE(p.ingress);
  EXPECT_TRUE(p.egress);  // defaulted: the policy has egress rules
  ASSERT_EQ(p.ingress_rules.size(), 1u);
  const K8sRule& r = p.ingress_rules[0];
  ASSERT_EQ(r.peers.size(), 2u);
  EXPECT_TRUE(r.peers[0].namespace_selector && r.peers[0].pod_selector);
  EXPECT_EQ(r.peers[1].ip_block->cidr.str(), "10.0.0.0/8");
  EXPECT_EQ(r.peers[1].ip_block->except[0].str(), "10.1.0.0/16");
  ASSERT_EQ(r.ports.size(), 3u);
  EXPECT_EQ(r.ports[0].protocol, kTcp);
  EXPECT_EQ(*r.ports[0].port, 80);
  EXPECT_EQ(r.ports[1].name, "http");
  EXPECT_EQ(r.ports[1].protocol, kUdp);
  EXPECT_EQ(*r.ports[2].end_port, 2000);
  EXPECT_EQ(r.loc.line, 12);
  EXPECT_EQ(r.loc.col, 5);
}

// policyTypes defaulting as the API server does it.
TEST(Loader, DefaultsPolicyTypes) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b}
spec: {podSelector: {}, egress: []}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: c}
spec: {podSelector: {}, policyTypes: [Egress]}
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.k8s_policies.size(), 3u);
  EXPECT_EQ(s.k8s_policies[0].ns, "default");
  EXPECT_TRUE(s.k8s_policies[0].ingress && !s.k8s_policies[0].egress);
  EXPECT_TRUE(s.k8s_policies[1].ingress && !s.k8s_policies[1].egress);
  EXPECT_TRUE(!s.k8s_policies[2].ingress && s.k8s_policies[2].egress);
}

// Calico objects: tiers, orders, actions, entity rules, ICMP, network sets, Calico defaulting.
TEST(Loader, ReadsCalicoObjects) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Pass}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: offices, labels: {role: offices}}
spec: {nets: [192.0.2.0/24, "2001:db8::/32"]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: security.p}
spec:
  tier: security
  order: 10.5
  selector: zone == 'secure'
  egress:
  - action: Deny
    protocol: ICMP
    icmp: {type: 8, code: 0}
  - action: Allow
    protocol: TCP
    notProtocol: UDP
    destination:
      selector: role == 'offices'
      namespaceSelector: global()
      notNets: [192.0.2.128/25]
      ports: [80, "8000:8100", https]
      notPorts: [8050]
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.tiers.size(), 1u);
  EXPECT_EQ(s.tiers[0].default_action, Action::kPass);
  ASSERT_EQ(s.network_sets.size(), 1u);
  EXPECT_EQ(s.network_sets[0].nets.size(), 2u);
  ASSERT_EQ(s.calico_policies.size(), 1u);
  const CalicoPolicy& p = s.calico_policies[0];
  EXPECT_TRUE(p.global);
  EXPECT_EQ(*p.order, 10.5);
  EXPECT_FALSE(p.ingress);  // only egress rules: types default to Egress
  EXPECT_TRUE(p.egress);
  ASSERT_EQ(p.egress_rules.size(), 2u);
  EXPECT_EQ(p.egress_rules[0].icmp->type, 8);
  EXPECT_EQ(*p.egress_rules[0].icmp->code, 0);
  const EntityRule& dst = p.egress_rules[1].destination;
  ASSERT_EQ(dst.ports.size(), 3u);
  EXPECT_EQ(dst.ports[1].lo, 8000);
  EXPECT_EQ(dst.ports[1].hi, 8100);
  EXPECT_EQ(dst.ports[2].name, "https");
  EXPECT_EQ(dst.not_ports[0].lo, 8050);
  EXPECT_EQ(dst.not_nets[0].str(), "192.0.2.128/25");
}

// Pods: IPv4 and IPv6 addresses, named ports, implied namespace label.
TEST(Loader, ReadsInventory) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata: {name: x, labels: {zone: a}}
- apiVersion: v1
  kind: Pod
  metadata: {name: a, namespace: x, labels: {app: web}}
  spec:
    nodeName: n1
    containers:
    - ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
  status:
    podIP: 10.0.0.1
    podIPs: [{ip: 10.0.0.1}, {ip: "fd00::1"}]
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.pods.size(), 1u);
  EXPECT_EQ(s.pods[0].ips.size(), 2u);
  EXPECT_EQ(s.pods[0].node, "n1");
  EXPECT_EQ(*s.pods[0].namedPort("http", kTcp), 8080);
  EXPECT_EQ(*s.pods[0].namedPort("dns", kUdp), 53);
  EXPECT_FALSE(s.pods[0].namedPort("dns", kTcp));
  EXPECT_EQ(s.namespaces[0].labels.at(kNamespaceNameLabel), "x");
}

struct Expectation {
  int line;
  int col;
  std::string severity;
  std::string rule;
  auto operator<=>(const Expectation&) const = default;
};

// The bad-input corpus: each file says, in `# expect: LINE:COL SEVERITY RULE` comments, the
// exact diagnostics it must produce (errors and warnings), no more and no fewer.
TEST(Loader, BadInputCorpusReportsExactLocations) {
  fs::path dir = fs::path(ZONEWALL_SOURCE_DIR) / "tests" / "golden" / "bad";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 15u);
  const std::regex expect_re(R"(# expect: (\d+):(\d+) (error|warning) ([a-z0-9-]+))");
  for (const fs::path& f : files) {
    SCOPED_TRACE(f.filename().string());
    std::ifstream in(f);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    std::set<Expectation> want;
    for (std::sregex_iterator it(text.begin(), text.end(), expect_re), end; it != end; ++it) {
      want.insert({std::stoi((*it)[1]), std::stoi((*it)[2]), (*it)[3], (*it)[4]});
    }
    ASSERT_FALSE(want.empty()) << "no # expect: line";
    Diagnostics d;
    load(text, d, f.filename().string());
    std::set<Expectation> got;
    for (const auto& x : d.all()) {
      if (x.severity == Severity::kInfo) continue;
      EXPECT_EQ(x.loc.file, f.filename().string());
      got.insert({x.loc.line, x.loc.col, severityName(x.severity), x.rule_id});
    }
    EXPECT_EQ(got, want) << errors(d);
    EXPECT_TRUE(d.hasErrors() || std::all_of(want.begin(), want.end(), [](const Expectation& e) {
                  return e.severity == "warning";
                }));
  }
}

// Cluster-admin policy in both API versions, and Nodes: every field lands in the model.
TEST(Loader, ReadsClusterAdminPolicyAndNodes) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: secure}
spec:
  priority: 10
  subject:
    namespaces: {matchLabels: {zone: secure}}
  ingress:
  - name: ledger
    action: Allow
    from: [{pods: {namespaceSelector: {matchLabels: {zone: internal}}, podSelector: {}}}]
    ports:
    - portNumber: {port: 5432}
    - namedPort: metrics
    - portRange: {protocol: UDP, start: 1000, end: 2000}
  egress:
  - action: Pass
    to: [{networks: [10.0.0.0/8, "fd00::/64"]}, {nodes: {matchLabels: {role: infra}}}]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: db}}}}
  ingress:
  - action: Deny
    from: [{namespaces: {}}]
---
apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: dns}
spec:
  tier: Baseline
  priority: 0
  subject: {pods: {podSelector: {}}}
  egress:
  - action: Accept
    to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    protocols:
    - udp: {destinationPort: {number: 53}}
    - tcp: {destinationPort: {range: {start: 8000, end: 8080}}}
    - destinationNamedPort: dns
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {role: infra}}
status:
  addresses:
  - {type: InternalIP, address: 192.168.1.10}
  - {type: ExternalIP, address: "2001:db8::10"}
  - {type: Hostname, address: n1}
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  ASSERT_EQ(s.admin_policies.size(), 3u);
  const AdminPolicy& anp = s.admin_policies[0];
  EXPECT_EQ(anp.kind, AdminKind::kAdmin);
  EXPECT_FALSE(anp.baseline);
  EXPECT_EQ(anp.priority, 10);
  EXPECT_EQ(anp.subject.namespaces.str(), "zone == 'secure'");
  EXPECT_TRUE(anp.subject.pods.isAll());
  ASSERT_EQ(anp.ingress_rules.size(), 1u);
  const AdminRule& ledger = anp.ingress_rules[0];
  EXPECT_EQ(ledger.name, "ledger");
  EXPECT_EQ(ledger.action, Action::kAllow);
  ASSERT_EQ(ledger.ports.size(), 3u);
  EXPECT_EQ(ledger.ports[0].protocol, kTcp);  // defaulted
  EXPECT_EQ(ledger.ports[0].lo, 5432);
  EXPECT_EQ(ledger.ports[1].name, "metrics");
  EXPECT_EQ(ledger.ports[2].protocol, kUdp);
  EXPECT_EQ(ledger.ports[2].hi, 2000);
  ASSERT_EQ(anp.egress_rules.size(), 1u);
  EXPECT_EQ(anp.egress_rules[0].action, Action::kPass);
  ASSERT_EQ(anp.egress_rules[0].peers.size(), 2u);
  EXPECT_EQ(anp.egress_rules[0].peers[0].networks.size(), 2u);
  EXPECT_EQ(anp.egress_rules[0].peers[1].kind, AdminPeer::Kind::kNodes);
  const AdminPolicy& banp = s.admin_policies[1];
  EXPECT_TRUE(banp.baseline);
  EXPECT_FALSE(banp.priority);
  EXPECT_EQ(banp.tier(), std::string(kKubeBaselineTier));
  const AdminPolicy& cnp = s.admin_policies[2];
  EXPECT_EQ(cnp.kind, AdminKind::kCluster);
  EXPECT_TRUE(cnp.baseline);
  EXPECT_EQ(cnp.priority, 0);
  EXPECT_TRUE(cnp.subject.namespaces.isAll()) << "v1alpha2 defaults namespaceSelector to {}";
  ASSERT_EQ(cnp.egress_rules.size(), 1u);
  const auto& ports = cnp.egress_rules[0].ports;
  ASSERT_EQ(ports.size(), 3u);
  EXPECT_EQ(ports[0].protocol, kUdp);
  EXPECT_EQ(ports[0].lo, 53);
  EXPECT_EQ(ports[1].lo, 8000);
  EXPECT_EQ(ports[1].hi, 8080);
  EXPECT_EQ(ports[2].name, "dns");
  ASSERT_EQ(s.nodes.size(), 1u);
  EXPECT_EQ(s.nodes[0].labels.at("role"), "infra");
  ASSERT_EQ(s.nodes[0].addrs.size(), 2u) << "InternalIP and ExternalIP; the Hostname is a name";
  EXPECT_EQ(formatAddr(s.nodes[0].addrs[1]), "2001:db8::10");
}

// mergeStore (the CLI loads large inputs in parallel, one store per worker) keeps every kind:
// a staged policy, a cluster-admin policy or a Node of a second store is not lost.
TEST(Loader, MergeStoreKeepsEveryKind) {
  Diagnostics d;
  Store a = load("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", d);
  Store b = load(R"(apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata: {name: p, namespace: x}
spec: {stagedAction: Delete}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec: {subject: {namespaces: {}}}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
)",
                 d);
  ASSERT_FALSE(d.hasErrors()) << errors(d);
  mergeStore(a, std::move(b));
  EXPECT_EQ(a.namespaces.size(), 1u);
  EXPECT_EQ(a.staged.size(), 1u);
  EXPECT_EQ(a.admin_policies.size(), 1u);
  EXPECT_EQ(a.nodes.size(), 1u);
}

// A policy with an error is dropped whole: it never reaches the compiler half-read.
TEST(Loader, DropsInvalidPolicies) {
  Diagnostics d;
  Store s = load(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 0}]
)",
                 d);
  EXPECT_TRUE(d.hasErrors());
  EXPECT_TRUE(s.k8s_policies.empty());
}

}  // namespace
}  // namespace zonewall::policy

namespace zonewall::policy {
namespace {

// Split documents keep file-relative lines, and an error in one costs only that document.
TEST(Loader, SplitDocumentsKeepLocations) {
  SourceText src{
      "multi.yaml",
      "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Namespace\n"
      "metadata: {name: b, labels: {x: [}\n--- # trailing comment\napiVersion: v1\nkind: Nope\n",
      0};
  std::vector<SourceText> docs = splitDocuments(src);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[1].line_offset, 3);
  EXPECT_EQ(docs[2].line_offset, 7);
  Store s;
  Diagnostics d;
  loadSources(docs, s, d);
  ASSERT_EQ(s.namespaces.size(), 1u);  // a loads; b has a syntax error; the third is unknown
  EXPECT_EQ(s.namespaces[0].name, "a");
  ASSERT_EQ(d.all().size(), 2u);
  EXPECT_EQ(d.all()[0].rule_id, "yaml-syntax");
  EXPECT_EQ(d.all()[0].loc.line, 7);
  EXPECT_EQ(d.all()[1].rule_id, "unknown-kind");
  EXPECT_EQ(d.all()[1].loc.line, 10);
  EXPECT_EQ(d.all()[1].loc.col, 7);
}

}  // namespace
}  // namespace zonewall::policy
