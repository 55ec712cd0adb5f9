// zonewall-agent: the node agent (agent/agent.h). Options, logging, signals, wiring; the loop
// and the sources are the library's.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "zonewall/agent/agent.h"
#include "zonewall/agent/kube.h"
#include "zonewall/agent/logging.h"
#include "zonewall/agent/node_network.h"
#include "zonewall/agent/packet_log.h"
#include "zonewall/agent/sources.h"
#include "zonewall/dataplane/transport.h"

namespace {

std::string defaultNode() {
  if (const char* n = std::getenv("NODE_NAME"); n != nullptr && *n != '\0') return n;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return host;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace zonewall::agent;
  CLI::App app{"zonewall-agent: keeps this node's nftables table in step with the cluster"};
  std::string node = defaultNode();
  std::string policy_dir, kubeconfig, context;
  bool in_cluster = false;
  std::string sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::string endpoints_dir = "/run/zonewall/endpoints";
  std::string wait_socket = "/run/zonewall/agent.sock";
  std::string metrics_listen = "9402";
  int reconcile_s = 60;
  double quiet_ms = 2, max_delay_ms = 50;
  std::string table = "zonewall", log_format = "text", log_level = "info";
  int nflog_group = 0;
  int log_rate = 100;
  app.add_option("--node", node, "This node's name (spec.nodeName of its pods)")
      ->capture_default_str();
  auto* dir_opt = app.add_option("--policy-dir", policy_dir,
                                 "Source: a directory of YAML (what the CLI reads), watched");
  auto* kc_opt =
      app.add_option("--kubeconfig", kubeconfig, "Source: the API server of a kubeconfig");
  app.add_option("--context", context, "The kubeconfig's context (default: its current one)");
  auto* ic_opt = app.add_flag("--in-cluster", in_cluster,
                              "Source: the API server, as a pod (service account token and CA)");
  app.add_option("--service-account-dir", sa_dir, "--in-cluster: the token and CA's directory")
      ->capture_default_str();
  dir_opt->excludes(kc_opt)->excludes(ic_opt);
  kc_opt->excludes(ic_opt);
  app.add_option("--endpoints-dir", endpoints_dir, "The CNI plugin's endpoint records")
      ->capture_default_str();
  app.add_option("--policy-wait-socket", wait_socket,
                 "Where CNI ADDs wait for their pod's commit (\"\": no waiting)")
      ->capture_default_str();
  app.add_option("--metrics", metrics_listen,
                 "Listen address of /metrics, /healthz, /readyz (\"\": off)")
      ->capture_default_str();
  app.add_option("--reconcile-interval", reconcile_s, "Seconds between reads of the kernel")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--coalesce-ms", quiet_ms, "A burst of changes ends after this quiet time")
      ->check(CLI::Range(0.0, 1000.0))
      ->capture_default_str();
  app.add_option("--max-delay-ms", max_delay_ms, "... and is committed at most this late")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  app.add_option("--table", table, "The nftables table (inet family)")->capture_default_str();
  app.add_option("--nflog-group", nflog_group,
                 "Where Calico's Log action sends packets, read and logged (-1: not read)")
      ->check(CLI::Range(-1, 65535))
      ->capture_default_str();
  app.add_option("--log-packets-per-second", log_rate, "Logged packets written per second, at most")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  // The pod network between nodes: Flannel's subnet managers and backends.
  std::string subnet_manager = "none";
  NodeNetworkOptions net;
  EtcdEndpoint etcd;
  std::string etcd_prefix = "/coreos.com/network";
  KubeSubnetOptions kube_subnets;
  std::string public_ip, public_ipv6, static_subnet, static_network;
  int lease_ttl_s = static_cast<int>(EtcdSubnetManager::kFlannelTtl.count());
  int renew_margin_min = 60;
  app.add_option("--subnet-manager", subnet_manager,
                 "none (subnet.env is someone else's); etcd: lease this node's subnet in "
                 "Flannel's etcd layout; kube: the node's spec.podCIDR and Flannel's node "
                 "annotations; static: --subnet alone (a single node)")
      ->check(CLI::IsMember({"none", "etcd", "kube", "static"}))
      ->capture_default_str();
  app.add_option("--etcd-endpoints", etcd.url, "etcd's client URL (http:// or https://)");
  app.add_option("--etcd-prefix", etcd_prefix, "Flannel's etcd prefix")->capture_default_str();
  app.add_option("--etcd-cafile", etcd.ca_file, "etcd: the CA of its certificate");
  app.add_option("--etcd-certfile", etcd.cert_file, "etcd: this client's certificate");
  app.add_option("--etcd-keyfile", etcd.key_file, "etcd: this client's key");
  app.add_option("--net-config-path", kube_subnets.net_conf,
                 "kube: Flannel's network config (net-conf.json)")
      ->capture_default_str();
  app.add_option("--kube-annotation-prefix", kube_subnets.annotation_prefix,
                 "kube: the node annotations' prefix")
      ->capture_default_str();
  app.add_option("--subnet", static_subnet, "static: this node's pod subnet");
  app.add_option("--network", static_network,
                 "static: the cluster's pod network (default: --subnet)");
  app.add_option("--iface", net.iface,
                 "The interface the tunnel (or host-gw's routes) runs over, by name or address "
                 "(default: the default route's)");
  app.add_option("--public-ip", public_ip,
                 "The lease's PublicIP (default: --iface's first IPv4 address)");
  app.add_option("--public-ipv6", public_ipv6,
                 "The lease's PublicIPv6 when the network enables IPv6 (default: --iface's first "
                 "global IPv6 address)");
  app.add_option("--subnet-file", net.subnet_file,
                 "Where subnet.env goes (the CNI plugin reads it)")
      ->capture_default_str();
  app.add_flag("--ip-masq", net.ip_masq,
               "Masquerade pod traffic leaving the pod network (table inet zonewall-masq)");
  int check_s = static_cast<int>(net.check_interval.count());
  app.add_option("--overlay-check-interval", check_s,
                 "Seconds between reads of the overlay's routes, neighbours and FDB entries, "
                 "repairing what someone else changed (0: never)")
      ->check(CLI::Range(0, 86400))
      ->capture_default_str();
  app.add_option("--subnet-lease-ttl", lease_ttl_s,
                 "etcd: seconds a lease lives unrenewed (Flannel: 24 h)")
      ->check(CLI::Range(2, 7 * 86400))
      ->capture_default_str();
  app.add_option("--subnet-lease-renew-margin", renew_margin_min,
                 "etcd: minutes before expiry to renew (at most half the TTL)")
      ->check(CLI::Range(1, 1439))
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json")->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (auto ok = setupLogging(log_format, log_level); !ok) {
    std::cerr << "zonewall-agent: " << ok.error().str() << "\n";
    return 2;
  }
  if (policy_dir.empty() && kubeconfig.empty() && !in_cluster) {
    in_cluster = std::getenv("KUBERNETES_SERVICE_HOST") != nullptr;
    if (!in_cluster) {
      std::cerr << "zonewall-agent: no source: --policy-dir, --kubeconfig or --in-cluster\n";
      return 2;
    }
  }
  if (node.empty()) {
    std::cerr << "zonewall-agent: --node is empty\n";
    return 2;
  }
  if (subnet_manager == "etcd" || subnet_manager == "kube") {
    // As flanneld: --iface (a name or an address) or the default route's interface, and its
    // first IPv4 address unless --public-ip says otherwise.
    auto ext = lookupExternalInterface(net.iface);
    if (!ext) {
      std::cerr << "zonewall-agent: --iface: " << ext.error().str() << "\n";
      return 2;
    }
    net.iface = ext->name;
    net.public_ip = ext->addr;
    net.public_ipv6 = ext->addr6;
    // An address flag overrides the interface's: of the family it names, or exit 2.
    auto addressFlag = [](const char* flag, const std::string& text, zonewall::Family family,
                          auto& out) {
      if (text.empty()) return true;
      auto ip = zonewall::parseAddr(text);
      if (!ip || ip->family() != family) {
        std::cerr << "zonewall-agent: " << flag << ": not an IPv"
                  << (family == zonewall::Family::kV4 ? 4 : 6) << " address: " << text << "\n";
        return false;
      }
      out = *ip;
      return true;
    };
    if (!addressFlag("--public-ip", public_ip, zonewall::Family::kV4, net.public_ip) ||
        !addressFlag("--public-ipv6", public_ipv6, zonewall::Family::kV6, net.public_ipv6)) {
      return 2;
    }
    net.renew_margin = std::chrono::minutes(renew_margin_min);
  }
  if (subnet_manager == "etcd" && etcd.url.empty()) {
    std::cerr << "zonewall-agent: --subnet-manager etcd needs --etcd-endpoints\n";
    return 2;
  }
  net.check_interval = std::chrono::seconds(check_s);
  std::optional<zonewall::Cidr> subnet, network;
  if (subnet_manager == "static") {
    auto s = zonewall::parseCidr(static_subnet);
    auto nw = zonewall::parseCidr(static_network.empty() ? static_subnet : static_network);
    if (!s || !nw || s->cidr.family != zonewall::Family::kV4 ||
        nw->cidr.family != zonewall::Family::kV4) {
      std::cerr << "zonewall-agent: --subnet-manager static needs an IPv4 --subnet (and "
                   "--network, if given, IPv4)\n";
      return 2;
    }
    subnet = s->cidr;
    network = nw->cidr;
  }
  // Signals are taken by a thread of their own (sigwait), never by a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Metrics metrics;
  // The subnet first: the CNI plugin hands out addresses from it.
  std::optional<KubeConfig> kube;
  if (policy_dir.empty()) {
    auto config = in_cluster ? inClusterConfig(sa_dir) : loadKubeconfig(kubeconfig, context);
    if (!config) {
      spdlog::critical("{}", config.error().str());
      return 2;
    }
    kube = std::move(*config);
  }
  std::unique_ptr<SubnetManager> subnets;
  if (subnet_manager == "etcd") {
    subnets =
        std::make_unique<EtcdSubnetManager>(etcd, etcd_prefix, std::chrono::seconds(lease_ttl_s));
  } else if (subnet_manager == "kube") {
    if (!kube) {
      std::cerr << "zonewall-agent: --subnet-manager kube needs the API server (--kubeconfig "
                   "or --in-cluster)\n";
      return 2;
    }
    kube_subnets.node = node;
    auto m = kubeSubnetManager(*kube, kube_subnets, metrics);
    if (!m) {
      spdlog::critical("subnet manager: {}", m.error().str());
      return 2;
    }
    subnets = std::move(*m);
  } else if (subnet_manager == "static") {
    NetworkConfig config;
    config.network = *network;
    config.subnet_len = subnet->prefix;
    config.backend_type = "none";
    subnets = staticSubnetManager(config, *subnet);
  }
  std::unique_ptr<NodeNetwork> network_;
  if (subnets) {
    auto n = NodeNetwork::start(std::move(subnets), net, metrics);
    if (!n) {
      spdlog::critical("subnet lease: {}", n.error().str());
      return 1;
    }
    network_ = std::move(*n);
  }
  ClusterState state(node);
  std::vector<std::unique_ptr<Source>> sources;
  if (!policy_dir.empty()) {
    auto s = directorySource(policy_dir, state, metrics);
    if (!s) {
      spdlog::critical("{}", s.error().str());
      return 1;
    }
    sources.push_back(std::move(*s));
  } else {
    spdlog::info("API server {}", kube->server);
    sources.push_back(kubeSource(*kube, state, metrics));
  }
  auto endpoints = endpointSource(endpoints_dir, state);
  if (!endpoints) {
    spdlog::critical("{}", endpoints.error().str());
    return 1;
  }
  sources.push_back(std::move(*endpoints));

  auto transport = zonewall::dataplane::openNetlink("");
  if (!transport) {
    spdlog::critical("netlink: {}", transport.error().str());
    return 1;
  }
  std::unique_ptr<PolicyWaitServer> waits;
  if (!wait_socket.empty()) {
    auto w = PolicyWaitServer::start(wait_socket, metrics);
    if (!w) {
      spdlog::critical("{}", w.error().str());
      return 1;
    }
    waits = std::move(*w);
  }
  std::unique_ptr<PacketLog> packet_log;
  if (nflog_group >= 0) {
    auto p = PacketLog::start(static_cast<std::uint16_t>(nflog_group), metrics, log_rate);
    if (p) {
      packet_log = std::move(*p);
    } else {  // another listener (ulogd) has the group: enforcement does not depend on it
      spdlog::warn("packet log: {}; Log rules' packets are not read", p.error().str());
    }
  }
  AgentOptions options{
      .node = node,
      .nft = {.table = table},
      .quiet = std::chrono::microseconds(static_cast<long>(quiet_ms * 1000)),
      .max_delay = std::chrono::microseconds(static_cast<long>(max_delay_ms * 1000)),
      .reconcile_every = std::chrono::seconds(reconcile_s)};
  Agent agent(options, state, **transport, metrics, waits.get());
  std::unique_ptr<StatusServer> status;
  if (!metrics_listen.empty()) {
    auto s = StatusServer::start(metrics_listen, metrics, agent.ready());
    if (!s) {
      spdlog::critical("{}", s.error().str());
      return 1;
    }
    status = std::move(*s);
  }

  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: stopping (the kernel keeps enforcing the last table)", sig);
    stop = true;
    state.wake();
  });
  spdlog::info("node {}: starting", node);
  for (auto& s : sources) s->start();
  agent.run(stop);
  for (auto& s : sources) s->stop();
  signal_thread.join();
  return 0;
}
