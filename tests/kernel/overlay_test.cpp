// Flannel's vxlan overlay between nodes, from leases in a real etcd: three nodes (network
// namespaces on one underlay bridge) each create flannel.1, claim a subnet with their VTEP MAC
// in the lease, and program every other node's neighbour, FDB entry and route from the leases.
// Packets between the nodes' subnets cross the tunnel; a node that leaves takes its routes
// with it; an agent that restarts adopts its device and changes nothing.
#include "zonewall/agent/overlay.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "etcd_server.h"
#include "test_support.h"
#include "zonewall/agent/leases.h"
#include "zonewall/base/netns.h"

namespace zonewall::testing {
namespace {

using agent::EtcdSubnetManager;
using agent::LeaseAttrs;
using agent::Overlay;
using agent::Peer;
using agent::SubnetLease;
using agent::VxlanSpec;
using namespace std::chrono_literals;

bool sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; }

// The underlay: a bridge in its own namespace; node i is 10.98.0.(10+i) on its link ul0.
class Underlay {
 public:
  explicit Underlay(int nodes) : prefix_(fmt::format("zwt{}o", getpid())) {
    ok_ = sh("ip netns add " + prefix_ + "u") && sh("ip -n " + prefix_ + "u link set lo up") &&
          sh("ip -n " + prefix_ + "u link add br0 type bridge") &&
          sh("ip -n " + prefix_ + "u link set br0 up");
    for (int i = 0; ok_ && i < nodes; ++i) {
      const std::string n = node(i);
      ok_ = sh("ip netns add " + n) && sh("ip -n " + n + " link set lo up") &&
            sh(fmt::format("ip -n {} link add ul0 type veth peer name p{} netns {}u", n, i,
                           prefix_)) &&
            sh(fmt::format("ip -n {}u link set p{} master br0 up", prefix_, i)) &&
            sh(fmt::format("ip -n {} addr add {}/24 dev ul0", n, publicIp(i))) &&
            sh("ip -n " + n + " link set ul0 up") &&
            sh("ip netns exec " + n + " sysctl -qw net.ipv4.ip_forward=1");
      count_ = i + 1;
    }
  }
  ~Underlay() {
    for (int i = 0; i < count_; ++i) sh("ip netns del " + node(i));
    sh("ip netns del " + prefix_ + "u");
  }
  bool ok() const { return ok_; }
  std::string underlay() const { return prefix_ + "u"; }
  std::string node(int i) const { return fmt::format("{}n{}", prefix_, i); }
  static std::string publicIp(int i) { return fmt::format("10.98.0.{}", 10 + i); }

 private:
  std::string prefix_;
  bool ok_ = false;
  int count_ = 0;
};

// One node's half of the overlay, run inside its namespace: the device, the lease, the peers.
struct Node {
  std::string netns;
  std::optional<Overlay> overlay;
  SubnetLease lease;
};

template <class F>
auto inNetns(const std::string& netns, F&& f) {
  auto guard = NetnsGuard::enter("/run/netns/" + netns);
  EXPECT_TRUE(guard.has_value()) << netns;
  return f();
}

std::vector<Peer> peersOf(const std::vector<SubnetLease>& leases, const SubnetLease& own) {
  std::vector<Peer> out;
  for (const SubnetLease& l : leases) {
    if (l.key() == own.key() || l.attrs.backend_type != "vxlan" || !l.subnet) continue;
    auto data = nlohmann::json::parse(l.attrs.backend_data, nullptr, false);
    auto mac = agent::parseMac(data.value("VtepMAC", std::string()));
    if (!mac) continue;
    out.push_back({*l.subnet, l.attrs.public_ip, *mac});
  }
  return out;
}

TEST(Overlay, NodesReachEachOtherOverVxlanFromTheirLeases) {
  if (!isRoot()) {
    if (inCi()) FAIL() << "kernel tests must run as root in CI";
    GTEST_SKIP() << "needs root (network namespaces)";
  }
  if (!haveEtcd()) {
    if (inCi()) FAIL() << "/usr/bin/etcd missing: make install-deps installs etcd-server";
    GTEST_SKIP() << "/usr/bin/etcd missing";
  }
  EtcdServer etcd;
  ASSERT_TRUE(etcd.ok()) << etcd.error();
  constexpr int kNodes = 3;
  Underlay net(kNodes);
  ASSERT_TRUE(net.ok());
  agent::EtcdClient(etcd.endpoint())
      .put("/coreos.com/network/config",
           R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  EtcdSubnetManager leases(etcd.endpoint());
  auto config = leases.config();
  ASSERT_TRUE(config.has_value()) << config.error().str();

  std::vector<Node> nodes(kNodes);
  for (int i = 0; i < kNodes; ++i) {
    Node& n = nodes[static_cast<size_t>(i)];
    n.netns = net.node(i);
    const Addr pub = *parseAddr(Underlay::publicIp(i));
    inNetns(n.netns, [&] {
      auto o = Overlay::vxlan(VxlanSpec{config->vni, config->port, "ul0", pub});
      ASSERT_TRUE(o.has_value()) << o.error().str();
      EXPECT_EQ(o->mtu(), 1500 - 50);
      n.overlay.emplace(std::move(*o));
    });
    ASSERT_TRUE(n.overlay.has_value());
    LeaseAttrs attrs;
    attrs.public_ip = pub;
    attrs.backend_type = "vxlan";
    attrs.backend_data = fmt::format(R"({{"VNI":{},"VtepMAC":"{}"}})", config->vni,
                                     agent::formatMac(n.overlay->mac()));
    auto l = leases.acquire(*config, attrs);
    ASSERT_TRUE(l.has_value()) << l.error().str();
    n.lease = *l;
    ASSERT_TRUE(n.overlay->assign(*n.lease.subnet).has_value());
    // A "pod" address in the node's subnet (on lo: this kernel has no dummy links).
    const std::string pod = formatAddr(Addr{n.lease.subnet->base.v + 2});
    ASSERT_TRUE(sh("ip -n " + n.netns + " addr add " + pod + "/32 dev lo"));
  }
  auto all = leases.leases();
  ASSERT_TRUE(all.has_value());
  ASSERT_EQ(all->first.size(), static_cast<size_t>(kNodes));
  for (Node& n : nodes) {
    auto c = inNetns(n.netns, [&] { return n.overlay->sync(peersOf(all->first, n.lease)); });
    ASSERT_TRUE(c.has_value()) << c.error().str();
    EXPECT_EQ(c->added, 3 * (kNodes - 1));  // a neighbour, an FDB entry and a route each
    EXPECT_EQ(c->removed, 0);
  }
  auto podOf = [&](int i) {
    return formatAddr(Addr{nodes[static_cast<size_t>(i)].lease.subnet->base.v + 2});
  };
  // Every node's pod address reaches every other's, over flannel.1.
  for (int a = 0; a < kNodes; ++a) {
    for (int b = 0; b < kNodes; ++b) {
      if (a == b) continue;
      EXPECT_TRUE(sh(
          fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(a), podOf(a), podOf(b))))
          << podOf(a) << " -> " << podOf(b);
    }
  }
  RunResult route =
      run(fmt::format("ip -n {} route show {}", net.node(0), nodes[1].lease.subnet->str()));
  EXPECT_NE(route.out.find("dev flannel.1 onlink"), std::string::npos) << route.out;

  // Unchanged leases: nothing to do.
  auto again = inNetns(nodes[0].netns,
                       [&] { return nodes[0].overlay->sync(peersOf(all->first, nodes[0].lease)); });
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->added + again->removed, 0);
  EXPECT_EQ(again->unchanged, kNodes - 1);

  // An agent restart: the device is adopted (same MAC), the kernel's entries read and kept.
  const agent::Mac mac_before = nodes[0].overlay->mac();
  nodes[0].overlay.reset();
  inNetns(nodes[0].netns, [&] {
    auto o = Overlay::vxlan(
        VxlanSpec{config->vni, config->port, "ul0", *parseAddr(Underlay::publicIp(0))});
    ASSERT_TRUE(o.has_value()) << o.error().str();
    EXPECT_EQ(o->mac(), mac_before);
    auto c = o->sync(peersOf(all->first, nodes[0].lease));
    ASSERT_TRUE(c.has_value()) << c.error().str();
    EXPECT_EQ(c->added + c->removed, 0);
    nodes[0].overlay.emplace(std::move(*o));
  });

  // Node 2 leaves: its lease goes, and node 0 drops its neighbour, FDB entry and route.
  ASSERT_TRUE(leases.release(nodes[2].lease).has_value());
  auto after = leases.leases();
  ASSERT_TRUE(after.has_value());
  auto left = inNetns(nodes[0].netns, [&] {
    return nodes[0].overlay->sync(peersOf(after->first, nodes[0].lease));
  });
  ASSERT_TRUE(left.has_value());
  EXPECT_EQ(left->removed, 3);
  EXPECT_EQ(left->added, 0);
  RunResult gone = run(fmt::format("ip -n {} route show dev flannel.1", net.node(0)));
  EXPECT_EQ(gone.out.find(nodes[2].lease.subnet->str()), std::string::npos) << gone.out;
  RunResult fdb = run(fmt::format("ip netns exec {} bridge fdb show dev flannel.1", net.node(0)));
  EXPECT_EQ(fdb.out.find(Underlay::publicIp(2)), std::string::npos) << fdb.out;
  EXPECT_NE(fdb.out.find(Underlay::publicIp(1)), std::string::npos) << fdb.out;
  EXPECT_FALSE(
      sh(fmt::format("ip netns exec {} ping -c1 -W1 -I {} {}", net.node(0), podOf(0), podOf(2))));
  EXPECT_TRUE(
      sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(0), podOf(0), podOf(1))));
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// The same, run by zonewall-agent itself on three nodes: each leases its subnet from etcd
// (reachable on the underlay), writes subnet.env and routes to the others over flannel.1; a
// killed agent comes back to the same subnet; a node whose lease is deleted disappears from
// the others' routes.
class AgentNodes {
 public:
  AgentNodes(const Underlay& net, const EtcdServer& etcd, int nodes, int lease_ttl = 60)
      : net_(net), lease_ttl_(lease_ttl) {
    std::filesystem::create_directories(dir_.path() / "policies");
    for (int i = 0; i < nodes; ++i) start(i, etcd);
  }
  ~AgentNodes() {
    while (!pids_.empty()) stop(pids_.begin()->first);
  }
  void start(int i, const EtcdServer& etcd) {
    const std::string d = (dir_.path() / fmt::format("n{}", i)).string();
    std::filesystem::create_directories(d + "/endpoints");
    const std::string cmd = fmt::format(
        "ip netns exec {} {} --node n{} --policy-dir {} --endpoints-dir {}/endpoints "
        "--policy-wait-socket '' --metrics '' --nflog-group -1 --subnet-manager etcd "
        "--etcd-endpoints {} --iface ul0 --public-ip {} --subnet-file {}/subnet.env "
        "--subnet-lease-ttl {} >>{}/agent.log 2>&1 & echo $!",
        net_.node(i), ZONEWALL_AGENT, i, (dir_.path() / "policies").string(), d,
        etcd.endpoint().url, Underlay::publicIp(i), d, lease_ttl_, d);
    pids_[i] = std::stoi(run(cmd).out);
  }
  void stop(int i, int sig = SIGTERM) {
    if (auto it = pids_.find(i); it != pids_.end()) {
      kill(it->second, sig);
      for (int k = 0; k < 50 && kill(it->second, 0) == 0; ++k) {
        std::this_thread::sleep_for(100ms);
      }
      kill(it->second, SIGKILL);
      pids_.erase(it);
    }
  }
  std::string subnetEnv(int i) const {
    std::ifstream in(dir_.path() / fmt::format("n{}/subnet.env", i));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::string log(int i) const {
    std::ifstream in(dir_.path() / fmt::format("n{}/agent.log", i));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // FLANNEL_SUBNET's network, e.g. 10.244.7.0/24.
  std::optional<Cidr> subnet(int i) const {
    return agent::previousSubnet((dir_.path() / fmt::format("n{}/subnet.env", i)).string());
  }

 private:
  const Underlay& net_;
  int lease_ttl_;
  TempDir dir_;
  std::map<int, pid_t> pids_;
};

template <class Pred>
bool eventually(Pred&& p, std::chrono::milliseconds within = 10s) {
  const auto end = std::chrono::steady_clock::now() + within;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return p();
}

TEST(Overlay, AgentsLeaseRouteAndFollowEachOther) {
  if (!isRoot()) {
    if (inCi()) FAIL() << "kernel tests must run as root in CI";
    GTEST_SKIP() << "needs root (network namespaces)";
  }
  if (!haveEtcd()) {
    if (inCi()) FAIL() << "/usr/bin/etcd missing: make install-deps installs etcd-server";
    GTEST_SKIP() << "/usr/bin/etcd missing";
  }
  constexpr int kNodes = 3;
  Underlay net(kNodes);
  ASSERT_TRUE(net.ok());
  ASSERT_TRUE(sh("ip -n " + net.underlay() + " addr add 10.98.0.1/24 dev br0"));
  EtcdServer etcd(net.underlay(), "10.98.0.1");
  ASSERT_TRUE(etcd.ok()) << etcd.error();
  ASSERT_TRUE(etcd.put("/coreos.com/network/config",
                       R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})"));
  AgentNodes agents(net, etcd, kNodes);
  std::vector<Cidr> subnets;
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(eventually([&] { return agents.subnet(i).has_value(); })) << agents.log(i);
    subnets.push_back(*agents.subnet(i));
    EXPECT_NE(agents.subnetEnv(i).find("FLANNEL_NETWORK=10.244.0.0/16\n"), std::string::npos);
    EXPECT_NE(agents.subnetEnv(i).find("FLANNEL_MTU=1450\n"), std::string::npos);
    ASSERT_TRUE(sh(fmt::format("ip -n {} addr add {}/32 dev lo", net.node(i),
                               formatAddr(Addr{subnets.back().base.v + 2}))));
  }
  EXPECT_EQ(std::set<Cidr>(subnets.begin(), subnets.end()).size(), subnets.size());
  auto routes = [&](int i) {
    return run("ip -n " + net.node(i) + " route show dev flannel.1").out;
  };
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_TRUE(eventually([&] {
      std::string r = routes(i);
      for (int j = 0; j < kNodes; ++j) {
        if (j != i && r.find(subnets[static_cast<size_t>(j)].str()) == std::string::npos) {
          return false;
        }
      }
      return true;
    })) << routes(i)
        << agents.log(i);
  }
  auto pod = [&](int i) { return formatAddr(Addr{subnets[static_cast<size_t>(i)].base.v + 2}); };
  for (int a = 0; a < kNodes; ++a) {
    for (int b = 0; b < kNodes; ++b) {
      if (a == b) continue;
      EXPECT_TRUE(
          sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(a), pod(a), pod(b))))
          << pod(a) << " -> " << pod(b);
    }
  }
  // A killed agent comes back to its subnet (its own lease, found by PublicIP) and adopts its
  // device: the others keep their routes, its routes are not rewritten.
  const std::string routes_before = routes(0);
  agents.stop(0, SIGKILL);
  agents.start(0, etcd);
  auto leasedTimes = [&] {
    const std::string log = agents.log(0);
    const std::string want = "leased " + subnets[0].str() + " ";
    int n = 0;
    for (size_t at = log.find(want); at != std::string::npos; at = log.find(want, at + 1)) ++n;
    return n;
  };
  EXPECT_TRUE(eventually([&] { return leasedTimes() == 2; })) << agents.log(0);
  EXPECT_EQ(*agents.subnet(0), subnets[0]);
  EXPECT_EQ(routes(0), routes_before);
  EXPECT_TRUE(
      sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(1), pod(1), pod(0))));
  // Node 2 leaves: its agent stops and its lease is deleted; the others drop its route.
  agents.stop(2);
  const std::string key = "/coreos.com/network/subnets/" + formatAddr(subnets[2].base) + "-" +
                          std::to_string(subnets[2].prefix);
  ASSERT_FALSE(
      etcd.post("/v3/kv/deleterange", R"({"key":")" + agent::base64Encode(key) + R"("})").empty());
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(eventually([&] { return routes(i).find(subnets[2].str()) == std::string::npos; }))
        << routes(i);
  }
  EXPECT_TRUE(
      sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(0), pod(0), pod(1))));
}

// etcd goes away for longer than a renewal interval: the agents keep their leases, their
// routes and their pods' reachability; when it is back, renewals resume and the leases live
// on past the TTL they had when it went.
TEST(Overlay, AgentsRideOutAnEtcdOutage) {
  if (!isRoot()) {
    if (inCi()) FAIL() << "kernel tests must run as root in CI";
    GTEST_SKIP() << "needs root (network namespaces)";
  }
  if (!haveEtcd()) {
    if (inCi()) FAIL() << "/usr/bin/etcd missing: make install-deps installs etcd-server";
    GTEST_SKIP() << "/usr/bin/etcd missing";
  }
  constexpr int kNodes = 2;
  constexpr int kTtl = 10;  // renewals every 5 s (margin: half the TTL)
  Underlay net(kNodes);
  ASSERT_TRUE(net.ok());
  ASSERT_TRUE(sh("ip -n " + net.underlay() + " addr add 10.98.0.1/24 dev br0"));
  EtcdServer etcd(net.underlay(), "10.98.0.1");
  ASSERT_TRUE(etcd.ok()) << etcd.error();
  ASSERT_TRUE(etcd.put("/coreos.com/network/config",
                       R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})"));
  AgentNodes agents(net, etcd, kNodes, kTtl);
  std::vector<Cidr> subnets;
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(eventually([&] { return agents.subnet(i).has_value(); })) << agents.log(i);
    subnets.push_back(*agents.subnet(i));
    ASSERT_TRUE(sh(fmt::format("ip -n {} addr add {}/32 dev lo", net.node(i),
                               formatAddr(Addr{subnets.back().base.v + 2}))));
  }
  auto routes = [&](int i) {
    return run("ip -n " + net.node(i) + " route show dev flannel.1").out;
  };
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(eventually([&] {
      return routes(i).find(subnets[static_cast<size_t>(1 - i)].str()) != std::string::npos;
    })) << agents.log(i);
  }
  auto pod = [&](int i) { return formatAddr(Addr{subnets[static_cast<size_t>(i)].base.v + 2}); };
  auto reaches = [&](int a, int b) {
    return sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", net.node(a), pod(a), pod(b)));
  };
  ASSERT_TRUE(reaches(0, 1));
  const std::string before0 = routes(0);
  const std::string before1 = routes(1);
  etcd.stop();
  std::this_thread::sleep_for(std::chrono::seconds(kTtl * 3 / 4));
  // A renewal failed on each node; nothing in the dataplane moved.
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_TRUE(eventually([&] {
      return agents.log(i).find("renewal failed") != std::string::npos;
    })) << agents.log(i);
  }
  EXPECT_EQ(routes(0), before0);
  EXPECT_EQ(routes(1), before1);
  EXPECT_TRUE(reaches(0, 1));
  EXPECT_TRUE(reaches(1, 0));
  ASSERT_TRUE(etcd.restart()) << etcd.error();
  // Past a whole TTL after etcd's return, the leases are still there: renewals resumed.
  std::this_thread::sleep_for(std::chrono::seconds(kTtl + kTtl / 2));
  for (int i = 0; i < kNodes; ++i) {
    const std::string key = "/coreos.com/network/subnets/" +
                            formatAddr(subnets[static_cast<size_t>(i)].base) + "-" +
                            std::to_string(subnets[static_cast<size_t>(i)].prefix);
    std::string got = etcd.post("/v3/kv/range", R"({"key":")" + agent::base64Encode(key) + R"("})");
    EXPECT_NE(got.find("\"kvs\""), std::string::npos) << key << ": " << got << agents.log(i);
  }
  EXPECT_EQ(agents.subnet(0), subnets[0]);
  EXPECT_EQ(routes(0), before0);
  EXPECT_EQ(routes(1), before1);
  EXPECT_TRUE(reaches(0, 1));
}

}  // namespace
}  // namespace zonewall::testing
