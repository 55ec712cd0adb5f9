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
// connections/s, the CPU µs per connection, the first packet's latency (connect time, median
// and p99), one established stream's MB/s and the kernel memory of its table; all on one CPU,
// the configurations taking turns (nftables' dormant flag) in many short rounds, medians, with
// ratios to no table and to conntrack only (bench/README.md says why so). Policy change to
// enforced is bench/agent_e2e_bench.cpp's.
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <ranges>
#include <regex>
#include <set>
#include <string_view>
#include <thread>

#include "bench_netns.h"
#include "bench_util.h"
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
constexpr int kRounds = 15;       // rounds per policy count, configurations taking turns
constexpr double kSeconds = 0.5;  // per round and configuration: connections, then the stream

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

// ---- Interruption ----------------------------------------------------------------------------

// Set by SIGINT/SIGTERM: the run stops at the next measurement and returns through main, so that
// the harnesses' destructors remove the namespaces, servers and API server it made.
volatile std::sig_atomic_t g_interrupted = 0;

void onSignal(int) { g_interrupted = 1; }

void stopOnSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM}) ::sigaction(sig, &sa, nullptr);
}

bool interrupted() {
  if (g_interrupted != 0) std::printf("peers_bench: interrupted; cleaning up\n");
  return g_interrupted != 0;
}

// ---- The configurations --------------------------------------------------------------------

struct Config {
  std::string name;
  std::string table;         ///< what it loads ("inet zonewall"); none: the bare node's row
  std::string nft;           ///< an `nft -f` script, or
  dataplane::Ruleset rules;  ///< zonewall's ruleset (netlink), or
  bool knp = false;          ///< kube-network-policies, running
  std::string detail;
  long kernel_kb = 0;  ///< what loading its table added to the kernel's memory
  std::vector<bench::Rates> runs;
};

// The two nodes below, made with everything they start on one CPU (bench::pinToOneCpu).
struct Nodes {
  int cpu = bench::pinToOneCpu();
  NodeHarness node{{{"ns-0/client", kClient}, {"ns-0/server", kServer}}, {80, 5001}};
  NodeHarness bare{{{"ns-0/client", kClient}, {"ns-0/server", kServer}}, {80, 5001}, "b"};

  bool ok() const {
    if (!node.ok() || !bare.ok())
      std::printf("peers_bench: node: %s%s\n", node.error().c_str(), bare.error().c_str());
    return node.ok() && bare.ok();
  }
};

// Where the configurations take turns: the bare node (never a table: its conntrack is off too)
// for "no table", the node for the others, whose tables are all loaded and all dormant but
// the one measured. A turn costs two `nft add table`, no reload, so the rounds can be many and
// short and the machine's drift (this one is shared: a configuration measured a minute later
// runs on a different machine) falls on all of them alike.
class Stage {
 public:
  Stage(const NodeHarness& node, const NodeHarness& bare, dataplane::Transport& tr, int cpu)
      : node_(node), bare_(bare), tr_(tr), cpu_(cpu) {}

  /// Loads every configuration's table, records what it takes in kernel memory (the median
  /// of three loads) and leaves it dormant. False (and why, printed) when a load fails.
  bool load(std::vector<Config>& configs) {
    sh("ip netns exec " + node_.nodeNs() + " nft flush ruleset");
    for (Config& c : configs) {
      if (c.table.empty()) continue;
      std::vector<double> kb;
      for (int i = 0; i < 3; ++i) {
        if (interrupted()) return false;
        sh("ip netns exec " + node_.nodeNs() + " nft delete table " + c.table);
        long before = settledMemoryKb();
        if (!loadOne(c)) return false;
        kb.push_back(static_cast<double>(settledMemoryKb() - before));
      }
      c.kernel_kb = static_cast<long>(bench::median(kb));
      if (!bench::setDormant(node_.nodeNs(), c.table, true)) return false;
    }
    return true;
  }

  /// One measurement of `c` added to its runs: its table woken for it (or the bare node). False
  /// (and why, printed) when its table could not be woken or put back to sleep.
  bool measure(Config& c, double seconds) {
    if (interrupted()) return false;
    if (c.table.empty() && !c.knp) {
      c.runs.push_back(bench::measureOnce(bare_, 0, kServer, cpu_, seconds));
      return true;
    }
    if (!c.table.empty() && !bench::setDormant(node_.nodeNs(), c.table, false)) {
      std::printf("peers_bench: waking table %s failed\n", c.table.c_str());
      return false;
    }
    c.runs.push_back(bench::measureOnce(node_, 0, kServer, cpu_, seconds));
    if (!c.table.empty() && !bench::setDormant(node_.nodeNs(), c.table, true)) {
      std::printf("peers_bench: putting table %s to sleep failed\n", c.table.c_str());
      return false;
    }
    return true;
  }

 private:
  bool loadOne(const Config& c) {
    if (!c.nft.empty()) return bench::nftFile(node_.nodeNs(), c.nft);
    for (const auto& batch : dataplane::encodeCreate(c.rules, 1)) {
      if (auto ok = tr_.commit(batch); !ok) {
        std::printf("  load failed: %s\n", ok.error().str().c_str());
        return false;
      }
    }
    return true;
  }

  // The kernel frees a deleted table's memory after RCU grace periods: wait for them.
  static long settledMemoryKb() {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return bench::kernelMemoryKb();
  }

  const NodeHarness& node_;
  const NodeHarness& bare_;
  dataplane::Transport& tr_;
  int cpu_;
};

double median(const Config& c, double bench::Rates::*field) {
  std::vector<double> v;
  for (const auto& r : c.runs) v.push_back(r.*field);
  return bench::median(v);
}

void printHeader() {
  std::printf("%-8s %-22s %8s %7s %7s %7s %-11s %9s %9s %7s %7s %9s   %s\n", "policies", "enforcer",
              "conn/s", "vs none", "vs ct", "CPU us", "(min-max)", "1st p50us", "1st p99us", "MB/s",
              "vs none", "kernel kB", "ruleset");
}

// The median over the rounds of `c`'s figure divided by `ref`'s in the same round: a round's
// configurations run seconds apart, so the machine's slower drift cancels out of the ratio.
double ratio(const Config& c, const Config& ref, double bench::Rates::*field) {
  std::vector<double> v;
  for (size_t i = 0; i < c.runs.size() && i < ref.runs.size(); ++i) {
    if (ref.runs[i].*field > 0) v.push_back(c.runs[i].*field / (ref.runs[i].*field));
  }
  return bench::median(v);
}

// One line per configuration: medians over the rounds and the range of the CPU time, the
// rate's ratios to the first row (no table) and to the second (conntrack only) when there is one.
void printRows(size_t policies, const std::vector<Config>& configs) {
  const Config& none = configs[0];
  const Config& ct = configs.size() > 1 ? configs[1] : none;
  for (const Config& c : configs) {
    auto [lo, hi] = std::ranges::minmax(c.runs | std::views::transform(&bench::Rates::cpu_us));
    std::string kb = c.table.empty() ? "-" : std::to_string(c.kernel_kb);
    std::printf(
        "%-8zu %-22s %8.0f %6.1f%% %6.1f%% %7.1f %5.1f-%-5.1f %9.0f %9.0f %7.0f %6.1f%% %6.1f%% "
        "%9s   "
        "%s\n",
        policies, c.name.c_str(), median(c, &bench::Rates::cps),
        100 * ratio(c, none, &bench::Rates::cps), 100 * ratio(c, ct, &bench::Rates::cps),
        median(c, &bench::Rates::cpu_us), lo, hi, median(c, &bench::Rates::first_us),
        median(c, &bench::Rates::first_p99_us), median(c, &bench::Rates::mbps),
        100 * ratio(c, none, &bench::Rates::mbps), 100 * ratio(c, ct, &bench::Rates::mbps),
        kb.c_str(), c.detail.c_str());
  }
  std::fflush(stdout);
}

// The table an `nft -f` script makes: "inet zonewall" from its first `table inet zonewall {`.
std::string tableOf(const std::string& script) {
  static const std::regex kTable(R"((^|\n)table (ip|ip6|inet|arp|bridge|netdev) ([^ {]+))");
  std::smatch m;
  return std::regex_search(script, m, kTable) ? m[2].str() + " " + m[3].str() : "";
}

// `peers_bench compare FILE...`: the same measurement for `nft -f` scripts of one's own (each
// making one table of its own name), beside no table, taking turns: for judging one change to
// a ruleset against another.
int compareFiles(const std::vector<std::string>& files, int rounds) {
  if (geteuid() != 0) {
    std::printf("peers_bench: needs root (network namespaces, nftables)\n");
    return 1;
  }
  stopOnSignals();
  std::vector<Config> configs{{.name = "no table"}};
  std::set<std::string> tables;
  for (const std::string& f : files) {
    std::ifstream in(f);
    if (!in) {
      std::fprintf(stderr, "peers_bench: cannot read %s\n", f.c_str());
      return 2;
    }
    std::string text(std::istreambuf_iterator<char>(in), {});
    std::string table = tableOf(text);
    if (table.empty() || !tables.insert(table).second) {
      std::fprintf(stderr, "peers_bench: %s must make one table of a name no other file uses\n",
                   f.c_str());
      return 2;
    }
    configs.push_back({.name = f, .table = table, .nft = text});
  }
  Nodes nodes;
  if (!nodes.ok()) return 1;
  const int cpu = nodes.cpu;
  const NodeHarness& node = nodes.node;
  const NodeHarness& bare = nodes.bare;
  auto tr = dataplane::openNetlink("/run/netns/" + node.nodeNs());
  if (!tr) {
    std::printf("peers_bench: netlink: %s\n", tr.error().str().c_str());
    return 1;
  }
  Stage stage(node, bare, **tr, cpu);
  if (!stage.load(configs)) return 1;
  for (const NodeHarness* n : {&node, &bare}) bench::measureOnce(*n, 0, kServer, cpu, 0.2);
  printHeader();
  for (int round = 0; round < rounds; ++round) {
    for (Config& c : configs) {
      if (!stage.measure(c, kSeconds)) return 1;
    }
  }
  printRows(0, configs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // `peers_bench calico|zonewall N`: that ruleset of node-1 at N policies, for review.
  if (argc == 3 && (std::string(argv[1]) == "calico" || std::string(argv[1]) == "zonewall")) {
    std::optional<size_t> n = bench::parseCount("peers_bench", argv[2], 0, 999999, "POLICIES");
    if (!n) return 2;
    policy::Store st = cluster(*n);
    if (std::string(argv[1]) == "calico") {
      std::fputs(bench::calicoShape(st, kNode).nft.c_str(), stdout);
      return 0;
    }
    compiler::Inventory inv(st);
    auto table = compiler::compileNode(compiler::lower(st), inv, kNode);
    std::fputs(dataplane::renderNft(*table).c_str(), stdout);
    return 0;
  }
  if (argc >= 3 && std::string(argv[1]) == "compare") {
    std::vector<std::string> files(argv + 2, argv + argc);
    int rounds = kRounds;
    if (files.size() >= 2 && files[0] == "--rounds") {
      std::optional<size_t> n = bench::parseCount("peers_bench", files[1], 1, 1000, "--rounds");
      if (!n) return 2;
      rounds = static_cast<int>(*n);
      files.erase(files.begin(), files.begin() + 2);
    }
    if (files.empty()) {
      std::fprintf(stderr, "usage: peers_bench compare [--rounds N] FILE...\n");
      return 2;
    }
    return compareFiles(files, rounds);
  }
  std::vector<size_t> counts{0, 100, 1000, 10000};
  if (argc == 3 && std::string(argv[1]) == "--policies") {
    counts.clear();
    for (std::string_view n :
         std::views::split(std::string_view(argv[2]), ',') |
             std::views::transform([](auto r) { return std::string_view(r); })) {
      std::optional<size_t> count = bench::parseCount("peers_bench", n, 0, 999999, "--policies");
      if (!count) return 2;
      counts.push_back(*count);
    }
  } else if (argc != 1) {
    std::printf(
        "usage: peers_bench [--policies N,N,...]\n"
        "       peers_bench calico|zonewall POLICIES   (print that ruleset)\n"
        "       peers_bench compare [--rounds N] FILE...   (nft scripts of one's own)\n");
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
  stopOnSignals();
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

  Nodes nodes;
  if (!nodes.ok()) return 1;
  const int cpu = nodes.cpu;
  const NodeHarness& node = nodes.node;
  const NodeHarness& bare = nodes.bare;
  bench::avoidCpu(cpu);  // the API server and etcd run beside the measured CPU, not on it
  KubeCluster kube;
  if (!kube.ok() || !kube.attach(node.nodeNs(), 0)) {
    std::printf("peers_bench: kube-apiserver: %s\n", kube.error().c_str());
    return 1;
  }
  bench::pinToOneCpu(cpu);
  testing::TempDir tmp;
  Knp knp(kube, node.nodeNs(), node.podNs(0), tmp.path());
  auto tr = dataplane::openNetlink("/run/netns/" + node.nodeNs());
  if (!tr) {
    std::printf("peers_bench: netlink: %s\n", tr.error().str().c_str());
    return 1;
  }
  Stage stage(node, bare, **tr, cpu);

  const bool queue = haveNftQueue(node.nodeNs());
  if (!queue) {
    std::printf(
        "kube-network-policies: not measurable on this kernel (%s): nftables has no queue "
        "expression (CONFIG_NFT_QUEUE is not set), and its first-packet rule is refused\n",
        run("uname -r").out.substr(0, run("uname -r").out.find('\n')).c_str());
  }
  std::printf(
      "Peers: new TCP connections through a node netns, client -> server (ns-0, selected by its "
      "namespace's share of the policies); everything on CPU %d; medians of %d rounds of %.1f s "
      "per figure, the configurations taking turns; ratios are medians of a round's ratios\n",
      cpu, kRounds, kSeconds);
  printHeader();
  std::set<std::string> created;  // the policies the API server has
  policy::Store before = cluster(0);
  if (queue && !populate(kube, before)) {
    std::printf("peers_bench: populating the API server failed\n");
    return 1;
  }
  for (const NodeHarness* n : {&node, &bare}) bench::measureOnce(*n, 0, kServer, cpu, 0.2);
  for (size_t policies : counts) {
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
    configs.push_back({.name = "no table"});
    configs.push_back({.name = "conntrack only",
                       .table = "inet ct-only",
                       .nft = bench::conntrackOnly("ct-only"),
                       .detail = "1 rule"});
    compiler::Inventory inv(st);
    auto table = compiler::compileNode(compiler::lower(st), inv, kNode);
    configs.push_back({.name = "zonewall",
                       .table = "inet zonewall",
                       .rules = dataplane::buildRuleset(*table),
                       .detail = std::to_string(table->entryCount()) + " entries"});
    bench::CalicoShape cal = bench::calicoShape(st, kNode);
    configs.push_back({.name = "Calico-shaped",
                       .table = "ip calico-bench",
                       .nft = cal.nft,
                       .detail = fmt::format("{} chains, {} rules, {} sets of {} members",
                                             cal.chains, cal.rules, cal.sets, cal.set_members)});
    if (queue) {
      configs.push_back(
          {.name = "kube-network-policies", .knp = true, .detail = "NFQUEUE, userspace verdicts"});
    }
    configs.push_back({.name = "linear chain",
                       .table = "inet linear",
                       .nft = bench::linearChain(policies, kClient, kServer, "linear"),
                       .detail = std::to_string(policies + 2) + " rules"});
    if (!stage.load(configs)) return 1;
    for (int round = 0; round < kRounds; ++round) {
      for (Config& c : configs) {
        if (c.knp && !knp.start()) {
          std::printf("peers_bench: kube-network-policies did not sync:\n%s\n", knp.log().c_str());
          return 1;
        }
        bool measured = stage.measure(c, kSeconds);
        if (c.knp) knp.stop();
        if (!measured) return 1;
      }
    }
    sh("ip netns exec " + node.nodeNs() + " nft flush ruleset");
    printRows(policies, configs);
  }
  return 0;
}
