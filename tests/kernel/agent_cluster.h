// The agent's test cluster: a real kube-apiserver + etcd (kube_cluster.h), two nodes in network
// namespaces on its underlay, zonewall-agent on each as the DaemonSet runs it (the deploy/
// manifests created on the API server, an in-cluster environment and a ServiceAccount token
// under deploy/'s ClusterRole), and pods created as kubelet and the runtime would: the API
// object, CNI ADD by the real plugin (waiting for the agent), the status patched with the
// address. Shared by tests/kernel/agent_kube_test.cpp and bench/agent_e2e_bench.cpp.
#pragma once

#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "agent_harness.h"
#include "cni_harness.h"
#include "etcd_server.h"
#include "kube_cluster.h"

namespace zonewall::testing {

using nlohmann::json;

inline json dbPolicy(const std::vector<int>& ports) {
  json p = json::array();
  for (int port : ports) p.push_back({{"port", port}});
  return {
      {"apiVersion", "networking.k8s.io/v1"},
      {"kind", "NetworkPolicy"},
      {"metadata", {{"name", "db"}, {"namespace", "bank"}}},
      {"spec",
       {{"podSelector", {{"matchLabels", {{"app", "db"}}}}},
        {"policyTypes", {"Ingress"}},
        {"ingress",
         json::array(
             {{{"from", json::array({{{"podSelector", {{"matchLabels", {{"role", "client"}}}}}}})},
               {"ports", p}}})}}}};
}

inline bool probeOk(const std::string& netns, const std::string& target, int timeout_ms) {
  std::string out = run("nsenter --net=" + netns + " " + probeBinary() + " probe " +
                        std::to_string(timeout_ms) + " " + target)
                        .out;
  return out.find(" ok") != std::string::npos;
}

inline bool eventually(const std::string& netns, const std::string& target, bool want) {
  for (int i = 0; i < 60; ++i) {
    if (probeOk(netns, target, 300) == want) return true;
  }
  return false;
}

inline void writeAtomic(const std::filesystem::path& p, const std::string& text) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p.string() + ".tmp") << text;
  std::filesystem::rename(p.string() + ".tmp", p);
}

// Where the agents' subnets come from: Flannel's etcd mode (a Debian etcd on the underlay) or
// its Kubernetes mode (each Node's spec.podCIDR, leases in the nodes' annotations).
enum class Subnets { kEtcd, kKube };

// Two nodes (or more: node-a, node-b, node-c, ...), their agents, and four pods: db and client
// on node-a, client and other on node-b.
class Cluster {
 public:
  struct Pod {
    std::string name;
    std::string netns;
    std::string ip;
    int node = 0;
  };

  /// `pods`: start the four pods of the bank namespace (db, client-a, client-b, other).
  explicit Cluster(const std::string& tag, bool pods = true, Subnets subnets = Subnets::kEtcd,
                   int nodes = 2)
      : subnets_(subnets) {
    kube_ = std::make_unique<KubeCluster>();
    if (!kube_->ok()) {
      error_ = "apiserver: " + kube_->error();
      return;
    }
    // Every manifest of deploy/, as an operator applies them (the DaemonSet is stored and
    // validated; no kubelet runs it here: the test starts its agents itself, the same way).
    for (const char* f : {"namespace", "serviceaccount", "clusterrole", "configmap", "daemonset"}) {
      std::ifstream in(sourceDir() + "/deploy/" + f + ".yaml");
      std::string text((std::istreambuf_iterator<char>(in)), {});
      if (long st = kube_->apply(text); st != 201) {
        error_ = std::string("deploy/") + f + ".yaml: HTTP " + std::to_string(st);
        return;
      }
    }
    for (const char* f : {"calico-crds", "network-policy-api-crds"}) {
      std::ifstream crds(sourceDir() + "/tests/kernel/data/" + f + ".yaml");
      std::string crd_text((std::istreambuf_iterator<char>(crds)), {});
      if (kube_->apply(crd_text) != 201) {
        error_ = std::string("CRDs of ") + f + ".yaml";
        return;
      }
    }
    if (pods) {
      kube_->apply(R"(apiVersion: v1
kind: Namespace
metadata: {name: bank, labels: {zone: bank}}
)");
    }
    for (int i = 0; i < nodes; ++i) {
      const std::string name = nodeName(i);
      const std::string subnet = subnetOf(i);
      nodes_.push_back(
          std::make_unique<CniNode>(tag + std::to_string(i), std::vector<std::string>{subnet}));
      if (!nodes_.back()->ok() || !kube_->attach(nodes_.back()->ns(), i)) {
        error_ = "node " + name;
        return;
      }
      kube_->create({{"apiVersion", "v1"},
                     {"kind", "Node"},
                     {"metadata", {{"name", name}}},
                     {"spec", {{"podCIDR", subnet}}}});
    }
    // The pod network between the nodes is the agents' own: Flannel's etcd mode (a Debian
    // etcd on the underlay) and the vxlan overlay. Each node's old subnet.env names the subnet
    // its CNI configuration hands out, which its agent takes back from those the network
    // has.
    // In Kubernetes mode the nodes' podCIDRs above are their subnets, and the network config
    // is a file, as the kube-flannel ConfigMap mounts it.
    const std::string net_conf =
        fmt::format(R"({{"Network": "10.244.0.0/16", "SubnetMin": "10.244.10.0", )"
                    R"("SubnetMax": "10.244.{}.0", "Backend": {{"Type": "vxlan"}}}})",
                    10 + nodes - 1);
    if (subnets_ == Subnets::kKube) {
      std::ofstream(netConfFile()) << net_conf;
    } else {
      etcd_ = std::make_unique<EtcdServer>(kube_->netns(), "10.99.0.1");
      if (!etcd_->ok()) {
        error_ = etcd_->error();
        return;
      }
      if (!etcd_->put("/coreos.com/network/config", net_conf)) {
        error_ = "etcd";
        return;
      }
    }
    for (int i = 0; i < nodes; ++i) {
      std::ofstream(subnetFile(i)) << "FLANNEL_SUBNET=10.244." << (10 + i) << ".1/24\n";
      agents_.push_back(std::make_unique<AgentProcess>());
      if (!writeToken(i) || !startAgent(i)) {
        error_ = "agent " + std::to_string(i);
        return;
      }
    }
    for (int i = 0; i < nodes; ++i) {
      if (!agents_[i]->waitLog("ready:", std::chrono::seconds(30))) {
        error_ = "agent " + std::to_string(i) + " not ready:\n" + agents_[i]->logText();
        return;
      }
    }
    // Every node routes to every other's subnet over flannel.1 once it saw the other's lease.
    for (int i = 0; i < nodes; ++i) {
      for (int j = 0; j < nodes; ++j) {
        if (i == j) continue;
        const std::string other = subnetOf(j);
        bool routed = false;
        for (int k = 0; k < 100 && !routed; ++k) {
          routed = run("ip -n " + nodes_[i]->ns() + " route show " + other).out.find("flannel.1") !=
                   std::string::npos;
          if (!routed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (!routed) {
          error_ = "node " + std::to_string(i) + " has no route to " + other + ":\n" + logs();
          return;
        }
      }
    }
    if (!pods) {
      ok_ = true;
      return;
    }
    for (auto [name, labels, node] : {std::tuple{"db", json{{"app", "db"}}, 0},
                                      {"client-a", json{{"role", "client"}}, 0},
                                      {"client-b", json{{"role", "client"}}, 1},
                                      {"other", json{{"role", "other"}}, 1}}) {
      if (!startPod(name, labels, node)) {
        error_ = std::string("pod ") + name;
        return;
      }
    }
    ok_ = true;
  }

  ~Cluster() {
    for (pid_t pid : servers_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    for (auto& a : agents_) a->kill(SIGTERM);
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  KubeCluster& kube() { return *kube_; }
  CniNode& node(int i) { return *nodes_[i]; }
  AgentProcess& agent(int i) { return *agents_[i]; }
  const Pod& pod(const std::string& name) const { return pods_.at(name); }
  std::string target(const std::string& pod_name, int port) const {
    return pod(pod_name).ip + ":" + std::to_string(port) + "/TCP";
  }
  std::string logs() {
    std::string out;
    for (size_t i = 0; i < agents_.size(); ++i) {
      out += "---- agent " + std::to_string(i) + "\n" + agents_[i]->logText();
    }
    return out;
  }

  /// The agent's service account token, as the kubelet projects it (an atomic file swap).
  bool writeToken(int i) {
    std::string token = kube_->serviceAccountToken("zonewall-system", "zonewall-agent");
    if (token.empty()) return false;
    writeAtomic(saDir(i) / "token", token);
    std::filesystem::copy_file(kube_->caFile(), saDir(i) / "ca.crt",
                               std::filesystem::copy_options::overwrite_existing);
    return true;
  }

  std::string subnetFile(int i) const {
    return (tmp_.path() / ("subnet-" + std::to_string(i) + ".env")).string();
  }

  std::string netConfFile() const { return (tmp_.path() / "net-conf.json").string(); }

  static std::string nodeName(int i) { return std::string("node-") + static_cast<char>('a' + i); }
  static std::string subnetOf(int i) { return fmt::format("10.244.{}.0/24", 10 + i); }

  bool startAgent(int i) {
    const std::string name = nodeName(i);
    std::vector<std::string> subnet_flags =
        subnets_ == Subnets::kKube
            ? std::vector<std::string>{"--subnet-manager", "kube", "--net-config-path",
                                       netConfFile()}
            : std::vector<std::string>{"--subnet-manager", "etcd", "--etcd-endpoints",
                                       etcd_->endpoint().url};
    std::vector<std::string> flags = {"--in-cluster",
                                      "--service-account-dir",
                                      saDir(i).string(),
                                      "--endpoints-dir",
                                      nodes_[i]->endpointsDir(),
                                      "--policy-wait-socket",
                                      socket(i),
                                      "--metrics",
                                      "127.0.0.1:9402",
                                      "--reconcile-interval",
                                      "5",
                                      "--iface",
                                      "ul0",
                                      "--public-ip",
                                      "10.99.0." + std::to_string(10 + i),
                                      "--subnet-file",
                                      subnetFile(i)};
    flags.insert(flags.end(), subnet_flags.begin(), subnet_flags.end());
    return agents_[i]->start(nodes_[i]->ns(), flags,
                             (tmp_.path() / ("agent-" + std::to_string(i) + ".log")).string(),
                             {{"KUBERNETES_SERVICE_HOST", kube_->host()},
                              {"KUBERNETES_SERVICE_PORT", kube_->port()},
                              {"NODE_NAME", name}});
  }

  /// What kubelet and the runtime do for a pod: the API object exists (scheduled), CNI ADD
  /// wires it (waiting for the agent's commit), the status gets its address.
  bool startPod(const std::string& name, const json& labels, int node,
                const std::string& ns = "bank", const json& ports = json::array()) {
    const std::string node_name = nodeName(node);
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}},
                {"spec",
                 {{"nodeName", node_name},
                  {"containers",
                   json::array({{{"name", "main"}, {"image", "probe"}, {"ports", ports}}})}}}};
    if (kube_->create(pod) != 201) return false;
    std::string key = ns == "bank" ? name : ns + "/" + name;
    Pod p{key, nodes_[node]->newPod(), "", node};
    std::string args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + ns + ";K8S_POD_NAME=" + name;
    json extra = {{"policySetupTimeout", 10}, {"policyWaitSocket", socket(node)}};
    PluginRun r =
        nodes_[node]->exec(CniNode::env("ADD", "cid-" + ns + "-" + name, p.netns, "eth0", args),
                           nodes_[node]->conf("1.0.0", extra));
    if (r.exit_code != 0) return false;
    std::string cidr = r.json()["ips"][0]["address"].get<std::string>();
    p.ip = cidr.substr(0, cidr.find('/'));
    long st = kube_->mergePatch(
        "/api/v1/namespaces/" + ns + "/pods/" + name + "/status",
        {{"status",
          {{"phase", "Running"}, {"podIP", p.ip}, {"podIPs", json::array({{{"ip", p.ip}}})}}}});
    if (st != 200) return false;
    pid_t server = ::fork();
    if (server == 0) {
      ::execlp("nsenter", "nsenter", ("--net=" + p.netns).c_str(), probeBinary().c_str(), "serve",
               "80", "81", "8080", "5432", "9090", nullptr);
      _exit(127);
    }
    servers_.push_back(server);
    pods_[key] = p;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return true;
  }

 private:
  std::filesystem::path saDir(int i) const { return tmp_.path() / ("sa-" + std::to_string(i)); }
  std::string socket(int i) const {
    return (tmp_.path() / ("agent-" + std::to_string(i) + ".sock")).string();
  }

  Subnets subnets_;
  TempDir tmp_;
  std::unique_ptr<KubeCluster> kube_;
  std::unique_ptr<EtcdServer> etcd_;  ///< Flannel's datastore, on the underlay
  std::vector<std::unique_ptr<CniNode>> nodes_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  std::map<std::string, Pod> pods_;
  std::vector<pid_t> servers_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace zonewall::testing
