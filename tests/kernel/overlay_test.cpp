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
#include <future>
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
    // Whatever a test left running in a node (servers) goes with it.
    for (int i = 0; i < count_; ++i) {
      sh("ip netns pids " + node(i) + " | xargs -r kill -9");
      sh("ip netns del " + node(i));
    }
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

// Why a kernel + etcd test cannot run here ("" when it can).
std::string missingForEtcdTests() {
  if (!isRoot()) return "needs root (network namespaces)";
  if (!haveEtcd()) return "/usr/bin/etcd missing: make install-deps installs etcd-server";
  return "";
}
#define ZW_REQUIRE_ROOT_AND_ETCD()                                   \
  if (const std::string why = missingForEtcdTests(); !why.empty()) { \
    if (inCi()) FAIL() << why << " (kernel tests must run in CI)";   \
    GTEST_SKIP() << why;                                             \
  }

TEST(Overlay, NodesReachEachOtherOverVxlanFromTheirLeases) {
  ZW_REQUIRE_ROOT_AND_ETCD();
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
  /// `extra`: more flags for every agent (--ip-masq, ...).
  AgentNodes(const Underlay& net, const EtcdServer& etcd, int nodes, int lease_ttl = 60,
             std::string extra = "")
      : net_(net), lease_ttl_(lease_ttl), extra_(std::move(extra)) {
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
        "--subnet-lease-ttl {} {} >>{}/agent.log 2>&1 & echo $!",
        net_.node(i), ZONEWALL_AGENT, i, (dir_.path() / "policies").string(), d,
        etcd.endpoint().url, Underlay::publicIp(i), d, lease_ttl_, extra_, d);
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
  std::string extra_;
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

// The underlay with etcd on its bridge (10.98.0.1) holding Flannel's network config.
struct EtcdUnderlay {
  Underlay net;
  std::optional<EtcdServer> etcd;
  bool ok = false;
  EtcdUnderlay(int nodes, const std::string& config) : net(nodes) {
    if (!net.ok() || !sh("ip -n " + net.underlay() + " addr add 10.98.0.1/24 dev br0")) return;
    etcd.emplace(net.underlay(), "10.98.0.1");
    ok = etcd->ok() && etcd->put("/coreos.com/network/config", config);
  }
};

TEST(Overlay, AgentsLeaseRouteAndFollowEachOther) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kNodes = 3;
  EtcdUnderlay u(kNodes, R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  const Underlay& net = u.net;
  EtcdServer& etcd = *u.etcd;
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
  // ... and a connection that crosses the tunnel to node 0's pod lives through it.
  const std::string routes_before = routes(0);
  ASSERT_TRUE(sh(fmt::format("ip netns exec {} {} serve 5001 >/dev/null 2>&1 &", net.node(0),
                             ZONEWALL_PROBE)));
  std::this_thread::sleep_for(200ms);
  auto stream = std::async(std::launch::async, [&] {
    return run(fmt::format("ip netns exec {} {} stream 6 {}:5001/TCP", net.node(1), ZONEWALL_PROBE,
                           pod(0)));
  });
  std::this_thread::sleep_for(1s);
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
  const RunResult streamed = stream.get();
  EXPECT_EQ(streamed.exit_code, 0) << "the connection across the restart: " << streamed.out;
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
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kNodes = 2;
  constexpr int kTtl = 10;  // renewals every 5 s (margin: half the TTL)
  EtcdUnderlay u(kNodes, R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  const Underlay& net = u.net;
  EtcdServer& etcd = *u.etcd;
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

// Waits for every agent's subnet and puts a "pod" address (the subnet's .2) on its node's lo.
std::vector<Cidr> subnetsWithPods(const EtcdUnderlay& u, const AgentNodes& agents, int nodes) {
  std::vector<Cidr> out;
  for (int i = 0; i < nodes; ++i) {
    if (!eventually([&] { return agents.subnet(i).has_value(); })) {
      ADD_FAILURE() << agents.log(i);
      return {};
    }
    out.push_back(*agents.subnet(i));
    EXPECT_TRUE(sh(fmt::format("ip -n {} addr add {}/32 dev lo", u.net.node(i),
                               formatAddr(Addr{out.back().base.v + 2}))));
  }
  return out;
}

std::string podOn(const Cidr& subnet) { return formatAddr(Addr{subnet.base.v + 2}); }

bool pingFrom(const std::string& netns, const std::string& from, const std::string& to) {
  return sh(fmt::format("ip netns exec {} ping -c1 -W2 -I {} {}", netns, from, to));
}

// Every node's pod pings every other node's pod.
void expectEveryPodPingsEveryOther(const EtcdUnderlay& u, const std::vector<Cidr>& subnets) {
  for (size_t a = 0; a < subnets.size(); ++a) {
    for (size_t b = 0; b < subnets.size(); ++b) {
      if (a != b) {
        EXPECT_TRUE(pingFrom(u.net.node(static_cast<int>(a)), podOn(subnets[a]), podOn(subnets[b])))
            << a << " -> " << b;
      }
    }
  }
}

// host-gw: no tunnel; each node routes the others' subnets via their public addresses on the
// shared underlay link. The underlay's own routes (outside the pod network) are never touched,
// even when they look like the overlay's.
TEST(Overlay, HostGwRoutesViaTheOtherNodesPublicAddresses) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kNodes = 3;
  EtcdUnderlay u(kNodes, R"({"Network": "10.244.0.0/16", "Backend": {"Type": "host-gw"}})");
  ASSERT_TRUE(u.ok);
  // A route of the operator's on the underlay, via a node, outside the pod network.
  ASSERT_TRUE(sh("ip -n " + u.net.node(0) + " route add 192.0.2.0/24 via 10.98.0.11 dev ul0"));
  AgentNodes agents(u.net, *u.etcd, kNodes, 60, "--overlay-check-interval 1");
  const std::vector<Cidr> subnets = subnetsWithPods(u, agents, kNodes);
  ASSERT_EQ(subnets.size(), size_t{kNodes});
  for (int i = 0; i < kNodes; ++i) {
    // The underlay's MTU: nothing is encapsulated.
    EXPECT_NE(agents.subnetEnv(i).find("FLANNEL_MTU=1500\n"), std::string::npos)
        << agents.subnetEnv(i);
    EXPECT_FALSE(sh("ip -n " + u.net.node(i) + " link show flannel.1"));
    for (int j = 0; j < kNodes; ++j) {
      if (i == j) continue;
      const std::string want = fmt::format(
          "{} via {} dev ul0", subnets[static_cast<size_t>(j)].str(), Underlay::publicIp(j));
      EXPECT_TRUE(eventually([&] {
        return run("ip -n " + u.net.node(i) + " route show").out.find(want) != std::string::npos;
      })) << want
          << "\n"
          << run("ip -n " + u.net.node(i) + " route show").out << agents.log(i);
    }
  }
  expectEveryPodPingsEveryOther(u, subnets);
  // A route deleted by hand comes back at the next check (Flannel's host-gw route check).
  const std::string route1 = subnets[1].str() + " via 10.98.0.11 dev ul0";
  ASSERT_TRUE(sh("ip -n " + u.net.node(0) + " route del " + subnets[1].str()));
  EXPECT_TRUE(eventually([&] {
    return run("ip -n " + u.net.node(0) + " route show").out.find(route1) != std::string::npos;
  })) << agents.log(0);
  // Node 2 leaves (its lease deleted): the others drop its route, and only that.
  agents.stop(2);
  const std::string key = "/coreos.com/network/subnets/" + formatAddr(subnets[2].base) + "-" +
                          std::to_string(subnets[2].prefix);
  ASSERT_FALSE(
      u.etcd->post("/v3/kv/deleterange", R"({"key":")" + agent::base64Encode(key) + R"("})")
          .empty());
  EXPECT_TRUE(eventually([&] {
    return run("ip -n " + u.net.node(0) + " route show").out.find(subnets[2].str()) ==
           std::string::npos;
  }));
  const std::string routes0 = run("ip -n " + u.net.node(0) + " route show").out;
  EXPECT_NE(routes0.find("192.0.2.0/24 via 10.98.0.11 dev ul0"), std::string::npos) << routes0;
  EXPECT_NE(routes0.find(subnets[1].str() + " via 10.98.0.11 dev ul0"), std::string::npos)
      << routes0;
  EXPECT_TRUE(pingFrom(u.net.node(0), podOn(subnets[0]), podOn(subnets[1])));
}

// --ip-masq: a pod's traffic to an address outside the pod network leaves with the node's
// address (the underlay host 10.98.0.1 has no route to the pods, so only a masqueraded ping
// is answered); pod-to-pod traffic between nodes keeps the pod's address (counted by source
// on the receiving node).
TEST(Overlay, MasqueradesOnlyTrafficLeavingThePodNetwork) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kNodes = 2;
  EtcdUnderlay u(kNodes, R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  AgentNodes agents(u.net, *u.etcd, kNodes, 60, "--ip-masq");
  const std::vector<Cidr> subnets = subnetsWithPods(u, agents, kNodes);
  ASSERT_EQ(subnets.size(), size_t{kNodes});
  for (int i = 0; i < kNodes; ++i) {
    EXPECT_NE(agents.subnetEnv(i).find("FLANNEL_IPMASQ=true\n"), std::string::npos);
    ASSERT_TRUE(eventually([&] {
      return run("ip -n " + u.net.node(i) + " route show dev flannel.1")
                 .out.find(subnets[static_cast<size_t>(1 - i)].str()) != std::string::npos;
    })) << agents.log(i);
  }
  const std::string table =
      run("ip netns exec " + u.net.node(0) + " nft list table inet zonewall-masq").out;
  for (const std::string& want : std::vector<std::string>{
           "type nat hook postrouting priority srcnat; policy accept;",
           "meta mark & 0x00004000 == 0x00004000 return",
           "ip saddr " + subnets[0].str() + " ip daddr 10.244.0.0/16 return",
           "ip saddr 10.244.0.0/16 ip daddr " + subnets[0].str() + " return",
           "ip saddr != " + subnets[0].str() + " ip daddr 10.244.0.0/16 return",
           "ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random"}) {
    EXPECT_NE(table.find(want), std::string::npos) << want << "\n" << table;
  }
  // Leaving the pod network: masqueraded, so answered.
  EXPECT_TRUE(pingFrom(u.net.node(0), podOn(subnets[0]), "10.98.0.1")) << table;
  // Pod to pod: the source address arrives as it left.
  ASSERT_TRUE(
      sh(fmt::format("echo 'table inet zwtest {{ chain in {{ type filter hook input "
                     "priority 0; ip saddr {} counter; }}; }}' | ip netns exec {} nft -f -",
                     podOn(subnets[0]), u.net.node(1))));
  EXPECT_TRUE(pingFrom(u.net.node(0), podOn(subnets[0]), podOn(subnets[1])));
  const std::string counted =
      run("ip netns exec " + u.net.node(1) + " nft list table inet zwtest").out;
  EXPECT_NE(counted.find("counter packets 1 "), std::string::npos) << counted;
  // Without the table nothing answers: the check above could fail.
  ASSERT_TRUE(sh("ip netns exec " + u.net.node(0) + " nft delete table inet zonewall-masq"));
  EXPECT_FALSE(pingFrom(u.net.node(0), podOn(subnets[0]), "10.98.0.1"));
}

// A lease whose node died is not renewed: after its TTL etcd frees the subnet, every other
// node drops its routes, and a node that joins later takes that subnet (the network has room
// for two) and is routed to in its place. While the network is full, a third node says so.
TEST(Overlay, AnExpiredLeaseIsFreedAndTakenByANewNode) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kTtl = 4;
  EtcdUnderlay u(3, R"({"Network": "10.244.0.0/16", "SubnetMin": "10.244.1.0", )"
                    R"("SubnetMax": "10.244.2.0", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  AgentNodes agents(u.net, *u.etcd, 2, kTtl);
  const std::vector<Cidr> subnets = subnetsWithPods(u, agents, 2);
  ASSERT_EQ(subnets.size(), size_t{2});
  auto routes = [&](int i) { return run("ip -n " + u.net.node(i) + " route show").out; };
  ASSERT_TRUE(eventually([&] { return routes(1).find(subnets[0].str()) != std::string::npos; }));
  // A third node finds the network full, says so and exits.
  agents.start(2, *u.etcd);
  EXPECT_TRUE(eventually([&] { return agents.log(2).find("out of subnets") != std::string::npos; }))
      << agents.log(2);
  EXPECT_FALSE(agents.subnet(2).has_value());
  // Node 0 dies without a word: nothing renews its lease.
  agents.stop(0, SIGKILL);
  EXPECT_TRUE(eventually([&] { return routes(1).find(subnets[0].str()) == std::string::npos; },
                         std::chrono::seconds(kTtl * 3)))
      << routes(1) << agents.log(1);
  // Node 2 joins now and gets the freed subnet; node 1 routes it to node 2's VTEP.
  agents.stop(2);
  agents.start(2, *u.etcd);
  ASSERT_TRUE(eventually([&] { return agents.subnet(2).has_value(); })) << agents.log(2);
  EXPECT_EQ(*agents.subnet(2), subnets[0]);
  ASSERT_TRUE(sh(fmt::format("ip -n {} addr add {}/32 dev lo", u.net.node(2), podOn(subnets[0]))));
  EXPECT_TRUE(eventually([&] { return routes(1).find(subnets[0].str()) != std::string::npos; }))
      << routes(1) << agents.log(1);
  const std::string fdb =
      run("ip netns exec " + u.net.node(1) + " bridge fdb show dev flannel.1").out;
  EXPECT_NE(fdb.find("dst " + Underlay::publicIp(2)), std::string::npos) << fdb;
  EXPECT_EQ(fdb.find("dst " + Underlay::publicIp(0)), std::string::npos) << fdb;
  EXPECT_TRUE(pingFrom(u.net.node(1), podOn(subnets[1]), podOn(subnets[0])));
}

std::string flanneldBinary() {
  if (const char* f = std::getenv("ZONEWALL_FLANNELD"); f != nullptr && *f != '\0') return f;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") +
         "/.cache/zonewall/flannel/v0.28.10/bin/flanneld";
}

// The interoperability claim: a node running Flannel's own flanneld (built from the Go module
// proxy by scripts/flannel/build.sh) and nodes running zonewall-agent share one etcd network.
// Each side reads the other's leases (flanneld's lease is parsed by the agents, theirs by
// flanneld), routes to it over flannel.1, and pods on either kind of node reach the others.
TEST(Overlay, FlanneldAndZonewallNodesShareOneNetwork) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  if (!std::filesystem::exists(flanneldBinary())) {
    if (inCi()) FAIL() << "no " << flanneldBinary() << " (scripts/flannel/build.sh, make test)";
    GTEST_SKIP() << "no " << flanneldBinary() << ": make flannel builds it";
  }
  constexpr int kNodes = 3;  // 0, 1: zonewall-agent; 2: flanneld
  EtcdUnderlay u(kNodes, R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  TempDir dir;
  const std::string flannel_env = (dir.path() / "subnet.env").string();
  const std::string flannel_log = (dir.path() / "flanneld.log").string();
  const pid_t flanneld = std::stoi(
      run(fmt::format("ip netns exec {} {} --etcd-endpoints {} --iface ul0 --public-ip {} "
                      "--subnet-file {} --iptables-forward-rules=false >{} 2>&1 & echo $!",
                      u.net.node(2), flanneldBinary(), u.etcd->endpoint().url,
                      Underlay::publicIp(2), flannel_env, flannel_log))
          .out);
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      for (int k = 0; k < 50 && kill(pid, 0) == 0; ++k) std::this_thread::sleep_for(100ms);
      kill(pid, SIGKILL);
    }
  } reap{flanneld};
  auto flannelLog = [&] {
    std::ifstream in(flannel_log);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  ASSERT_TRUE(eventually([&] { return agent::previousSubnet(flannel_env).has_value(); }, 30s))
      << flannelLog();
  AgentNodes agents(u.net, *u.etcd, 2);
  std::vector<Cidr> subnets = subnetsWithPods(u, agents, 2);
  ASSERT_EQ(subnets.size(), size_t{2});
  subnets.push_back(*agent::previousSubnet(flannel_env));
  ASSERT_TRUE(sh(fmt::format("ip -n {} addr add {}/32 dev lo", u.net.node(2), podOn(subnets[2]))));
  // Both kinds of lease are the same JSON object shape in etcd.
  auto all =
      inNetns(u.net.underlay(), [&] { return EtcdSubnetManager(u.etcd->endpoint()).leases(); });
  ASSERT_TRUE(all.has_value()) << all.error().str();
  ASSERT_EQ(all->first.size(), size_t{kNodes});
  for (const SubnetLease& l : all->first) {
    EXPECT_EQ(l.attrs.backend_type, "vxlan") << l.key();
    auto data = nlohmann::json::parse(l.attrs.backend_data, nullptr, false);
    EXPECT_TRUE(data.is_object() && data.contains("VtepMAC") && data.value("VNI", 0) == 1)
        << l.key() << ": " << l.attrs.backend_data;
  }
  // Every node routes to every other node's subnet over flannel.1 ...
  for (int i = 0; i < kNodes; ++i) {
    for (int j = 0; j < kNodes; ++j) {
      if (i == j) continue;
      EXPECT_TRUE(eventually(
          [&] {
            return run("ip -n " + u.net.node(i) + " route show dev flannel.1")
                       .out.find(subnets[static_cast<size_t>(j)].str()) != std::string::npos;
          },
          20s))
          << i << " -> " << j << "\n"
          << run("ip -n " + u.net.node(i) + " route show").out
          << (i == 2 ? flannelLog() : agents.log(i));
    }
  }
  // ... and pods on either kind of node reach the others.
  expectEveryPodPingsEveryOther(u, subnets);
}

// Dual stack (EnableIPv6): each node leases an IPv4 and an IPv6 subnet in one key
// (`<v4>-<len>&<v6>-<len>`), publishes PublicIPv6 and BackendV6Data, and runs flannel-v6.1
// beside flannel.1 (its own VTEP, the IPv6 underlay); pods ping each other over both. Remove
// a node's lease: both families' routes go.
TEST(Overlay, DualStackVxlanRoutesBothFamilies) {
  ZW_REQUIRE_ROOT_AND_ETCD();
  constexpr int kNodes = 2;
  EtcdUnderlay u(kNodes, R"({"EnableIPv6": true, "Network": "10.244.0.0/16", )"
                         R"("IPv6Network": "fd00:10:244::/48", "Backend": {"Type": "vxlan"}})");
  ASSERT_TRUE(u.ok);
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(
        sh(fmt::format("ip -n {} addr add fd00:98::{}/64 dev ul0 nodad", u.net.node(i), 10 + i)));
  }
  AgentNodes agents(u.net, *u.etcd, kNodes, 60, "--overlay-check-interval 1");
  const std::vector<Cidr> subnets = subnetsWithPods(u, agents, kNodes);
  ASSERT_EQ(subnets.size(), size_t{kNodes});
  std::vector<Cidr> subnets6;
  for (int i = 0; i < kNodes; ++i) {
    const std::string env = agents.subnetEnv(i);
    const std::string key = "FLANNEL_IPV6_SUBNET=";
    const size_t at = env.find(key);
    ASSERT_NE(at, std::string::npos) << env << agents.log(i);
    auto first = parseCidr(env.substr(at + key.size(), env.find('\n', at) - at - key.size()));
    ASSERT_TRUE(first.has_value()) << env;
    subnets6.push_back(first->cidr);  // the subnet, its host bits (::1) masked
    EXPECT_NE(env.find("FLANNEL_IPV6_NETWORK=fd00:10:244::/48\n"), std::string::npos) << env;
    // What fits both tunnels: flannel-v6.1's 1500 - 70.
    EXPECT_NE(env.find("FLANNEL_MTU=1430\n"), std::string::npos) << env;
    ASSERT_TRUE(sh(fmt::format("ip -n {} addr add {}/128 dev lo nodad", u.net.node(i),
                               formatAddr(Addr{subnets6.back().base.v + 2}))));
  }
  for (int i = 0; i < kNodes; ++i) {
    const Cidr& other6 = subnets6[static_cast<size_t>(1 - i)];
    EXPECT_TRUE(eventually([&] {
      return run("ip -n " + u.net.node(i) + " -6 route show dev flannel-v6.1")
                 .out.find(other6.str()) != std::string::npos;
    })) << run("ip -n " + u.net.node(i) + " -6 route show").out
        << agents.log(i);
    const std::string fdb =
        run("ip netns exec " + u.net.node(i) + " bridge fdb show dev flannel-v6.1").out;
    EXPECT_NE(fdb.find(fmt::format("dst fd00:98::{}", 10 + (1 - i))), std::string::npos) << fdb;
  }
  expectEveryPodPingsEveryOther(u, subnets);
  for (int a = 0; a < kNodes; ++a) {
    const std::string from = formatAddr(Addr{subnets6[static_cast<size_t>(a)].base.v + 2});
    const std::string to = formatAddr(Addr{subnets6[static_cast<size_t>(1 - a)].base.v + 2});
    EXPECT_TRUE(
        sh(fmt::format("ip netns exec {} ping -6 -c1 -W2 -I {} {}", u.net.node(a), from, to)))
        << from << " -> " << to;
  }
  // An FDB entry and a neighbour deleted by hand come back at the next check.
  auto fdb0 = [&] {
    return run("ip netns exec " + u.net.node(0) + " bridge fdb show dev flannel-v6.1").out;
  };
  const size_t at = fdb0().find(" dst fd00:98::11");
  ASSERT_NE(at, std::string::npos) << fdb0();
  const std::string mac1 = fdb0().substr(fdb0().rfind('\n', at) + 1, 17);
  ASSERT_TRUE(sh(fmt::format("ip netns exec {} bridge fdb del {} dev flannel-v6.1 dst fd00:98::11",
                             u.net.node(0), mac1)));
  ASSERT_TRUE(sh(fmt::format("ip -n {} -6 neigh del {} dev flannel-v6.1", u.net.node(0),
                             formatAddr(subnets6[1].base))));
  EXPECT_TRUE(eventually([&] {
    return fdb0().find(mac1 + " dst fd00:98::11") != std::string::npos &&
           run("ip -n " + u.net.node(0) + " -6 neigh show dev flannel-v6.1")
                   .out.find(formatAddr(subnets6[1].base) + " lladdr " + mac1) != std::string::npos;
  })) << fdb0()
      << agents.log(0);
  // Node 1 leaves: node 0 drops both its routes.
  agents.stop(1);
  const std::string key =
      fmt::format("/coreos.com/network/subnets/{}-{}&{}-{}", formatAddr(subnets[1].base),
                  subnets[1].prefix, formatAddr(subnets6[1].base), subnets6[1].prefix);
  ASSERT_FALSE(
      u.etcd->post("/v3/kv/deleterange", R"({"key":")" + agent::base64Encode(key) + R"("})")
          .empty());
  EXPECT_TRUE(eventually([&] {
    return run("ip -n " + u.net.node(0) + " -6 route show dev flannel-v6.1")
                   .out.find(subnets6[1].str()) == std::string::npos &&
           run("ip -n " + u.net.node(0) + " route show dev flannel.1").out.find(subnets[1].str()) ==
               std::string::npos;
  })) << agents.log(0);
}

}  // namespace
}  // namespace zonewall::testing
