// A real CNI client: Debian's libcni (through tests/cni/libcni_driver, built here with
// Debian's Go toolchain, offline) runs a conflist chaining zonewall with Debian's portmap and
// tuning plugins. Two pods reach each other through the node; CHECK passes, then fails once
// the pod's route is gone; DEL (from libcni's cached result) releases everything.
#include <gtest/gtest.h>

#include <thread>

#include "cni_harness.h"
#include "zonewall/policy/model.h"

namespace zonewall::testing {
namespace {

using nlohmann::json;

class Libcni : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!isRoot()) return;
    // GO111MODULE=off: libcni comes from /usr/share/gocode (golang-github-appc-cni-dev),
    // nothing is fetched.
    std::string go = "GO111MODULE=off GOFLAGS= GOPATH=" + tools_->path().string() +
                     ":/usr/share/gocode GOCACHE=" + tools_->path().string() +
                     "/.cache go build -o " + driver() + " " + sourceDir() +
                     "/tests/cni/libcni_driver/main.go 2>&1";
    RunResult built = run(go);
    build_log_ = built.out;
    std::filesystem::create_directories(tools_->path() / "bin");
    // The runtime execs the plugin named by "type": install zonewall-cni as "zonewall".
    std::filesystem::create_symlink(cniBinary(), tools_->path() / "bin" / "zonewall");
  }
  static std::string driver() { return (tools_->path() / "libcni_driver").string(); }

  void SetUp() override {
    ZONEWALL_REQUIRE_ROOT();
    ASSERT_TRUE(std::filesystem::exists(driver())) << "building the libcni driver failed:\n"
                                                   << build_log_;
  }

  // CNI_PATH as a runtime sets it: our plugin first, then Debian's.
  static std::string cniPath() { return (tools_->path() / "bin").string() + ":/usr/lib/cni"; }

  static RunResult drive(const CniNode& node, const std::string& op, const std::string& conflist,
                         const std::string& cid, const std::string& netns, const std::string& cache,
                         const std::string& pod = "", int hostport = 0) {
    std::string mapping = hostport > 0 ? " ZW_HOSTPORT=" + std::to_string(hostport) : "";
    return run("ip netns exec " + node.ns() + " env CNI_PATH=" + cniPath() + mapping + " " +
               driver() + " " + op + " " + conflist + " " + cid + " " + netns + " eth0 " + cache +
               " " + pod + " 2>&1");
  }

  static inline std::unique_ptr<TempDir> tools_ = std::make_unique<TempDir>();
  static inline std::string build_log_;
};

// AddNetworkList / CheckNetworkList / DelNetworkList through libcni, with portmap and tuning
// chained after zonewall; real packets between the two pods.
TEST_F(Libcni, ChainsWithPortmapAndTuning) {
  CniNode node("l", {"10.244.21.0/24", "fd00:21::/64"});
  ASSERT_TRUE(node.ok());
  TempDir work;
  json conflist = {
      {"cniVersion", "1.0.0"},
      {"name", "zwlibcni"},
      {"plugins",
       {{{"type", "zonewall"},
         {"mtu", 1400},
         {"ipam", {{"subnet", {"10.244.21.0/24", "fd00:21::/64"}}, {"dataDir", node.dataDir()}}},
         {"endpointsDir", node.endpointsDir()}},
        {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}, {"snat", false}},
        {{"type", "tuning"}, {"sysctl", {{"net.ipv4.conf.eth0.arp_notify", "1"}}}}}}};
  std::string file = work.write("zw.conflist", conflist.dump()).string();
  std::string cache = (work.path() / "cache").string();

  RunResult validate = drive(node, "validate", file, "-", "-", cache);
  ASSERT_EQ(validate.exit_code, 0) << validate.out;  // VERSION of each plugin, as libcni asks it
  EXPECT_NE(validate.out.find("portMappings"), std::string::npos) << validate.out;

  std::string p1 = node.newPod();
  std::string p2 = node.newPod();
  // pod1 publishes host port 18080 (portmap's capability); pod2 publishes nothing.
  RunResult a1 = drive(node, "add", file, "pod1", p1, cache, "bank/web-0", 18080);
  ASSERT_EQ(a1.exit_code, 0) << a1.out;
  RunResult a2 = drive(node, "add", file, "pod2", p2, cache, "bank/db-0");
  ASSERT_EQ(a2.exit_code, 0) << a2.out;
  json r1 = json::parse(a1.out);
  json r2 = json::parse(a2.out);
  EXPECT_EQ(r1["ips"][0]["address"], "10.244.21.1/32");
  EXPECT_EQ(r2["ips"][0]["address"], "10.244.21.2/32");
  EXPECT_EQ(r1["interfaces"][0]["name"], zonewall::hostVethName("bank", "web-0"));

  // Packets: ICMP and TCP both ways through the node.
  EXPECT_TRUE(CniNode::inNs(p1, "ping -c1 -W2 10.244.21.2"));
  EXPECT_TRUE(CniNode::inNs(p2, "ping -c1 -W2 10.244.21.1"));
  EXPECT_TRUE(CniNode::inNs(p1, "ping -6 -c1 -W2 fd00:21::2"));
  // tuning ran after zonewall, in the pod, on the interface zonewall made; the MTU is ours.
  EXPECT_EQ(run("nsenter --net=" + p1 + " cat /proc/sys/net/ipv4/conf/eth0/arp_notify").out, "1\n");
  EXPECT_NE(run("nsenter --net=" + p1 + " ip link show eth0").out.find("mtu 1400"),
            std::string::npos);
  // portmap ran too: pod2 reaches pod1's port 8080 through the node's host port 18080.
  std::string nat = node.nodeOut("iptables-save -t nat");
  EXPECT_NE(nat.find("10.244.21.1:8080"), std::string::npos) << nat;
  ASSERT_TRUE(node.inNode("ip addr add 192.168.251.1/32 dev zwup"));
  EXPECT_TRUE(CniNode::tcpReaches(p2, p1, 8080, "192.168.251.1:18080"));

  // libcni cached the final (chained) result and CHECK passes on it. (pod2's: Debian's
  // portmap 1.1.1 fails CHECK of any port mapping, looking for its IPv4 rule in ip6tables.)
  RunResult cached = drive(node, "cached", file, "pod2", p2, cache, "bank/db-0");
  ASSERT_EQ(cached.exit_code, 0) << cached.out;
  EXPECT_EQ(json::parse(cached.out)["ips"], r2["ips"]);
  RunResult check = drive(node, "check", file, "pod2", p2, cache, "bank/db-0");
  EXPECT_EQ(check.exit_code, 0) << check.out;
  ASSERT_TRUE(CniNode::inNs(p2, "ip route del default"));
  RunResult broken = drive(node, "check", file, "pod2", p2, cache, "bank/db-0");
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.out.find("route 0.0.0.0/0 via 169.254.1.1 is missing"), std::string::npos)
      << broken.out;

  EXPECT_EQ(drive(node, "del", file, "pod1", p1, cache, "bank/web-0", 18080).exit_code, 0);
  EXPECT_EQ(drive(node, "del", file, "pod2", p2, cache, "bank/db-0").exit_code, 0);
  EXPECT_TRUE(node.reservations().empty());
  EXPECT_TRUE(node.hostVeths().empty());
  EXPECT_EQ(node.nodeOut("iptables-save -t nat").find("10.244.21.1:8080"), std::string::npos);
  // libcni removed its cache entry; a second DEL (no cache any more) still succeeds.
  EXPECT_EQ(drive(node, "del", file, "pod1", p1, cache, "bank/web-0").exit_code, 0);
}

}  // namespace
}  // namespace zonewall::testing
