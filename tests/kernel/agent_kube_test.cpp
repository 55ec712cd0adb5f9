// zonewall-agent against a real kube-apiserver + etcd, on two nodes in network namespaces:
// the deploy/ manifests created on the API server, each agent running as the DaemonSet runs it
// (in-cluster environment, a ServiceAccount token bound to the manifests' ClusterRole), pods
// created as API objects, wired by the real CNI plugin and their status patched as kubelet
// would; policies created, changed and deleted through the API; packets decide.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <set>
#include <sstream>

#include "agent_cluster.h"
#include "conformance/conformance_cases.h"
#include "zonewall/base/host_veth.h"

namespace zonewall::testing {
namespace {

using nlohmann::json;

#define NEW_CLUSTER(var, ...) \
  ZONEWALL_REQUIRE_ROOT();    \
  ZONEWALL_REQUIRE_KUBE();    \
  Cluster var(__VA_ARGS__);   \
  ASSERT_TRUE(var.ok()) << var.error()

// Policies created, changed and deleted through the API are enforced on both nodes; a policy
// the agent cannot read is rejected by name, and the good ones around it are enforced.
TEST(AgentKube, EnforcesWhatTheApiSays) {
  NEW_CLUSTER(c, "e");
  const std::string other = c.pod("other").netns;
  const std::string client_b = c.pod("client-b").netns;
  const std::string client_a = c.pod("client-a").netns;
  ASSERT_TRUE(probeOk(other, c.target("db", 80), 900)) << "no policy yet: open";

  ASSERT_EQ(c.kube().create(dbPolicy({80})), 201);
  EXPECT_TRUE(eventually(other, c.target("db", 80), false)) << c.logs();
  EXPECT_TRUE(probeOk(client_a, c.target("db", 80), 900));
  EXPECT_TRUE(probeOk(client_b, c.target("db", 80), 900)) << "across nodes";
  EXPECT_FALSE(probeOk(client_b, c.target("db", 81), 300));

  ASSERT_EQ(c.kube()
                .call("PUT", "/apis/networking.k8s.io/v1/namespaces/bank/networkpolicies/db",
                      dbPolicy({80, 81}))
                .status,
            200);
  EXPECT_TRUE(eventually(client_b, c.target("db", 81), true)) << c.logs();

  // A GlobalNetworkPolicy with a selector that does not parse (the CRD stores anything),
  // then a good one: ordered before the Kubernetes policy, it lets "other" in.
  size_t mark0 = c.agent(0).logSize();
  json bad = {{"apiVersion", "crd.projectcalico.org/v1"},
              {"kind", "GlobalNetworkPolicy"},
              {"metadata", {{"name", "default.broken"}}},
              {"spec", {{"selector", "app == "}, {"types", {"Ingress"}}}}};
  ASSERT_EQ(c.kube().create(bad), 201);
  json good = {
      {"apiVersion", "crd.projectcalico.org/v1"},
      {"kind", "GlobalNetworkPolicy"},
      {"metadata", {{"name", "default.let-other-in"}}},
      {"spec",
       {{"order", 10},
        {"selector", "app == 'db'"},
        {"types", {"Ingress"}},
        {"ingress",
         json::array({{{"action", "Allow"}, {"source", {{"selector", "role == 'other'"}}}}})}}}};
  ASSERT_EQ(c.kube().create(good), 201);
  EXPECT_TRUE(
      c.agent(0).waitLog("rejected GlobalNetworkPolicy broken", std::chrono::seconds(10), mark0))
      << c.agent(0).logText().substr(mark0);
  EXPECT_TRUE(eventually(other, c.target("db", 80), true)) << c.logs();
  EXPECT_TRUE(probeOk(client_b, c.target("db", 81), 900)) << "the rest as before";

  ASSERT_EQ(c.kube().remove(good), 200);
  EXPECT_TRUE(eventually(other, c.target("db", 80), false));
  ASSERT_EQ(c.kube().remove(dbPolicy({})), 200);
  EXPECT_TRUE(eventually(other, c.target("db", 81), true)) << "no policy left: open";
}

// Cluster-admin policy through the API, in the order the network-policy-api defines: a
// BaselineAdminNetworkPolicy denies db's ingress until a NetworkPolicy isolates db (then the
// NetworkPolicy decides); an AdminNetworkPolicy's Deny overrides that NetworkPolicy; a
// ClusterNetworkPolicy (v1alpha2) of a lower priority number Passes the clients on to it again.
TEST(AgentKube, ClusterAdminPoliciesThroughTheApi) {
  NEW_CLUSTER(c, "a");
  const std::string other = c.pod("other").netns;
  const std::string client_a = c.pod("client-a").netns;
  const std::string client_b = c.pod("client-b").netns;
  ASSERT_TRUE(probeOk(client_a, c.target("db", 80), 900)) << "no policy yet: open";
  const json db = {{"matchLabels", {{"app", "db"}}}};
  const json clients = {{"namespaceSelector", json::object()},
                        {"podSelector", {{"matchLabels", {{"role", "client"}}}}}};
  const json banp = {
      {"apiVersion", "policy.networking.k8s.io/v1alpha1"},
      {"kind", "BaselineAdminNetworkPolicy"},
      {"metadata", {{"name", "default"}}},
      {"spec",
       {{"subject", {{"pods", {{"namespaceSelector", json::object()}, {"podSelector", db}}}}},
        {"ingress", json::array({{{"name", "default-deny"},
                                  {"action", "Deny"},
                                  {"from", json::array({{{"namespaces", json::object()}}})}}})}}}};
  ASSERT_EQ(c.kube().create(banp), 201);
  EXPECT_TRUE(eventually(client_a, c.target("db", 80), false)) << "baseline denies" << c.logs();
  EXPECT_FALSE(probeOk(other, c.target("db", 80), 300));

  ASSERT_EQ(c.kube().create(dbPolicy({80})), 201);
  EXPECT_TRUE(eventually(client_b, c.target("db", 80), true)) << "NetworkPolicy overrides it";
  EXPECT_TRUE(probeOk(client_a, c.target("db", 80), 900));
  EXPECT_FALSE(probeOk(other, c.target("db", 80), 300)) << "db is isolated by the policy";

  const json anp = {
      {"apiVersion", "policy.networking.k8s.io/v1alpha1"},
      {"kind", "AdminNetworkPolicy"},
      {"metadata", {{"name", "lock-db"}}},
      {"spec",
       {{"priority", 10},
        {"subject", {{"pods", {{"namespaceSelector", json::object()}, {"podSelector", db}}}}},
        {"ingress",
         json::array({{{"name", "no-clients"},
                       {"action", "Deny"},
                       {"from", json::array({{{"pods", clients}}})},
                       {"ports", json::array({{{"portNumber",
                                                {{"protocol", "TCP"}, {"port", 80}}}}})}}})}}}};
  ASSERT_EQ(c.kube().create(anp), 201);
  EXPECT_TRUE(eventually(client_a, c.target("db", 80), false)) << "admin overrides" << c.logs();
  EXPECT_FALSE(probeOk(client_b, c.target("db", 80), 300));

  const json cnp = {
      {"apiVersion", "policy.networking.k8s.io/v1alpha2"},
      {"kind", "ClusterNetworkPolicy"},
      {"metadata", {{"name", "delegate-clients"}}},
      {"spec",
       {{"tier", "Admin"},
        {"priority", 5},
        {"subject", {{"pods", {{"namespaceSelector", json::object()}, {"podSelector", db}}}}},
        {"ingress",
         json::array({{{"action", "Pass"}, {"from", json::array({{{"pods", clients}}})}}})}}}};
  ASSERT_EQ(c.kube().create(cnp), 201);
  EXPECT_TRUE(eventually(client_a, c.target("db", 80), true)) << "passed on" << c.logs();
  EXPECT_TRUE(probeOk(client_b, c.target("db", 80), 900));

  ASSERT_EQ(c.kube().remove(dbPolicy({})), 200);
  EXPECT_TRUE(eventually(client_b, c.target("db", 80), false)) << "on to the baseline again";
  for (const json* o : {&cnp, &anp, &banp}) ASSERT_EQ(c.kube().remove(*o), 200);
  EXPECT_TRUE(eventually(other, c.target("db", 80), true)) << "nothing left: open" << c.logs();
}

// Three nodes that lease their subnets from etcd and reach each other over their agents' vxlan
// overlay, a pod wired by zonewall-cni on each: ping, TCP and UDP between every pair across
// the tunnel; then a policy on node-c's pod admits only node-a's, enforced across nodes for
// both protocols.
TEST(AgentKube, ThreeNodesPingTcpUdpAcrossTheOverlay) {
  NEW_CLUSTER(c, "3", false, Subnets::kEtcd, 3);
  ASSERT_EQ(c.kube().apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"), 201);
  const std::vector<std::string> names = {"a", "b", "c"};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        c.startPod(names[static_cast<size_t>(i)], {{"app", names[static_cast<size_t>(i)]}}, i, "x"))
        << c.logs();
  }
  auto pod = [&](const std::string& n) { return c.pod("x/" + n); };
  for (const std::string& from : names) {
    for (const std::string& to : names) {
      if (from == to) continue;
      const std::string ns = std::filesystem::path(pod(from).netns).filename().string();
      EXPECT_EQ(run("ip netns exec " + ns + " ping -c1 -W2 " + pod(to).ip).exit_code, 0)
          << from << " -> " << to;
      EXPECT_TRUE(probeOk(pod(from).netns, pod(to).ip + ":80/TCP", 900)) << from << " -> " << to;
      EXPECT_TRUE(probeOk(pod(from).netns, pod(to).ip + ":80/UDP", 900)) << from << " -> " << to;
    }
  }
  json only_a = {
      {"apiVersion", "networking.k8s.io/v1"},
      {"kind", "NetworkPolicy"},
      {"metadata", {{"name", "only-a"}, {"namespace", "x"}}},
      {"spec",
       {{"podSelector", {{"matchLabels", {{"app", "c"}}}}},
        {"policyTypes", {"Ingress"}},
        {"ingress",
         json::array(
             {{{"from", json::array({{{"podSelector", {{"matchLabels", {{"app", "a"}}}}}}})}}})}}}};
  ASSERT_EQ(c.kube().create(only_a), 201);
  EXPECT_TRUE(eventually(pod("b").netns, pod("c").ip + ":80/TCP", false)) << c.logs();
  EXPECT_FALSE(probeOk(pod("b").netns, pod("c").ip + ":80/UDP", 500));
  EXPECT_TRUE(probeOk(pod("a").netns, pod("c").ip + ":80/TCP", 900));
  EXPECT_TRUE(probeOk(pod("a").netns, pod("c").ip + ":80/UDP", 900));
  EXPECT_TRUE(probeOk(pod("c").netns, pod("b").ip + ":80/UDP", 900)) << "egress stays open";
}

// Flannel's Kubernetes mode: each agent takes its node's spec.podCIDR, writes Flannel's
// annotations on its Node (through nodes/status, under deploy/'s ClusterRole) and marks the
// node's network available; each routes to the other from the other's annotations over
// flannel.1; policy is enforced across the tunnel. A Node deleted from the API leaves the
// other node's routes.
TEST(AgentKube, KubeSubnetManagerLeasesFromPodCidrsAndAnnotations) {
  NEW_CLUSTER(c, "s", true, Subnets::kKube);
  for (int i = 0; i < 2; ++i) {
    const std::string name = i == 0 ? "node-a" : "node-b";
    json node = json::parse(c.kube().call("GET", "/api/v1/nodes/" + name).body);
    const json& a = node["metadata"]["annotations"];
    EXPECT_EQ(a.value("flannel.alpha.coreos.com/kube-subnet-manager", ""), "true") << a;
    EXPECT_EQ(a.value("flannel.alpha.coreos.com/backend-type", ""), "vxlan") << a;
    EXPECT_EQ(a.value("flannel.alpha.coreos.com/public-ip", ""),
              "10.99.0." + std::to_string(10 + i));
    json data = json::parse(a.value("flannel.alpha.coreos.com/backend-data", "null"));
    const std::string mac =
        run("ip -n " + c.node(i).ns() + " -o link show flannel.1 | grep -o 'ether [^ ]*'").out;
    ASSERT_TRUE(data.is_object()) << a;
    EXPECT_EQ(data.value("VNI", 0), 1);
    EXPECT_EQ("ether " + data.value("VtepMAC", "") + "\n", mac);
    bool available = false;
    for (const json& cond : node["status"].value("conditions", json::array())) {
      available |=
          cond.value("type", "") == "NetworkUnavailable" && cond.value("status", "") == "False";
    }
    EXPECT_TRUE(available) << node["status"];
    std::ifstream env(c.subnetFile(i));
    std::stringstream text;
    text << env.rdbuf();
    EXPECT_NE(text.str().find(fmt::format("FLANNEL_SUBNET=10.244.{}.1/24\n", 10 + i)),
              std::string::npos)
        << text.str();
  }
  const std::string other = c.pod("other").netns;
  const std::string client_b = c.pod("client-b").netns;
  ASSERT_TRUE(probeOk(other, c.target("db", 80), 900)) << "across nodes, no policy: open";
  ASSERT_EQ(c.kube().create(dbPolicy({80})), 201);
  EXPECT_TRUE(eventually(other, c.target("db", 80), false)) << c.logs();
  EXPECT_TRUE(probeOk(client_b, c.target("db", 80), 900)) << "across the tunnel";
  // Anti-spoofing holds across the tunnel: db also admits 10.244.11.99 (an ipBlock no pod
  // holds). From node-b's own address space that source reaches db over flannel.1; the pod
  // "other" claiming it (its eth0 holds it, node-b routes it back to its veth) is dropped at
  // its veth on node-b, before the tunnel, though node-a's ingress would admit it.
  json bait = {
      {"apiVersion", "networking.k8s.io/v1"},
      {"kind", "NetworkPolicy"},
      {"metadata", {{"name", "bait"}, {"namespace", "bank"}}},
      {"spec",
       {{"podSelector", {{"matchLabels", {{"app", "db"}}}}},
        {"policyTypes", {"Ingress"}},
        {"ingress",
         json::array({{{"from", json::array({{{"ipBlock", {{"cidr", "10.244.11.99/32"}}}}})},
                       {"ports", json::array({{{"port", 80}}})}}})}}}};
  ASSERT_EQ(c.kube().create(bait), 201);
  const std::string spoofed = c.target("db", 80) + "@10.244.11.99";
  const std::string node_b = c.node(1).ns();
  ASSERT_TRUE(run("ip -n " + node_b + " addr add 10.244.11.99/32 dev lo").exit_code == 0);
  EXPECT_TRUE(eventually("/run/netns/" + node_b, spoofed, true))
      << "the bait address is admitted across the tunnel";
  ASSERT_TRUE(run("ip -n " + node_b + " addr del 10.244.11.99/32 dev lo").exit_code == 0);
  ASSERT_TRUE(run("ip netns exec " + std::filesystem::path(other).filename().string() +
                  " ip addr add 10.244.11.99/32 dev eth0")
                  .exit_code == 0);
  ASSERT_TRUE(
      run("ip -n " + node_b + " route add 10.244.11.99/32 dev " + hostVethName("bank", "other"))
          .exit_code == 0);
  EXPECT_FALSE(probeOk(other, spoofed, 900)) << "a pod's spoofed source must not cross";
  EXPECT_TRUE(probeOk(client_b, c.target("db", 80), 900)) << "the rest as before";
  // node-b leaves the cluster: node-a stops routing to its subnet.
  ASSERT_EQ(
      c.kube().remove({{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "node-b"}}}}),
      200);
  bool gone = false;
  for (int k = 0; k < 100 && !gone; ++k) {
    gone = run("ip -n " + c.node(0).ns() + " route show 10.244.11.0/24").out.empty();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << c.logs();
}

// While node-a's agent is frozen, the policy changes, etcd is compacted, the ServiceAccount
// is recreated (old tokens die; the kubelet would project the new one) and the API server
// restarts. Thawed, the agent finds its resourceVersion expired (410), relists, diffs, and
// re-reads its token after a 401; both nodes end up enforcing the new policy.
TEST(AgentKube, SurvivesCompactionRestartAndTokenRotation) {
  NEW_CLUSTER(c, "r");
  ASSERT_EQ(c.kube().create(dbPolicy({80})), 201);
  const std::string client_a = c.pod("client-a").netns;
  const std::string client_b = c.pod("client-b").netns;
  ASSERT_TRUE(eventually(client_a, c.target("db", 81), false));
  ASSERT_TRUE(eventually(client_b, c.target("db", 81), false));

  size_t mark0 = c.agent(0).logSize();
  size_t mark1 = c.agent(1).logSize();
  ASSERT_EQ(::kill(c.agent(0).pid(), SIGSTOP), 0);
  ASSERT_EQ(c.kube()
                .call("PUT", "/apis/networking.k8s.io/v1/namespaces/bank/networkpolicies/db",
                      dbPolicy({81}))
                .status,
            200);
  for (int i = 0; i < 20; ++i) {  // revisions the frozen agent never sees
    c.kube().create({{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", "filler-" + std::to_string(i)}, {"namespace", "bank"}}},
                     {"data", {{"k", "v"}}}});
  }
  ASSERT_TRUE(c.kube().compact());
  json sa = {{"apiVersion", "v1"},
             {"kind", "ServiceAccount"},
             {"metadata", {{"name", "zonewall-agent"}, {"namespace", "zonewall-system"}}}};
  ASSERT_EQ(c.kube().remove(sa), 200);
  ASSERT_EQ(c.kube().create(sa), 201);
  ASSERT_TRUE(c.writeToken(0) && c.writeToken(1));
  ASSERT_TRUE(c.kube().restartApiserver());
  ASSERT_EQ(::kill(c.agent(0).pid(), SIGCONT), 0);

  EXPECT_TRUE(eventually(client_a, c.target("db", 81), true)) << c.logs();
  EXPECT_TRUE(eventually(client_a, c.target("db", 80), false));
  EXPECT_TRUE(eventually(client_b, c.target("db", 81), true)) << c.logs();
  // The agent's own account (waited for: the probes may pass before it has resumed every
  // watch, a re-read token and an expired resourceVersion each cost a pause).
  EXPECT_TRUE(
      c.agent(0).waitLog("401 Unauthorized; re-reading the token", std::chrono::seconds(20), mark0))
      << c.agent(0).logText().substr(mark0);
  EXPECT_TRUE(c.agent(0).waitLog("expired; listing again", std::chrono::seconds(20), mark0))
      << c.agent(0).logText().substr(mark0);
  EXPECT_TRUE(
      c.agent(1).waitLog("401 Unauthorized; re-reading the token", std::chrono::seconds(20), mark1))
      << c.agent(1).logText().substr(mark1);

  // And it still follows the API afterwards.
  ASSERT_EQ(c.kube()
                .call("PUT", "/apis/networking.k8s.io/v1/namespaces/bank/networkpolicies/db",
                      dbPolicy({80}))
                .status,
            200);
  EXPECT_TRUE(eventually(client_a, c.target("db", 80), true)) << c.logs();
  EXPECT_TRUE(eventually(client_b, c.target("db", 81), false)) << c.logs();
}

// 1,000 policy and pod changes through the API while probers hammer an allowed and a denied
// pair, node-a's agent killed (-9) a third of the way through and restarted: not one denied
// connection gets through, not one allowed connection is lost, and nothing is left behind.
TEST(AgentKube, ChurnWithProbersAndAKilledAgent) {
  NEW_CLUSTER(c, "c");
  ASSERT_EQ(c.kube().create(dbPolicy({80})), 201);
  const std::string client_a = c.pod("client-a").netns;
  const std::string other = c.pod("other").netns;
  ASSERT_TRUE(eventually(other, c.target("db", 80), false));
  ASSERT_TRUE(c.startPod("bystander", {{"role", "x"}}, 1));

  TempDir tmp;
  std::string stop = (tmp.path() / "stop").string();
  auto watch = [&](const std::string& netns, const std::string& target) {
    return std::async(std::launch::async, [=] {
      return run("nsenter --net=" + netns + " " + probeBinary() + " watch " + stop + " 500 " +
                 target + " 2>/dev/null")
          .out;
    });
  };
  auto allowed = watch(client_a, c.target("db", 80));
  auto denied = watch(other, c.target("db", 80));

  for (int i = 0; i < 1000; ++i) {
    if (i == 300) {
      c.agent(0).kill(SIGKILL);
    }
    if (i == 400) {
      ASSERT_TRUE(c.startAgent(0));
    }
    switch (i % 4) {
      case 0:  // a policy that selects nobody of the probed pairs, created...
        c.kube().create(
            {{"apiVersion", "networking.k8s.io/v1"},
             {"kind", "NetworkPolicy"},
             {"metadata", {{"name", "churn-" + std::to_string(i)}, {"namespace", "bank"}}},
             {"spec",
              {{"podSelector", {{"matchLabels", {{"role", "x"}}}}},
               {"policyTypes", {"Ingress"}}}}});
        break;
      case 1:  // ...and deleted
        c.kube().remove(
            {{"apiVersion", "networking.k8s.io/v1"},
             {"kind", "NetworkPolicy"},
             {"metadata", {{"name", "churn-" + std::to_string(i - 1)}, {"namespace", "bank"}}}});
        break;
      default:  // a bystander relabelled
        c.kube().mergePatch("/api/v1/namespaces/bank/pods/bystander",
                            {{"metadata", {{"labels", {{"role", i % 4 == 2 ? "y" : "x"}}}}}});
    }
  }
  ASSERT_TRUE(c.agent(0).waitLog("ready:", std::chrono::seconds(30))) << c.logs();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::ofstream(stop) << "";
  std::string a = allowed.get();
  std::string d = denied.get();
  EXPECT_NE(a.find(" fail=0"), std::string::npos) << "allowed: " << a;
  EXPECT_EQ(a.find(" ok=0 "), std::string::npos) << "allowed: " << a;
  EXPECT_NE(d.find(" ok=0 "), std::string::npos) << "denied: " << d;
  // One table: nothing aside, nothing half-built.
  EXPECT_EQ(c.node(0).nodeOut("nft list tables"), "table inet zonewall\n");
  EXPECT_EQ(c.node(1).nodeOut("nft list tables"), "table inet zonewall\n");
}

// The bank example (examples/bank: namespaces, pods over both nodes, Kubernetes policies, a
// Calico tier with its GlobalNetworkPolicies and GlobalNetworkSet as Calico's CRDs store
// them) created through the API: real packets agree with `zonewall matrix` on every pair.
TEST(AgentKube, EnforcesTheBankExampleThroughTheApi) {
  NEW_CLUSTER(c, "b", /*pods=*/false);
  const std::string ex = sourceDir() + "/examples/bank";
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  ASSERT_EQ(c.kube().apply(slurp(ex + "/inventory/namespaces.yaml")), 201);
  TempDir expected;
  std::filesystem::copy(ex + "/kubernetes", expected.path() / "kubernetes");
  std::filesystem::copy(ex + "/calico", expected.path() / "calico");
  std::filesystem::copy(ex + "/admin", expected.path() / "admin");
  expected.write("namespaces.yaml", slurp(ex + "/inventory/namespaces.yaml"));
  YAML::Emitter pods_out;
  std::vector<std::string> keys;
  for (YAML::Node pod : YAML::LoadAll(slurp(ex + "/inventory/pods.yaml"))) {
    if (!pod.IsMap()) continue;
    std::string ns = pod["metadata"]["namespace"].as<std::string>();
    std::string name = pod["metadata"]["name"].as<std::string>();
    int node = pod["spec"]["nodeName"].as<std::string>() == "node-a" ? 0 : 1;
    json ports = yamlToJson(pod["spec"]["containers"][0]["ports"]);
    ASSERT_TRUE(c.startPod(name, yamlToJson(pod["metadata"]["labels"]), node, ns, ports))
        << ns << "/" << name;
    keys.push_back(ns + "/" + name);
    pod["status"]["podIP"] = c.pod(keys.back()).ip;  // the compiler's view: the real address
    pods_out << YAML::BeginDoc << pod;
  }
  expected.write("pods.yaml", pods_out.c_str());
  for (const char* f :
       {"/kubernetes/public.yaml", "/kubernetes/internal.yaml", "/kubernetes/secure.yaml"}) {
    ASSERT_EQ(c.kube().apply(slurp(ex + f)), 201) << f;
  }
  // Calico's kinds as its Kubernetes datastore stores them.
  std::string calico = slurp(ex + "/calico/tiers.yaml");
  for (size_t at; (at = calico.find("projectcalico.org/v3")) != std::string::npos;) {
    calico.replace(at, 20, "crd.projectcalico.org/v1");
  }
  ASSERT_EQ(c.kube().apply(calico), 201);
  ASSERT_EQ(c.kube().apply(slurp(ex + "/admin/cluster-admin.yaml")), 201);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));

  for (int port : {8080, 5432, 9090}) {
    SCOPED_TRACE("port " + std::to_string(port));
    RunResult m = run(zonewallBinary() + " matrix " + expected.path().string() + " --port " +
                      std::to_string(port) + " --format json");
    ASSERT_EQ(m.exit_code, 0) << m.out;
    std::map<std::string, bool> want;
    const json matrix = json::parse(m.out);
    for (const auto& r : matrix["results"]) {
      if (r["from"] != r["to"]) {
        want[r["from"].get<std::string>() + " -> " + r["to"].get<std::string>()] = r["allowed"];
      }
    }
    ASSERT_EQ(want.size(), keys.size() * (keys.size() - 1));
    size_t allowed = 0;
    for (const auto& from : keys) {
      for (const auto& to : keys) {
        if (from == to) continue;
        bool w = want.at(from + " -> " + to);
        EXPECT_EQ(probeOk(c.pod(from).netns, c.target(to, port), w ? 900 : 300), w)
            << from << " -> " << to;
        allowed += w ? 1 : 0;
      }
    }
    EXPECT_GT(allowed, 0u);
    EXPECT_LT(allowed, want.size());
  }
  if (HasFailure()) std::cerr << c.logs();
}

// The upstream e2e conformance cases (../shared/conformance, copied into the repository),
// through the API server: the model's namespaces and pods created as API objects over the two
// nodes (so that most pairs cross the underlay and each agent learns the other node's pods from
// the API), each case's labels patched and policies created through the API, and the 9x9 matrix
// measured with real packets equal to upstream's.
TEST(AgentKube, ConformanceCasesThroughTheApi) {
  NEW_CLUSTER(c, "k", /*pods=*/false);
  std::filesystem::path file = conformanceFile();
  ASSERT_TRUE(std::filesystem::exists(file)) << file;
  YAML::Node root = YAML::LoadFile(file.string());
  YAML::Node model = root["model"];
  std::vector<std::string> namespaces, keys;
  for (const auto& ns : model["namespaces"]) namespaces.push_back(ns.as<std::string>());
  json ports = json::array();
  for (const auto& port : model["ports"]) {
    for (const auto& proto : model["protocols"]) {
      ports.push_back(
          {{"name", "serve-" + port.as<std::string>() + "-" + lower(proto.as<std::string>())},
           {"containerPort", port.as<int>()},
           {"protocol", proto.as<std::string>()}});
    }
  }
  for (const auto& ns : namespaces) {
    ASSERT_EQ(c.kube().create(
                  {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", ns}}}}),
              201);
  }
  int n = 0;
  for (const auto& ns : namespaces) {
    for (const auto& pod : model["pods"]) {
      std::string name = pod.as<std::string>();
      ASSERT_TRUE(c.startPod(name, {{"pod", name}}, n++ % 2, ns, ports)) << ns << "/" << name;
      keys.push_back(ns + "/" + name);
      // cidr_of in the cases means the address the pod really got.
      model["pod_ips"][keys.back()] = c.pod(keys.back()).ip;
    }
  }
  bool sctp = NodeHarness::sctpAvailable();
  // The matrix, every source in parallel: "x/a -> y/b" → allowed.
  auto matrix = [&](int port, const std::string& proto) {
    std::vector<std::future<std::string>> outs;
    for (const auto& from : keys) {
      std::string cmd = "nsenter --net=" + c.pod(from).netns + " " + probeBinary() + " probe 400";
      for (const auto& to : keys) {
        if (to != from) cmd += " " + c.pod(to).ip + ":" + std::to_string(port) + "/" + proto;
      }
      outs.push_back(std::async(std::launch::async, [cmd] { return run(cmd).out; }));
    }
    std::map<std::string, bool> got;
    for (size_t i = 0; i < keys.size(); ++i) {
      std::istringstream lines(outs[i].get());
      std::string target, verdict;
      for (const auto& to : keys) {
        if (to == keys[i]) continue;
        lines >> target >> verdict;
        got[keys[i] + " -> " + to] = verdict == "ok";
      }
    }
    return got;
  };
  std::map<std::string, std::map<std::string, std::string>> ns_extra, pod_extra;
  size_t compared = 0;
  for (const Scenario& sc : loadScenarios(root)) {
    SCOPED_TRACE(sc.name);
    // Labels: the model's plus the scenario's; a label of the previous scenario goes (null).
    auto relabel = [&](auto& previous, const auto& now, const std::string& key,
                       const std::string& path) {
      json labels = json::object();
      for (const auto& [k, v] : previous[key]) labels[k] = nullptr;
      if (auto it = now.find(key); it != now.end()) {
        for (const auto& [k, v] : it->second) labels[k] = v;
      }
      previous[key] = now.contains(key) ? now.at(key) : std::map<std::string, std::string>{};
      if (!labels.empty()) {
        ASSERT_EQ(c.kube().mergePatch(path, {{"metadata", {{"labels", labels}}}}), 200);
      }
    };
    for (const auto& ns : namespaces) {
      relabel(ns_extra, sc.extra_ns_labels, ns, "/api/v1/namespaces/" + ns);
      ASSERT_EQ(
          c.kube()
              .call("DELETE", "/apis/networking.k8s.io/v1/namespaces/" + ns + "/networkpolicies")
              .status,
          200);
    }
    for (const auto& key : keys) {
      auto slash = key.find('/');
      relabel(pod_extra, sc.extra_pod_labels, key,
              "/api/v1/namespaces/" + key.substr(0, slash) + "/pods/" + key.substr(slash + 1));
    }
    ASSERT_EQ(c.kube().apply(policiesYaml(model, sc.policies)), 201);
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    for (const Probe& probe : sc.probes) {
      if (probe.protocol == "SCTP" && !sctp) continue;
      // Both agents commit within milliseconds; a probe round that disagrees is repeated once
      // after a pause before it counts, so a slow machine does not fail on timing.
      std::map<std::string, bool> got;
      for (int attempt = 0; attempt < 3; ++attempt) {
        got = matrix(probe.port, probe.protocol);
        bool same = std::ranges::all_of(
            got, [&](const auto& kv) { return kv.second == !probe.denied.contains(kv.first); });
        if (same) break;
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      ASSERT_EQ(got.size(), 72u);
      for (const auto& [pair, allowed] : got) {
        EXPECT_EQ(allowed, !probe.denied.contains(pair))
            << pair << " on " << probe.port << "/" << probe.protocol;
        ++compared;
      }
    }
  }
  EXPECT_GE(compared, 72u * 20);
  if (HasFailure()) std::cerr << c.logs();
}

}  // namespace
}  // namespace zonewall::testing
