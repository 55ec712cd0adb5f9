// Flannel's subnet layer as zonewall reads and writes it: the network config and its defaults
// (flannel-io/flannel pkg/subnet/config_test.go), the lease keys (pkg/subnet/subnet_test.go),
// the lease JSON (pkg/lease LeaseAttrs as Go marshals it) and subnet.env (WriteSubnetFile).
#include "zonewall/agent/leases.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_support.h"
#include "zonewall/agent/kube.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/agent/node_network.h"

namespace zonewall::agent {
namespace {

NetworkConfig parsed(const std::string& text) {
  auto c = parseNetworkConfig(text);
  EXPECT_TRUE(c.has_value()) << text << ": " << (c ? "" : c.error().message);
  return c.value_or(NetworkConfig{});
}

std::string refused(const std::string& text) {
  auto c = parseNetworkConfig(text);
  EXPECT_FALSE(c.has_value()) << text;
  return c ? "" : c.error().message;
}

// config_test.go TestConfigDefaults: lowercase field names read like Go's encoding/json does.
TEST(FlannelConfig, Defaults) {
  NetworkConfig c = parsed(R"({ "network": "10.3.0.0/16" })");
  EXPECT_EQ(c.network.str(), "10.3.0.0/16");
  EXPECT_EQ(formatAddr(c.subnet_min), "10.3.1.0");
  EXPECT_EQ(formatAddr(c.subnet_max), "10.3.255.0");
  EXPECT_EQ(c.subnet_len, 24);
  EXPECT_EQ(c.backend_type, "udp");  // Flannel's default when Backend is absent
}

// TestIPv6ConfigDefaults.
TEST(FlannelConfig, Ipv6Defaults) {
  NetworkConfig c =
      parsed(R"({ "enableIPv6": true, "ipv6Network": "fc00::/48", "enableIPv4": false })");
  EXPECT_EQ(c.ipv6_network.str(), "fc00::/48");
  EXPECT_EQ(formatAddr(c.ipv6_subnet_min), "fc00:0:0:1::");
  EXPECT_EQ(formatAddr(c.ipv6_subnet_max), "fc00:0:0:ffff::");
  EXPECT_EQ(c.ipv6_subnet_len, 64);
}

// TestConfigOverrides, TestIPv6ConfigOverrides.
TEST(FlannelConfig, Overrides) {
  NetworkConfig c =
      parsed(R"({ "Network": "10.3.0.0/16", "SubnetMin": "10.3.5.0", "SubnetMax": "10.3.8.0", )"
             R"("SubnetLen": 28 })");
  EXPECT_EQ(formatAddr(c.subnet_min), "10.3.5.0");
  EXPECT_EQ(formatAddr(c.subnet_max), "10.3.8.0");
  EXPECT_EQ(c.subnet_len, 28);
  NetworkConfig c6 = parsed(
      R"({ "EnableIPv6": true, "IPv6Network": "fc00::/48", "IPv6SubnetMin": "fc00:0:0:1::", )"
      R"("IPv6SubnetMax": "fc00:0:0:f::", "IPv6SubnetLen": 124, "enableIPv4": false })");
  EXPECT_EQ(formatAddr(c6.ipv6_subnet_min), "fc00:0:0:1::");
  EXPECT_EQ(formatAddr(c6.ipv6_subnet_max), "fc00:0:0:f::");
  EXPECT_EQ(c6.ipv6_subnet_len, 124);
}

// CheckNetworkConfig's smaller networks and its errors, word for word.
TEST(FlannelConfig, SmallNetworksAndErrors) {
  EXPECT_EQ(parsed(R"({"Network": "10.3.0.0/26"})").subnet_len, 28);  // four per network
  EXPECT_EQ(refused(R"({"Network": "10.3.0.0/29"})"),
            "network is too small. Minimum useful network prefix is /28");
  EXPECT_EQ(refused(R"({"Network": "10.3.0.0/16", "SubnetLen": 31})"),
            "SubnetLen must be less than /31");
  EXPECT_EQ(refused(R"({"Network": "10.3.0.0/16", "SubnetLen": 17})"),
            "network must be able to accommodate at least four subnets");
  EXPECT_EQ(refused(R"({"Network": "10.3.0.0/16", "SubnetMin": "10.4.0.0"})"),
            "SubnetMin is not in the range of the Network");
  EXPECT_EQ(refused(R"({"Network": "10.3.0.0/16", "SubnetMin": "10.3.0.128"})"),
            "SubnetMin is not on a SubnetLen boundary: 10.3.0.128");
  EXPECT_EQ(refused(R"({"SubnetLen": 24})"),
            "please define a correct Network parameter in the flannel config");
  NetworkConfig vx = parsed(
      R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 4, "Port": 4789}})");
  EXPECT_EQ(vx.backend_type, "vxlan");
  EXPECT_EQ(vx.vni, 4);
  EXPECT_EQ(vx.port, 4789);
}

// subnet_test.go TestSubnetNodev4/v6: keys round-trip.
TEST(FlannelKeys, MakeAndParse) {
  std::optional<Cidr> v4;
  std::optional<Cidr> v6;
  ASSERT_TRUE(parseSubnetKey("10.12.13.0-24", v4, v6));
  EXPECT_EQ(v4->str(), "10.12.13.0/24");
  EXPECT_FALSE(v6);
  EXPECT_EQ(subnetKey(v4, v6), "10.12.13.0-24");
  ASSERT_TRUE(parseSubnetKey("/coreos.com/network/subnets/10.12.13.0-24&fd00:12:13::-56", v4, v6));
  EXPECT_EQ(v4->str(), "10.12.13.0/24");
  EXPECT_EQ(v6->str(), "fd00:12:13::/56");
  EXPECT_EQ(subnetKey(v4, v6), "10.12.13.0-24&fd00:12:13::-56");
  EXPECT_FALSE(parseSubnetKey("10.12.13.0", v4, v6));
  EXPECT_FALSE(parseSubnetKey("10.12.13.5-24", v4, v6));  // not a subnet's own address
}

// lease.LeaseAttrs as encoding/json writes it: PublicIPv6 null when absent, BackendData raw.
TEST(FlannelLease, AttrsJson) {
  LeaseAttrs a;
  a.public_ip = *parseAddr("192.168.1.10");
  a.backend_type = "vxlan";
  a.backend_data = R"({"VNI":1,"VtepMAC":"9a:be:2f:3c:aa:01"})";
  EXPECT_EQ(a.toJson(), R"({"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"vxlan",)"
                        R"("BackendData":{"VNI":1,"VtepMAC":"9a:be:2f:3c:aa:01"}})");
  auto back = LeaseAttrs::fromJson(a.toJson());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, a);
  // What a flanneld node writes reads back too (field names are Go's).
  auto theirs = LeaseAttrs::fromJson(
      R"({"PublicIP":"192.168.1.11","PublicIPv6":"fd00::11","BackendType":"vxlan",)"
      R"("BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"},)"
      R"("BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:fe"}})");
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(formatAddr(*theirs->public_ipv6), "fd00::11");
  EXPECT_EQ(theirs->backend_v6_data, R"({"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:fe"})");
}

// WriteSubnetFile: the subnet's first host address; written whole or not at all.
TEST(FlannelSubnetEnv, WrittenAsFlannelDoes) {
  testing::TempDir dir;
  NetworkConfig c = parsed(
      R"({"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56"})");
  SubnetLease l;
  l.subnet = Cidr{*parseAddr("10.244.7.0"), 24, Family::kV4};
  l.ipv6_subnet = Cidr{*parseAddr("fd00:10:244:7::"), 64, Family::kV6};
  const std::string path = (dir.path() / "subnet.env").string();
  ASSERT_TRUE(writeSubnetEnv(path, c, l, 1450, true).has_value());
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(),
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\n"
            "FLANNEL_IPV6_NETWORK=fd00:10:244::/56\nFLANNEL_IPV6_SUBNET=fd00:10:244:7::1/64\n"
            "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n");
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto prev = previousSubnet(path);
  ASSERT_TRUE(prev.has_value());
  EXPECT_EQ(prev->str(), "10.244.7.0/24");
}

}  // namespace
}  // namespace zonewall::agent

namespace zonewall::testing {
namespace {

// Flannel's own cases for the kube subnet manager's annotation prefix
// (pkg/subnet/kube/annotations_test.go).
TEST(FlannelKube, AnnotationPrefixAsFlannelReadsIt) {
  const std::pair<const char*, const char*> kOk[] = {
      {"flannel.alpha.coreos.com", "flannel.alpha.coreos.com/"},
      {"flannel.alpha.coreos.com/", "flannel.alpha.coreos.com/"},
      {"flannel.alpha.coreos.com/prefix", "flannel.alpha.coreos.com/prefix-"},
      {"flannel.alpha.coreos.com/prefix-", "flannel.alpha.coreos.com/prefix-"},
      {"org.com", "org.com/"},
      {"org9.com", "org9.com/"},
      {"org.com/9", "org.com/9-"},
  };
  for (const auto& [given, want] : kOk) {
    auto p = agent::annotationPrefix(given);
    ASSERT_TRUE(p.has_value()) << given << ": " << p.error().str();
    EXPECT_EQ(*p + "backend-type", std::string(want) + "backend-type") << given;
  }
  for (const char* bad : {"org", "org/", "org/prefix", "org.COM", "org.com/PREFIX"}) {
    auto p = agent::annotationPrefix(bad);
    ASSERT_FALSE(p.has_value()) << bad;
    EXPECT_NE(p.error().message.find("prefix must be in a format"), std::string::npos);
  }
  EXPECT_NE(agent::annotationPrefix("a.b/c/d").error().message.find("at most single slash"),
            std::string::npos);
}

// --iface as flanneld takes it: a name, or an address one interface holds.
TEST(FlannelIface, ByNameOrByAddress) {
  auto by_name = agent::lookupExternalInterface("lo");
  ASSERT_TRUE(by_name.has_value()) << by_name.error().str();
  EXPECT_EQ(formatAddr(by_name->addr), "127.0.0.1");
  auto by_addr = agent::lookupExternalInterface("127.0.0.1");
  ASSERT_TRUE(by_addr.has_value()) << by_addr.error().str();
  EXPECT_EQ(by_addr->name, "lo");
  auto none = agent::lookupExternalInterface("zw-no-such0");
  ASSERT_FALSE(none.has_value());
  EXPECT_NE(none.error().message.find("zw-no-such0"), std::string::npos);
  EXPECT_FALSE(agent::lookupExternalInterface("192.0.2.254").has_value());
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// A single node (the embedded default): the subnet from configuration, subnet.env written as
// Flannel writes it, no datastore and no overlay (nothing here needs root).
TEST(StaticSubnets, OneNodeWritesSubnetEnvAndNothingElse) {
  TempDir dir;
  agent::NetworkConfig config;
  config.network = parseCidr("10.244.0.0/16")->cidr;
  config.subnet_len = 24;
  agent::Metrics metrics;
  agent::NodeNetworkOptions options;
  options.subnet_file = (dir.path() / "run" / "subnet.env").string();
  auto n = agent::NodeNetwork::start(
      agent::staticSubnetManager(config, parseCidr("10.244.7.0/24")->cidr), options, metrics);
  ASSERT_TRUE(n.has_value()) << n.error().str();
  EXPECT_EQ((*n)->lease().subnet, parseCidr("10.244.7.0/24")->cidr);
  std::ifstream in(options.subnet_file);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(),
            "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1500\n"
            "FLANNEL_IPMASQ=false\n");
  n->reset();
  auto outside = agent::NodeNetwork::start(
      agent::staticSubnetManager(config, parseCidr("10.9.0.0/24")->cidr), options, metrics);
  ASSERT_FALSE(outside.has_value());
  EXPECT_EQ(outside.error().message, "subnet 10.9.0.0/24 is not inside the network 10.244.0.0/16");
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// A net-conf.json that is not JSON is refused at its line and column, named by its path; one
// that is JSON but wrong, by the field, as Flannel says it.
TEST(FlannelConfig, BadNetConfNamesFileLineAndColumn) {
  TempDir dir;
  const std::string path = (dir.path() / "net-conf.json").string();
  std::ofstream(path)
      << "{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": {\"Type\" \"vxlan\"}\n}\n";
  agent::KubeConfig kube{.server = "https://127.0.0.1:1"};
  agent::Metrics metrics;
  auto m = agent::kubeSubnetManager(kube, {.node = "n", .net_conf = path}, metrics);
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().loc.file, path);
  EXPECT_EQ(m.error().loc.line, 3);
  EXPECT_EQ(m.error().loc.col, 28);  // the end of the token that broke it ("vxlan")
  EXPECT_EQ(m.error().str().find(path + ":3:28: error parsing subnet config: network config is "
                                        "not JSON: syntax error while parsing object separator"),
            0u)
      << m.error().str();
  std::ofstream(path, std::ios::trunc) << R"({"Network": "10.3.0.0/29"})";
  auto small = agent::kubeSubnetManager(kube, {.node = "n", .net_conf = path}, metrics);
  ASSERT_FALSE(small.has_value());
  EXPECT_EQ(small.error().str(), path +
                                     ": error parsing subnet config: network is too small. "
                                     "Minimum useful network prefix is /28");
  auto missing = agent::kubeSubnetManager(kube, {.node = "n", .net_conf = path + ".gone"}, metrics);
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().str().find(path + ".gone"), std::string::npos);
}

}  // namespace
}  // namespace zonewall::testing

namespace zonewall::testing {
namespace {

// deploy/ wires the agent and the CNI plugin to one subnet.env: the path the DaemonSet tells
// the agent to write is the path the ConfigMap's conflist tells the plugin to read, and the
// network config file it names is the ConfigMap's net-conf.json (a valid Flannel config).
TEST(Deploy, AgentAndPluginShareSubnetEnvAndNetConf) {
  auto doc = [](const char* name) { return YAML::LoadFile(sourceDir() + "/deploy/" + name); };
  const YAML::Node config = doc("configmap.yaml");
  const auto conflist =
      nlohmann::json::parse(config["data"]["10-zonewall.conflist"].as<std::string>());
  const std::string plugin_reads = conflist["plugins"][0]["ipam"]["subnetFile"];
  std::string agent_writes, net_conf;
  const YAML::Node ds = doc("daemonset.yaml");
  for (const auto& arg : ds["spec"]["template"]["spec"]["containers"][0]["args"]) {
    const std::string a = arg.as<std::string>();
    if (a.starts_with("--subnet-file=")) agent_writes = a.substr(a.find('=') + 1);
    if (a.starts_with("--net-config-path=")) net_conf = a.substr(a.find('=') + 1);
  }
  EXPECT_EQ(plugin_reads, agent_writes);
  EXPECT_EQ(agent_writes, agent::NodeNetworkOptions{}.subnet_file) << "Flannel's own path";
  EXPECT_EQ(net_conf, "/etc/zonewall/net-conf.json");  // the ConfigMap mounted at /etc/zonewall
  auto parsed = agent::parseNetworkConfig(config["data"]["net-conf.json"].as<std::string>());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().str();
  EXPECT_EQ(parsed->backend_type, "vxlan");
}

}  // namespace
}  // namespace zonewall::testing
