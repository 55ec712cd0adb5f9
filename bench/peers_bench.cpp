// Peers benchmark (root, `make kube`, `make knp`): zonewall beside the enforcers it is chosen
// against, in one run, on one node netns with the same pods, the same Kubernetes
// NetworkPolicies (0, 100, 1k, 10k) and the same kernel:
//
//   zonewall               the node's compiled table, loaded through zonewall's netlink path
//   kube-network-policies  the Kubernetes SIG's enforcer (nftables + NFQUEUE, verdicts in
//                          userspace), run as its DaemonSet runs it: in the node's network
//                          namespace, in-cluster configuration and a ServiceAccount token under
//                          its ClusterRole, against a real kube-apiserver holding the policies,
//                          namespaces and pods
//   Calico-shaped          Felix's rendering of the same policies (calico_shape.h), `nft -f`
//   linear chain           one rule per allowed tuple, the matching rule last
//   conntrack only         one `ct state established,related accept` rule
//   no table
//
// The client (its own app: no synthetic policy selects it) opens new TCP connections to the
// server in ns-0, whose app is selected by ns-0's share of the synthetic policies (about 70 at
// 10k: default-denies and allows) and allowed by one policy more. Per configuration: new
// connections/s, the machine's busy CPU µs per connection, the first packet's latency (connect
// time, median and p99) and one established stream's MB/s, medians of interleaved rounds, with
// ratios to no table and to conntrack only. Not yet measured here: policy change to enforced
// (bench/agent_e2e_bench.cpp has zonewall's) and the kernel memory of each ruleset.
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "bench_netns.h"
#include "calico_shape.h"
#include "kernel/kube_cluster.h"
#include "kernel/node_harness.h"
#include "packet_bench.h"
#include "synthetic.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/transport.h"

namespace {

using namespace zonewall;  // NOLINT
using bench::sh;
using nlohmann::json;
using testing::KubeCluster;
using testing::NodeHarness;
using testing::run;

constexpr const char* kClient = "10.244.0.10";
constexpr const char* kServer = "10.244.0.11";
constexpr const char* kNode = "node-1";
constexpr int kRounds = 7;  // interleaved rounds per policy count: the machine's drift hits all

std::string knpBinary() {
  if (const char* d = std::getenv("ZONEWALL_KNP_BIN"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") +
         "/.cache/zonewall/knp/v0.8.0/bin/kube-network-policies";
}

// The synthetic cluster (Kubernetes policies only) with the two measured pods in ns-0 on
// node-1, and the policy that allows the client to the server's ports.
policy::Store cluster(size_t policies) {
  bench::SyntheticSpec spec;
  spec.pods = 2000;
  spec.policies = policies;
  spec.pods_per_node = 100;
  spec.kubernetes_only = true;
  policy::Store st = bench::syntheticCluster(spec);
  policy::Pod client{"ns-0", "client", {{"app", "bench-client"}}, kNode, {*parseAddr(kClient)},
                     {},     {}};
  policy::Pod server{
      "ns-0", "server", {{"app", "app-0"}, {"version", "v0"}}, kNode, {*parseAddr(kServer)},
      {},     {}};
  st.pods.push_back(client);
  st.pods.push_back(server);
  st.k8s_policies.push_back(
      bench::allowPolicy("ns-0", "server-from-bench-client", "app-0", "bench-client"));
  return st;
}

// ---- The API objects: what kubectl apply and kubelet would have put there ----------------------

json labelsJson(const policy::Labels& labels) {
  json o = json::object();
  for (const auto& [k, v] : labels) o[k] = v;
  return o;
}

json selectorJson(const policy::Selector& s) {
  // The synthetic policies' selectors are `key == value` or everything.
  const policy::SelectorNode& n = s.root();
  if (n.op == policy::SelectorNode::Op::kAll) return json::object();
  return {{"matchLabels", {{n.key, n.values.at(0)}}}};
}

const char* protocolName(policy::Protocol p) {
  return p == policy::kUdp ? "UDP" : p == policy::kSctp ? "SCTP" : "TCP";
}

json ruleJson(const policy::K8sRule& r, const char* peers_key) {
  json peers = json::array();
  for (const auto& p : r.peers) {
    json o = json::object();
    if (p.pod_selector) o["podSelector"] = selectorJson(*p.pod_selector);
    if (p.namespace_selector) o["namespaceSelector"] = selectorJson(*p.namespace_selector);
    if (p.ip_block) {
      json except = json::array();
      for (const auto& c : p.ip_block->except) except.push_back(c.str());
      o["ipBlock"] = {{"cidr", p.ip_block->cidr.str()}, {"except", except}};
    }
    peers.push_back(o);
  }
  json ports = json::array();
  for (const auto& p : r.ports) {
    json o = {{"protocol", protocolName(p.protocol)}};
    if (!p.name.empty()) o["port"] = p.name;
    if (p.port) o["port"] = *p.port;
    if (p.end_port) o["endPort"] = *p.end_port;
    ports.push_back(o);
  }
  json out = json::object();
  if (!peers.empty()) out[peers_key] = peers;
  if (!ports.empty()) out["ports"] = ports;
  return out;
}

json policyJson(const policy::K8sPolicy& p) {
  json types = json::array();
  json spec = {{"podSelector", selectorJson(p.pod_selector)}};
  if (p.ingress) {
    types.push_back("Ingress");
    spec["ingress"] = json::array();
    for (const auto& r : p.ingress_rules) spec["ingress"].push_back(ruleJson(r, "from"));
  }
  if (p.egress) {
    types.push_back("Egress");
    spec["egress"] = json::array();
    for (const auto& r : p.egress_rules) spec["egress"].push_back(ruleJson(r, "to"));
  }
  spec["policyTypes"] = types;
  return {{"apiVersion", "networking.k8s.io/v1"},
          {"kind", "NetworkPolicy"},
          {"metadata", {{"name", p.name}, {"namespace", p.ns}}},
          {"spec", spec}};
}

// Namespaces, pods (scheduled, running, with their addresses) and kube-network-policies's
// ServiceAccount and ClusterRole, as its install manifest has them.
bool populate(KubeCluster& kube, const policy::Store& st) {
  for (const auto& ns : st.namespaces) {
    if (kube.create({{"apiVersion", "v1"},
                     {"kind", "Namespace"},
                     {"metadata", {{"name", ns.name}, {"labels", labelsJson(ns.labels)}}}}) !=
        201) {
      return false;
    }
  }
  for (const auto& pod : st.pods) {
    json ports = json::array();
    for (const auto& np : pod.ports) {
      ports.push_back(
          {{"name", np.name}, {"containerPort", np.port}, {"protocol", protocolName(np.protocol)}});
    }
    json obj = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", pod.name}, {"namespace", pod.ns}, {"labels", labelsJson(pod.labels)}}},
                {"spec",
                 {{"nodeName", pod.node},
                  {"containers",
                   json::array({{{"name", "main"}, {"image", "probe"}, {"ports", ports}}})}}}};
    if (kube.create(obj) != 201) return false;
    std::string ip = formatAddr(pod.ips.front());
    if (kube.mergePatch(
            "/api/v1/namespaces/" + pod.ns + "/pods/" + pod.name + "/status",
            {{"status",
              {{"phase", "Running"}, {"podIP", ip}, {"podIPs", json::array({{{"ip", ip}}})}}}}) !=
        200) {
      return false;
    }
  }
  return kube.apply(R"(apiVersion: v1
kind: ServiceAccount
metadata: {name: kube-network-policies, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: kube-network-policies}
rules:
- apiGroups: [""]
  resources: [pods, namespaces, nodes]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-network-policies}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: kube-network-policies}
subjects:
- {kind: ServiceAccount, name: kube-network-policies, namespace: kube-system}
)") == 201;
}

// ---- kube-network-policies, as its DaemonSet runs it ------------------------------------------

// The in-cluster configuration's fixed path: client-go reads the token and CA there. The
// process gets its own mount namespace with the bench's files bound over it.
constexpr const char* kSaPath = "/run/secrets/kubernetes.io/serviceaccount";

class Knp {
 public:
  Knp(KubeCluster& kube, const std::string& node_ns, const std::string& client_ns,
      const std::filesystem::path& dir)
      : kube_(kube), node_ns_(node_ns), client_ns_(client_ns), dir_(dir) {}
  ~Knp() { stop(); }

  /// Starts it and waits until it judges: its table holds the server and the client connects.
  bool start() {
    std::string token = kube_.serviceAccountToken("kube-system", "kube-network-policies");
    if (token.empty()) return false;
    std::filesystem::create_directories(dir_ / "sa");
    std::ofstream(dir_ / "sa/token") << token;
    std::filesystem::copy_file(kube_.caFile(), dir_ / "sa/ca.crt",
                               std::filesystem::copy_options::overwrite_existing);
    std::ofstream(dir_ / "sa/namespace") << "kube-system";
    std::string cmd = "mount --bind " + (dir_ / "sa").string() + " " + kSaPath +
                      " && exec ip netns exec " + node_ns_ +
                      " env KUBERNETES_SERVICE_HOST=" + kube_.host() +
                      " KUBERNETES_SERVICE_PORT=" + kube_.port() + " " + knpBinary() +
                      " --hostname-override=" + kNode +
                      " --disable-nri --metrics-bind-address=127.0.0.1:9080 -v=0";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      FILE* log = std::fopen((dir_ / "knp.log").c_str(), "a");
      if (log != nullptr) {
        ::dup2(::fileno(log), 1);
        ::dup2(::fileno(log), 2);
      }
      ::execlp("unshare", "unshare", "-m", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 600; ++i) {
      if (run("ip netns exec " + node_ns_ +
              " nft list set inet kube-network-policies podips-v4 2>/dev/null")
              .out.find(kServer) != std::string::npos) {
        // Synced: the server is in its set; judging: the client gets through.
        for (int k = 0; k < 100; ++k) {
          if (testing::run("ip netns exec " + client_ns_ + " " + testing::probeBinary() +
                           " probe 300 " + kServer + ":80/TCP")
                  .out.find(" ok") != std::string::npos) {
            return true;
          }
        }
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  /// SIGTERM (it removes its table), then makes sure the table is gone.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = 0;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = 0;
    }
    sh("ip netns exec " + node_ns_ + " nft delete table inet kube-network-policies");
  }

  std::string log() const {
    std::ifstream in(dir_ / "knp.log");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return text.size() > 3000 ? text.substr(text.size() - 3000) : text;
  }

 private:
  KubeCluster& kube_;
  std::string node_ns_;
  std::string client_ns_;
  std::filesystem::path dir_;
  pid_t pid_ = 0;
};

// Whether nftables here has the queue expression (CONFIG_NFT_QUEUE) that kube-network-policies
// sends a connection's first packets to userspace with.
bool haveNftQueue(const std::string& ns) {
  const std::string nft = "ip netns exec " + ns + " nft ";
  bool ok = sh(nft + "add table inet zw-queue-probe") &&
            sh(nft + "add chain inet zw-queue-probe c") &&
            sh(nft + "add rule inet zw-queue-probe c queue num 100 bypass");
  sh(nft + "delete table inet zw-queue-probe");
  return ok;
}

// ---- The configurations --------------------------------------------------------------------

struct Config {
  std::string name;
  std::string nft;           ///< an `nft -f` script, or
  dataplane::Ruleset rules;  ///< zonewall's ruleset (netlink), or
  bool knp = false;          ///< kube-network-policies, running
  std::string detail;
  std::vector<bench::Rates> runs;
};

}  // namespace

int main(int argc, char** argv) {
  // `peers_bench calico N`: the Calico-shaped ruleset of node-1 at N policies, for review.
  if (argc == 3 && std::string(argv[1]) == "calico") {
    const std::string n = argv[2];
    if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos) {
      std::fprintf(stderr, "peers_bench: POLICIES must be a number up to 999999, not '%s'\n",
                   n.c_str());
      return 2;
    }
    std::fputs(bench::calicoShape(cluster(std::stoul(n)), kNode).nft.c_str(), stdout);
    return 0;
  }
  if (argc != 1) {
    std::printf("usage: peers_bench [calico POLICIES]\n");
    return 2;
  }
  if (geteuid() != 0) {
    std::printf("peers_bench: needs root (network namespaces, nftables)\n");
    return 1;
  }
  if (!testing::haveKube()) {
    std::printf("peers_bench: no kube-apiserver in %s (make kube)\n",
                testing::kubeBinDir().c_str());
    return 1;
  }
  if (!std::filesystem::exists(knpBinary())) {
    std::printf("peers_bench: no %s (make knp)\n", knpBinary().c_str());
    return 1;
  }
  bool made_sa_path = !std::filesystem::exists(kSaPath);
  std::filesystem::create_directories(kSaPath);
  struct RemoveSaPath {
    bool made;
    ~RemoveSaPath() {
      if (!made) return;
      std::error_code ec;
      for (std::filesystem::path p = kSaPath; p != "/run"; p = p.parent_path()) {
        if (!std::filesystem::remove(p, ec)) break;  // only the empty directories made here
      }
    }
  } remove_sa_path{made_sa_path};

  NodeHarness node({{"ns-0/client", kClient}, {"ns-0/server", kServer}}, {80, 5001});
  if (!node.ok()) {
    std::printf("peers_bench: node: %s\n", node.error().c_str());
    return 1;
  }
  KubeCluster kube;
  if (!kube.ok() || !kube.attach(node.nodeNs(), 0)) {
    std::printf("peers_bench: kube-apiserver: %s\n", kube.error().c_str());
    return 1;
  }
  testing::TempDir tmp;
  Knp knp(kube, node.nodeNs(), node.podNs(0), tmp.path());
  auto tr = dataplane::openNetlink("/run/netns/" + node.nodeNs());
  if (!tr) {
    std::printf("peers_bench: netlink: %s\n", tr.error().str().c_str());
    return 1;
  }
  auto unload = [&] {
    for (const char* t : {"inet zonewall", "ip calico-bench"})
      sh("ip netns exec " + node.nodeNs() + " nft delete table " + t);
  };

  const bool queue = haveNftQueue(node.nodeNs());
  if (!queue) {
    std::printf(
        "kube-network-policies: not measurable on this kernel (%s): nftables has no queue "
        "expression (CONFIG_NFT_QUEUE is not set), and its first-packet rule is refused\n",
        run("uname -r").out.substr(0, run("uname -r").out.find('\n')).c_str());
  }
  std::printf(
      "Peers: new TCP connections through one node netns, client -> server (ns-0, selected by its "
      "namespace's share of the policies), medians of %d interleaved 1-second rounds\n",
      kRounds);
  std::printf("%-8s %-24s %9s %8s %8s %8s %9s %9s %8s %8s   %s\n", "policies", "enforcer", "conn/s",
              "vs none", "vs ct", "CPU us", "1st p50us", "1st p99us", "MB/s", "vs none", "ruleset");
  std::set<std::string> created;  // the policies the API server has
  policy::Store before = cluster(0);
  if (queue && !populate(kube, before)) {
    std::printf("peers_bench: populating the API server failed\n");
    return 1;
  }
  bench::measureOnce(node, 0, kServer);  // warm up (ARP, caches)
  for (size_t policies : {0, 100, 1000, 10000}) {
    policy::Store st = cluster(policies);
    // The API server gets the policies this step adds (a seed's first N are the same for any
    // N).
    for (const auto& p : st.k8s_policies) {
      if (!queue || !created.insert(p.key()).second) continue;
      if (kube.create(policyJson(p)) != 201) {
        std::printf("peers_bench: creating %s failed\n", p.key().c_str());
        return 1;
      }
    }

    std::vector<Config> configs;
    configs.push_back({"no table", "", {}, false, "", {}});
    configs.push_back({"conntrack only", bench::conntrackOnly(), {}, false, "1 rule", {}});
    compiler::Inventory inv(st);
    auto table = compiler::compileNode(compiler::lower(st), inv, kNode);
    configs.push_back({"zonewall",
                       "",
                       dataplane::buildRuleset(*table),
                       false,
                       std::to_string(table->entryCount()) + " entries",
                       {}});
    bench::CalicoShape cal = bench::calicoShape(st, kNode);
    configs.push_back({"Calico-shaped",
                       cal.nft,
                       {},
                       false,
                       fmt::format("{} chains, {} rules, {} sets of {} members", cal.chains,
                                   cal.rules, cal.sets, cal.set_members),
                       {}});
    if (queue) {
      configs.push_back({"kube-network-policies", "", {}, true, "NFQUEUE, userspace verdicts", {}});
    }
    configs.push_back({"linear chain",
                       bench::linearChain(policies, kClient, kServer),
                       {},
                       false,
                       std::to_string(policies + 2) + " rules",
                       {}});
    for (int round = 0; round < kRounds; ++round) {
      for (Config& c : configs) {
        unload();
        if (!c.nft.empty() && !bench::nftFile(node.nodeNs(), c.nft)) return 1;
        if (!c.rules.table.empty()) {
          for (const auto& batch : dataplane::encodeCreate(c.rules, 1)) {
            if (auto ok = (*tr)->commit(batch); !ok) {
              std::printf("  load failed: %s\n", ok.error().str().c_str());
              return 1;
            }
          }
        }
        if (c.knp && !knp.start()) {
          std::printf("peers_bench: kube-network-policies did not sync:\n%s\n", knp.log().c_str());
          return 1;
        }
        c.runs.push_back(bench::measureOnce(node, 0, kServer));
        if (c.knp) knp.stop();
      }
    }
    unload();
    auto med = [](const Config& c, double bench::Rates::*field) {
      std::vector<double> v;
      for (const auto& r : c.runs) v.push_back(r.*field);
      return bench::median(v);
    };
    double none_cps = med(configs[0], &bench::Rates::cps);
    double ct_cps = med(configs[1], &bench::Rates::cps);
    double none_mbps = med(configs[0], &bench::Rates::mbps);
    for (const Config& c : configs) {
      double cps = med(c, &bench::Rates::cps);
      std::printf("%-8zu %-24s %9.0f %7.0f%% %7.0f%% %8.1f %9.0f %9.0f %8.0f %7.0f%%   %s\n",
                  policies, c.name.c_str(), cps, 100 * cps / none_cps, 100 * cps / ct_cps,
                  med(c, &bench::Rates::cpu_us), med(c, &bench::Rates::first_us),
                  med(c, &bench::Rates::first_p99_us), med(c, &bench::Rates::mbps),
                  100 * med(c, &bench::Rates::mbps) / none_mbps, c.detail.c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}
