// zonewall-cni exec'd directly in a node netns, against the real kernel: every command, the
// DEL edge cases, CHECK, GC, STATUS, real packets between pods (IPv4 and IPv6), parallel
// ADDs, kills at random points, and two nodes with routes between their subnets.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "cni_harness.h"
#include "zonewall/policy/model.h"

namespace zonewall::testing {
namespace {

using nlohmann::json;

std::string ipOf(const json& result, int family) {
  for (const json& ip : result["ips"]) {
    std::string a = ip["address"];
    bool v6 = a.find(':') != std::string::npos;
    if ((family == 6) == v6) return a.substr(0, a.find('/'));
  }
  return "";
}

bool ping(const std::string& from_netns, const std::string& ip) {
  bool v6 = ip.find(':') != std::string::npos;
  return CniNode::inNs(from_netns, std::string("ping ") + (v6 ? "-6 " : "") + "-c1 -W2 " + ip);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json withPrev(const std::string& conf, const json& prev) {
  json c = json::parse(conf);
  c["prevResult"] = prev;
  return c;
}

#define NEW_NODE(var, ...)  \
  ZONEWALL_REQUIRE_ROOT();  \
  CniNode var(__VA_ARGS__); \
  ASSERT_TRUE(var.ok()) << "node netns"

// ADD wires two dual-stack pods that reach each other; CHECK passes on them and fails once a
// route is gone; DEL removes everything and can be repeated, with or without the netns.
TEST(CniKernel, AddCheckDelWithRealPackets) {
  NEW_NODE(node, "a", {"10.244.1.0/24", "fd00:1::/64"});
  std::string p1 = node.newPod();
  std::string p2 = node.newPod();
  PluginRun a1 = node.add("c1", p1, "bank/web-0");
  ASSERT_EQ(a1.exit_code, 0) << a1.out;
  PluginRun a2 = node.add("c2", p2, "bank/db-0");
  ASSERT_EQ(a2.exit_code, 0) << a2.out;
  json r1 = a1.json();
  json r2 = a2.json();
  EXPECT_EQ(r1["cniVersion"], "1.0.0");
  EXPECT_EQ(r1["interfaces"][0]["name"], zonewall::hostVethName("bank", "web-0"));
  EXPECT_EQ(r1["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");
  EXPECT_EQ(r1["interfaces"][1]["sandbox"], p1);
  EXPECT_EQ(r1["ips"][0]["address"], "10.244.1.1/32");
  EXPECT_EQ(r2["ips"][0]["address"], "10.244.1.2/32");
  EXPECT_EQ(r2["ips"][1]["address"], "fd00:1::2/128");

  EXPECT_TRUE(ping(p1, ipOf(r2, 4)));
  EXPECT_TRUE(ping(p2, ipOf(r1, 4)));
  EXPECT_TRUE(ping(p1, ipOf(r2, 6)));
  EXPECT_TRUE(ping(p2, ipOf(r1, 6)));
  std::string host_routes = node.nodeOut("ip route show 10.244.1.1");
  EXPECT_NE(host_routes.find("dev " + zonewall::hostVethName("bank", "web-0") + " scope link"),
            std::string::npos)
      << host_routes;
  EXPECT_EQ(node.nodeOut("cat /proc/sys/net/ipv4/conf/" + zonewall::hostVethName("bank", "web-0") +
                         "/proxy_arp"),
            "1\n");

  // The endpoint record for the agent.
  json rj = json::parse(slurp(node.endpointsDir() + "/zwtest:c1:eth0.json"), nullptr, false);
  EXPECT_EQ(rj["namespace"], "bank");
  EXPECT_EQ(rj["pod"], "web-0");
  EXPECT_EQ(rj["ips"], json::parse(R"(["10.244.1.1","fd00:1::1"])"));

  std::string args1 = "K8S_POD_NAMESPACE=bank;K8S_POD_NAME=web-0";
  PluginRun check =
      node.exec(CniNode::env("CHECK", "c1", p1, "eth0", args1), withPrev(node.conf(), r1).dump());
  EXPECT_EQ(check.exit_code, 0) << check.out;
  EXPECT_EQ(check.out, "");
  // A later plugin in the chain may change things CHECK must tolerate (here: the MTU).
  ASSERT_TRUE(CniNode::inNs(p1, "ip link set eth0 mtu 1400"));
  EXPECT_EQ(
      node.exec(CniNode::env("CHECK", "c1", p1, "eth0", args1), withPrev(node.conf(), r1).dump())
          .exit_code,
      0);

  ASSERT_TRUE(CniNode::inNs(p1, "ip route del default"));
  PluginRun broken =
      node.exec(CniNode::env("CHECK", "c1", p1, "eth0", args1), withPrev(node.conf(), r1).dump());
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_EQ(broken.json()["code"], 100) << broken.out;
  EXPECT_NE(broken.json()["msg"].get<std::string>().find("0.0.0.0/0"), std::string::npos)
      << broken.out;
  // CHECK of an address someone else holds fails too.
  json wrong = r1;
  wrong["ips"][0]["address"] = "10.244.1.2/32";
  ASSERT_TRUE(CniNode::inNs(p1, "ip route add default via 169.254.1.1 dev eth0 onlink"));
  PluginRun stolen = node.exec(CniNode::env("CHECK", "c1", p1, "eth0", args1),
                               withPrev(node.conf(), wrong).dump());
  EXPECT_EQ(stolen.json()["code"], 100) << stolen.out;
  // CHECK without prevResult is a config error.
  EXPECT_EQ(node.exec(CniNode::env("CHECK", "c1", p1, "eth0", args1), node.conf()).json()["code"],
            7);

  PluginRun del =
      node.exec(CniNode::env("DEL", "c1", p1, "eth0", args1), withPrev(node.conf(), r1).dump());
  EXPECT_EQ(del.exit_code, 0) << del.out;
  EXPECT_EQ(node.reservations(), (std::vector<std::string>{"10.244.1.2", "fd00:1::2"}));
  EXPECT_EQ(node.hostVeths(), (std::vector<std::string>{zonewall::hostVethName("bank", "db-0")}));
  EXPECT_FALSE(std::filesystem::exists(node.endpointsDir() + "/zwtest:c1:eth0.json"));
  EXPECT_FALSE(CniNode::inNs(p1, "ip link show eth0"));
  EXPECT_FALSE(ping(p2, ipOf(r1, 4)));
  // Repeated, without netns, without args: still success.
  EXPECT_EQ(node.exec(CniNode::env("DEL", "c1", p1, "eth0", args1), node.conf()).exit_code, 0);
  EXPECT_EQ(node.exec(CniNode::env("DEL", "c1", "", "eth0"), node.conf()).exit_code, 0);

  // DEL after the netns vanished still releases the addresses.
  node.deletePod(p2);
  PluginRun gone = node.exec(CniNode::env("DEL", "c2", p2, "eth0"), node.conf());
  EXPECT_EQ(gone.exit_code, 0) << gone.out;
  EXPECT_TRUE(node.reservations().empty());
  EXPECT_TRUE(node.hostVeths().empty());
}

// ADD into a netns that already has CNI_IFNAME fails cleanly and leaks nothing; the DEL the
// runtime sends after it succeeds and leaves the foreign interface alone.
TEST(CniKernel, AddRefusesAnExistingInterface) {
  NEW_NODE(node, "b", {"10.244.2.0/24"});
  std::string p = node.newPod();
  ASSERT_TRUE(CniNode::inNs(p, "ip link add eth0 type veth peer name other"));
  PluginRun add = node.add("c1", p, "bank/web-0");
  EXPECT_EQ(add.exit_code, 1);
  EXPECT_EQ(add.json()["code"], 101) << add.out;
  EXPECT_TRUE(node.reservations().empty());
  EXPECT_TRUE(node.hostVeths().empty());
  EXPECT_EQ(node.exec(CniNode::env("DEL", "c1", p, "eth0"), node.conf()).exit_code, 0);
  EXPECT_TRUE(CniNode::inNs(p, "ip link show eth0"));
}

// A pod recreated under the same name gets its host veth name back (the old one is replaced),
// and the old sandbox's DEL does not touch the new pod's interface.
TEST(CniKernel, RecreatedPodTakesOverItsHostVeth) {
  NEW_NODE(node, "c", {"10.244.3.0/24"});
  std::string old_ns = node.newPod();
  std::string new_ns = node.newPod();
  ASSERT_EQ(node.add("old", old_ns, "bank/web-0").exit_code, 0);
  PluginRun again = node.add("new", new_ns, "bank/web-0");
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(node.exec(CniNode::env("DEL", "old", old_ns, "eth0",
                                   "K8S_POD_NAMESPACE=bank;K8S_POD_NAME=web-0"),
                      node.conf())
                .exit_code,
            0);
  EXPECT_EQ(node.hostVeths(), (std::vector<std::string>{zonewall::hostVethName("bank", "web-0")}));
  EXPECT_TRUE(CniNode::inNs(new_ns, "ip link show eth0"));
  EXPECT_EQ(node.reservations(), (std::vector<std::string>{"10.244.3.2"}));
}

// GC (1.1) releases every reservation, veth and record that cni.dev/attachments omits.
TEST(CniKernel, GcReleasesWhatIsNotListed) {
  NEW_NODE(node, "d", {"10.244.4.0/24"});
  std::vector<std::string> pods;
  for (int i = 0; i < 3; ++i) {
    pods.push_back(node.newPod());
    ASSERT_EQ(node.add("c" + std::to_string(i), pods.back(), "", "1.1.0").exit_code, 0);
  }
  ASSERT_EQ(node.reservations().size(), 3U);
  json gc = json::parse(node.conf("1.1.0"));
  gc["cni.dev/valid-attachments"] = json::parse(R"([{"containerID":"c1","ifname":"eth0"}])");
  PluginRun r = node.exec({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/usr/lib/cni"}}, gc.dump());
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(node.reservations(), (std::vector<std::string>{"10.244.4.2"}));
  EXPECT_EQ(node.hostVeths(), (std::vector<std::string>{zonewall::hostVethName("c1", "eth0")}));
  auto records = std::distance(std::filesystem::directory_iterator(node.endpointsDir()), {});
  EXPECT_EQ(records, 1);
  EXPECT_TRUE(CniNode::inNs(pods[1], "ip link show eth0"));
  EXPECT_FALSE(CniNode::inNs(pods[0], "ip link show eth0"));
}

// STATUS: 0 while an address is left; 50 when the subnet is full or unknown. ADD reads the
// subnet and MTU from Flannel's subnet.env when the config has no subnet.
TEST(CniKernel, StatusAndTheSubnetFile) {
  NEW_NODE(node, "e", {"10.244.5.0/30"});
  std::map<std::string, std::string> status{{"CNI_COMMAND", "STATUS"},
                                            {"CNI_PATH", "/usr/lib/cni"}};
  EXPECT_EQ(node.exec(status, node.conf("1.1.0")).exit_code, 0);
  std::string p1 = node.newPod();
  std::string p2 = node.newPod();
  std::string p3 = node.newPod();
  ASSERT_EQ(node.add("c1", p1, "", "1.1.0").exit_code, 0);
  ASSERT_EQ(node.add("c2", p2, "", "1.1.0").exit_code, 0);
  PluginRun full = node.exec(status, node.conf("1.1.0"));
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_EQ(full.json()["code"], 50) << full.out;
  PluginRun add3 = node.add("c3", p3, "", "1.1.0");
  EXPECT_EQ(add3.json()["code"], 11) << add3.out;
  EXPECT_FALSE(CniNode::inNs(p3, "ip link show eth0"));
  ASSERT_EQ(node.exec(CniNode::env("DEL", "c1", p1), node.conf("1.1.0")).exit_code, 0);
  EXPECT_EQ(node.exec(status, node.conf("1.1.0")).exit_code, 0);

  TempDir lease;
  std::string file = (lease.path() / "subnet.env").string();
  json from_file = {{"ipam", {{"subnet", nullptr}, {"subnetFile", file}}}};
  PluginRun unknown = node.exec(status, node.conf("1.1.0", from_file));
  EXPECT_EQ(unknown.json()["code"], 50) << unknown.out;
  EXPECT_EQ(node.add("c4", p3, "", "1.1.0").exit_code, 0);  // the config's subnet still works
  lease.write("subnet.env",
              "FLANNEL_NETWORK=10.250.0.0/16\nFLANNEL_SUBNET=10.250.9.1/24\nFLANNEL_MTU=1450\n");
  EXPECT_EQ(node.exec(status, node.conf("1.1.0", from_file)).exit_code, 0);
  std::string p5 = node.newPod();
  PluginRun leased = node.exec(CniNode::env("ADD", "c5", p5), node.conf("1.1.0", from_file));
  ASSERT_EQ(leased.exit_code, 0) << leased.out;
  EXPECT_EQ(leased.json()["ips"][0]["address"], "10.250.9.1/32");
  EXPECT_EQ(leased.json()["interfaces"][1]["mtu"], 1450);
  EXPECT_NE(node.nodeOut("nsenter --net=" + p5 + " ip link show eth0").find("mtu 1450"),
            std::string::npos);
}

// 100 ADDs at once on a /24: 100 distinct addresses, each pod wired. On a /27 the 30 usable
// addresses go to 30 pods and the other 70 get a clean "no address left" (code 11).
TEST(CniKernel, ParallelAddsShareNoAddress) {
  for (auto [subnet, want_ok] :
       {std::pair<const char*, int>{"10.244.6.0/24", 100}, {"10.244.7.0/27", 30}}) {
    SCOPED_TRACE(subnet);
    NEW_NODE(node, want_ok == 100 ? "f" : "g", {subnet});
    std::vector<std::string> pods;
    for (int i = 0; i < 100; ++i) pods.push_back(node.newPod());
    std::vector<PluginProcess> procs;
    for (int i = 0; i < 100; ++i) {
      procs.push_back(
          node.start(CniNode::env("ADD", "c" + std::to_string(i), pods[i]), node.conf()));
    }
    std::set<std::string> ips;
    int ok = 0;
    for (auto& p : procs) {
      PluginRun r = CniNode::finish(p);
      if (r.exit_code == 0) {
        ++ok;
        ips.insert(ipOf(r.json(), 4));
      } else {
        EXPECT_EQ(r.json()["code"], 11) << r.out;
        EXPECT_NE(r.json()["msg"].get<std::string>().find("no address left"), std::string::npos)
            << r.out;
      }
    }
    EXPECT_EQ(ok, want_ok);
    EXPECT_EQ(ips.size(), static_cast<size_t>(want_ok));
    EXPECT_EQ(node.reservations().size(), static_cast<size_t>(want_ok));
    EXPECT_EQ(node.hostVeths().size(), static_cast<size_t>(want_ok));
  }
}

// Plugins SIGKILLed at random points of ADD and DEL, then GC with the attachments whose ADD
// completed: no address is held twice, none leaks, and every surviving pod is intact.
TEST(CniKernel, KilledAtRandomPointsThenGcLeavesNoLeak) {
  NEW_NODE(node, "h", {"10.244.8.0/24"});
  std::mt19937 rng(20261122);
  std::vector<std::string> pods;
  std::map<std::string, std::string> ip_of;  // completed ADDs: cid -> ip
  // The kill window follows this build's ADD time (a sanitizer build is several times slower):
  // kills land anywhere from the exec to a little after ADD would have finished.
  auto t0 = std::chrono::steady_clock::now();
  std::string timing_pod = node.newPod();
  ASSERT_EQ(node.add("timing", timing_pod).exit_code, 0);
  auto add_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_EQ(node.exec(CniNode::env("DEL", "timing", timing_pod), node.conf()).exit_code, 0);
  std::uniform_int_distribution<int> add_window(0, static_cast<int>(add_us * 3 / 2));
  std::uniform_int_distribution<int> del_window(0, static_cast<int>(add_us));
  for (int round = 0; round < 60; ++round) {
    std::string cid = "k" + std::to_string(round);
    pods.push_back(node.newPod());
    PluginProcess p = node.start(CniNode::env("ADD", cid, pods.back()), node.conf("1.1.0"));
    std::this_thread::sleep_for(std::chrono::microseconds(add_window(rng)));
    ::kill(p.pid, SIGKILL);
    PluginRun r = CniNode::finish(p);
    if (r.exit_code == 0) ip_of[cid] = ipOf(r.json(), 4);
    // Every third completed pod is deleted by a DEL that is killed too.
    if (r.exit_code == 0 && round % 3 == 0) {
      PluginProcess d = node.start(CniNode::env("DEL", cid, pods.back()), node.conf("1.1.0"));
      std::this_thread::sleep_for(std::chrono::microseconds(del_window(rng)));
      ::kill(d.pid, SIGKILL);
      CniNode::finish(d);
      ip_of.erase(cid);  // the runtime considers it gone
    }
  }
  json gc = json::parse(node.conf("1.1.0"));
  gc["cni.dev/attachments"] = json::array();
  for (const auto& [cid, ip] : ip_of)
    gc["cni.dev/attachments"].push_back({{"containerID", cid}, {"ifname", "eth0"}});
  PluginRun r = node.exec({{"CNI_COMMAND", "GC"}, {"CNI_PATH", "/usr/lib/cni"}}, gc.dump());
  ASSERT_EQ(r.exit_code, 0) << r.out;

  std::vector<std::string> want;
  for (const auto& [cid, ip] : ip_of) want.push_back(ip);
  std::sort(want.begin(), want.end());
  EXPECT_EQ(node.reservations(), want);  // exactly the live pods' addresses: no leak
  std::set<std::string> distinct(want.begin(), want.end());
  EXPECT_EQ(distinct.size(), want.size());  // and none twice
  EXPECT_EQ(node.hostVeths().size(), ip_of.size());
  EXPECT_GT(ip_of.size(), 0U)
      << "no ADD ever completed: the kill window is too short to test anything";
  EXPECT_LT(ip_of.size(), 40U) << "hardly any kill landed inside ADD/DEL";
  // Fresh ADDs now get addresses nobody holds, and the survivors still answer.
  for (int i = 0; i < 5; ++i) {
    PluginRun add = node.add("fresh" + std::to_string(i), node.newPod());
    ASSERT_EQ(add.exit_code, 0) << add.out;
    EXPECT_FALSE(ip_of.count(ipOf(add.json(), 4)) > 0);
    for (const auto& [cid, ip] : ip_of) EXPECT_NE(ipOf(add.json(), 4), ip) << cid;
  }
}

// Two nodes joined by an underlay veth, each with its own pod subnet and a route to the
// other's: pods on different nodes reach each other.
TEST(CniKernel, TwoNodesRouteBetweenTheirSubnets) {
  NEW_NODE(a, "x", {"10.244.11.0/24"});
  CniNode b("y", {"10.244.12.0/24"});
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(
      CniNode::sh("ip -n " + a.ns() + " link add zwund type veth peer name zwund netns " + b.ns()));
  ASSERT_TRUE(a.inNode("ip addr add 192.168.250.1/30 dev zwund") &&
              a.inNode("ip link set zwund up"));
  ASSERT_TRUE(b.inNode("ip addr add 192.168.250.2/30 dev zwund") &&
              b.inNode("ip link set zwund up"));
  // What the agent will later do with VXLAN: the peer node's subnet via the peer.
  ASSERT_TRUE(a.inNode("ip route add 10.244.12.0/24 via 192.168.250.2"));
  ASSERT_TRUE(b.inNode("ip route add 10.244.11.0/24 via 192.168.250.1"));
  std::string pa = a.newPod();
  std::string pb = b.newPod();
  PluginRun ra = a.add("ca", pa, "bank/web-0");
  PluginRun rb = b.add("cb", pb, "bank/db-0");
  ASSERT_EQ(ra.exit_code, 0) << ra.out;
  ASSERT_EQ(rb.exit_code, 0) << rb.out;
  EXPECT_EQ(ipOf(ra.json(), 4), "10.244.11.1");
  EXPECT_EQ(ipOf(rb.json(), 4), "10.244.12.1");
  EXPECT_TRUE(ping(pa, "10.244.12.1"));
  EXPECT_TRUE(ping(pb, "10.244.11.1"));
  // And TCP, end to end.
  EXPECT_TRUE(CniNode::tcpReaches(pa, pb, 8080, "10.244.12.1:8080"));
}

}  // namespace
}  // namespace zonewall::testing
