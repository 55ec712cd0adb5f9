// zonewall-agent on one node with the directory source, with the real CNI plugin wiring pods
// and real packets deciding: the policy-wait handshake (a pod's first connection after ADD is
// judged by its policy, 100 pods in a row), a live policy edit, a bad file that changes
// nothing, a restart that does not flush, and drift repaired by the reconcile.
#include <gtest/gtest.h>

#include <fstream>

#include "agent_harness.h"
#include "cni_harness.h"

namespace zonewall::testing {
namespace {

const char* kNamespace = R"(apiVersion: v1
kind: Namespace
metadata: {name: bank, labels: {zone: bank}}
)";

// db answers clients on 80 only (81 stays closed to them); clients may talk out freely.
const char* kPolicy = R"(apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: bank}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: 80}]
)";

std::string podYaml(const std::string& name, const std::string& labels) {
  // No status: the address comes from the CNI plugin's endpoint record.
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
         ", namespace: bank, labels: " + labels + "}\nspec: {nodeName: node-a}\n";
}

void writeFile(const std::filesystem::path& p, const std::string& text) {
  // As an editor or kubectl-like tool writes: a temporary file renamed over the old one.
  std::filesystem::path tmp = p.string() + ".tmp";
  std::ofstream(tmp) << text;
  std::filesystem::rename(tmp, p);
}

bool probeOk(const std::string& netns, const std::string& target, int timeout_ms) {
  std::string out = run("nsenter --net=" + netns + " " + probeBinary() + " probe " +
                        std::to_string(timeout_ms) + " " + target)
                        .out;
  return out.find(" ok") != std::string::npos;
}

// Polls until probing `target` gives `want` (a change is in the kernel within milliseconds;
// the bound only keeps a broken agent from hanging the test).
bool eventually(const std::string& netns, const std::string& target, bool want) {
  for (int i = 0; i < 50; ++i) {
    if (probeOk(netns, target, 300) == want) return true;
  }
  return false;
}

class AgentDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ZONEWALL_REQUIRE_ROOT();
    node_ = std::make_unique<CniNode>("ad", std::vector<std::string>{"10.244.0.0/24"});
    ASSERT_TRUE(node_->ok());
    policies_ = dir_.path() / "policies";
    std::filesystem::create_directories(policies_);
    writeFile(policies_ / "namespace.yaml", kNamespace);
    writeFile(policies_ / "db-policy.yaml", kPolicy);
    writeFile(policies_ / "pod-db.yaml", podYaml("db", "{app: db}"));
    socket_ = (dir_.path() / "agent.sock").string();
    startAgent();
    ASSERT_TRUE(agent_.waitLog("ready:", std::chrono::seconds(20))) << agent_.logText();

    db_ns_ = node_->newPod();
    auto r = add("cid-db", db_ns_, "bank/db");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    db_ip_ = r.json()["ips"][0]["address"].get<std::string>();
    db_ip_ = db_ip_.substr(0, db_ip_.find('/'));
    server_ = ::fork();
    if (server_ == 0) {
      ::execlp("nsenter", "nsenter", ("--net=" + db_ns_).c_str(), probeBinary().c_str(), "serve",
               "80", "81", nullptr);
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  void TearDown() override {
    if (server_ > 0) {
      ::kill(server_, SIGKILL);
      ::waitpid(server_, nullptr, 0);
    }
    agent_.kill(SIGTERM);
    if (HasFailure()) std::cerr << "agent log:\n" << agent_.logText();
  }

  void startAgent() {
    ASSERT_TRUE(agent_.start(node_->ns(),
                             {"--node", "node-a", "--policy-dir", policies_.string(),
                              "--endpoints-dir", node_->endpointsDir(), "--policy-wait-socket",
                              socket_, "--metrics", "127.0.0.1:19402", "--reconcile-interval", "1"},
                             (dir_.path() / "agent.log").string()));
  }

  PluginRun add(const std::string& cid, const std::string& netns, const std::string& pod) {
    auto slash = pod.find('/');
    std::string args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + pod.substr(0, slash) +
                       ";K8S_POD_NAME=" + pod.substr(slash + 1);
    nlohmann::json extra = {{"policySetupTimeout", 10}, {"policyWaitSocket", socket_}};
    return node_->exec(CniNode::env("ADD", cid, netns, "eth0", args), node_->conf("1.0.0", extra));
  }

  TempDir dir_;
  std::filesystem::path policies_;
  std::string socket_;
  std::unique_ptr<CniNode> node_;
  AgentProcess agent_;
  std::string db_ns_;
  std::string db_ip_;
  pid_t server_ = -1;
};

// Right after ADD returns, the new pod's allowed connection succeeds at its first attempt
// (the probe's timeout is under TCP's 1 s SYN retransmission: a dropped first SYN fails it)
// and its denied one is dropped; 100 pods in a row.
TEST_F(AgentDirTest, NewPodsFirstPacketIsJudgedByItsPolicy) {
  for (int i = 0; i < 100; ++i) {
    std::string name = "client-" + std::to_string(i);
    writeFile(policies_ / ("pod-" + name + ".yaml"), podYaml(name, "{role: client}"));
    std::string ns = node_->newPod();
    auto r = add("cid-" + name, ns, "bank/" + name);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    ASSERT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900)) << name << ": allowed, first attempt";
    ASSERT_FALSE(probeOk(ns, db_ip_ + ":81/TCP", 300)) << name << ": denied port";
  }
  // A pod without the client label is denied from its first packet too.
  writeFile(policies_ / "pod-other.yaml", podYaml("other", "{role: batch}"));
  std::string ns = node_->newPod();
  ASSERT_EQ(add("cid-other", ns, "bank/other").exit_code, 0);
  EXPECT_FALSE(probeOk(ns, db_ip_ + ":80/TCP", 900));
}

// A policy edit is enforced within moments; a file with an error changes nothing (the last
// good content stays, the error names file:line:col); fixing it applies it.
TEST_F(AgentDirTest, EditsApplyAndABadFileChangesNothing) {
  writeFile(policies_ / "pod-c.yaml", podYaml("c", "{role: client}"));
  std::string ns = node_->newPod();
  ASSERT_EQ(add("cid-c", ns, "bank/c").exit_code, 0);
  ASSERT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));
  ASSERT_FALSE(probeOk(ns, db_ip_ + ":81/TCP", 300));

  std::string open81 = kPolicy;
  open81.replace(open81.find("[{port: 80}]"), 12, "[{port: 80}, {port: 81}]");
  writeFile(policies_ / "db-policy.yaml", open81);
  EXPECT_TRUE(eventually(ns, db_ip_ + ":81/TCP", true));

  size_t mark = agent_.logSize();
  std::string bad = kPolicy;
  bad.replace(bad.find("[{port: 80}]"), 12, "[{port: 70000}]");
  writeFile(policies_ / "db-policy.yaml", bad);
  ASSERT_TRUE(agent_.waitLog("db-policy.yaml:9:", std::chrono::seconds(5), mark))
      << agent_.logText().substr(mark);
  EXPECT_TRUE(probeOk(ns, db_ip_ + ":81/TCP", 900)) << "the last good content stays";
  EXPECT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));

  writeFile(policies_ / "db-policy.yaml", kPolicy);
  EXPECT_TRUE(eventually(ns, db_ip_ + ":81/TCP", false));
  EXPECT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));

  // What on-call sees: ready, the commits, the table's sizes, the rejected file.
  EXPECT_EQ(node_->nodeOut("curl -s 127.0.0.1:19402/readyz"), "ok\n");
  EXPECT_EQ(node_->nodeOut("curl -s 127.0.0.1:19402/healthz"), "ok\n");
  std::string metrics = node_->nodeOut("curl -s 127.0.0.1:19402/metrics");
  EXPECT_NE(metrics.find("zonewall_objects_rejected_total{kind=\"file\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("zonewall_local_endpoints 2"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("zonewall_table_entries{set=\"pod_src4\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("zonewall_event_to_kernel_seconds_count"), std::string::npos);
  EXPECT_EQ(metrics.find("zonewall_commits_total 0"), std::string::npos) << metrics;
}

// Killed (-9) and restarted, the agent never leaves the pods unenforced: the kernel keeps the
// table meanwhile, and the restart's first commit is a diff against it (no flush). A rule
// deleted behind its back is found by the reconcile and repaired.
TEST_F(AgentDirTest, RestartKeepsEnforcingAndReconcileRepairsDrift) {
  writeFile(policies_ / "pod-c.yaml", podYaml("c", "{role: client}"));
  std::string ns = node_->newPod();
  ASSERT_EQ(add("cid-c", ns, "bank/c").exit_code, 0);
  ASSERT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));

  agent_.kill(SIGKILL);
  EXPECT_FALSE(probeOk(ns, db_ip_ + ":81/TCP", 300)) << "still enforced with the agent down";
  EXPECT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));
  size_t mark = agent_.logSize();
  startAgent();
  ASSERT_TRUE(agent_.waitLog("ready:", std::chrono::seconds(20), mark)) << agent_.logText();
  std::string restart = agent_.logText().substr(mark);
  EXPECT_EQ(restart.find("committed"), std::string::npos)
      << "the kernel held the table already: nothing to commit\n"
      << restart;
  EXPECT_FALSE(probeOk(ns, db_ip_ + ":81/TCP", 300));

  // Drift: the anti-spoofing set loses the client, so its packets are dropped...
  mark = agent_.logSize();
  ASSERT_TRUE(node_->inNode("nft flush set inet zonewall pod_src4"))
      << node_->nodeOut("nft list sets inet zonewall");
  ASSERT_TRUE(agent_.waitLog("drift repaired", std::chrono::seconds(10), mark))
      << agent_.logText().substr(mark);
  EXPECT_TRUE(eventually(ns, db_ip_ + ":80/TCP", true));
}

// Calico's Log action: the packets it logs are read by the agent (nflog) and written to its
// log with the policy, the rule and the 5-tuple; on-call sees them counted in the metrics.
TEST_F(AgentDirTest, LogActionPacketsAreLogged) {
  writeFile(policies_ / "log-81.yaml", R"(apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: log-81}
spec:
  order: 10
  selector: app == 'db'
  types: [Ingress]
  ingress:
  - action: Log
    protocol: TCP
    destination: {ports: [81]}
)");
  writeFile(policies_ / "pod-c.yaml", podYaml("c", "{role: client}"));
  std::string ns = node_->newPod();
  auto r = add("cid-c", ns, "bank/c");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::string client = r.json()["ips"][0]["address"].get<std::string>();
  client = client.substr(0, client.find('/'));
  size_t mark = agent_.logSize();
  EXPECT_FALSE(probeOk(ns, db_ip_ + ":81/TCP", 300)) << "logged, then denied";
  std::string want = "packet log: policy log-81 rule 0: TCP " + client + ":";
  ASSERT_TRUE(agent_.waitLog(want, std::chrono::seconds(5), mark)) << want << "\n"
                                                                   << agent_.logText().substr(mark);
  std::string line = agent_.logText().substr(agent_.logText().find(want, mark));
  line = line.substr(0, line.find('\n'));
  EXPECT_NE(line.find("-> " + db_ip_ + ":81"), std::string::npos) << line;
  EXPECT_NE(line.find(" in " + hostVethName("bank", "c")), std::string::npos) << line;
  // Port 80 is not logged (no Log rule matches it).
  mark = agent_.logSize();
  EXPECT_TRUE(probeOk(ns, db_ip_ + ":80/TCP", 900));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(agent_.logText().find(":80 ", mark), std::string::npos)
      << agent_.logText().substr(mark);
  std::string metrics = node_->nodeOut("curl -s 127.0.0.1:19402/metrics");
  EXPECT_EQ(metrics.find("zonewall_logged_packets_total 0"), std::string::npos) << metrics;
}

}  // namespace
}  // namespace zonewall::testing
