// IPAM and endpoint records on a scratch directory (no root): subnet.env, ranges, round-robin,
// exhaustion, crash leftovers, and many processes allocating at once.
#include "zonewall/cni/ipam.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "zonewall/cni/endpoint.h"

namespace zonewall::cni {
namespace {

namespace fs = std::filesystem;
using zonewall::Addr;
using zonewall::Cidr;

Cidr cidr(const char* text) { return zonewall::parseCidr(text)->cidr; }
Addr addr(const char* text) { return *zonewall::parseAddr(text); }

class ScratchDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("zwipam-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

Reservation owner(const std::string& cid) {
  return {.container_id = cid, .ifname = "eth0", .pod_name = cid};
}

struct SubnetEnvCase {
  const char* name;
  const char* text;
  std::vector<std::string> subnets;  // empty: an error
  int mtu = 0;
  const char* error_part = "";
};

// Flannel's subnet.env as flanneld writes it, and what is refused (with file:line).
TEST(SubnetEnv, ParsesFlannelsFormat) {
  const SubnetEnvCase cases[] = {
      {.name = "flannel v4",
       .text = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/"
               "24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
       .subnets = {"10.244.1.0/24"},
       .mtu = 1450},
      {.name = "dual stack",
       .text = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/"
               "24\nFLANNEL_IPV6_NETWORK=fd00::/56\n"
               "FLANNEL_IPV6_SUBNET=fd00:0:0:1::1/64\nFLANNEL_MTU=1450\n",
       .subnets = {"10.244.1.0/24", "fd00:0:0:1::/64"},
       .mtu = 1450},
      {.name = "comments and blanks",
       .text = "# leased\n\nFLANNEL_SUBNET = 10.9.0.1/26 \r\n",
       .subnets = {"10.9.0.0/26"}},
      {.name = "no subnet",
       .text = "FLANNEL_NETWORK=10.244.0.0/16\n",
       .error_part = "FLANNEL_SUBNET"},
      {.name = "bad subnet",
       .text = "FLANNEL_MTU=1450\nFLANNEL_SUBNET=10.244.1.1/99\n",
       .error_part = "subnet.env:2"},
      {.name = "v6 in the v4 key", .text = "FLANNEL_SUBNET=fd00::1/64\n", .error_part = "IPv4"},
      {.name = "bad mtu",
       .text = "FLANNEL_SUBNET=10.0.0.1/24\nFLANNEL_MTU=big\n",
       .error_part = "subnet.env:2"},
      {.name = "not KEY=VALUE", .text = "FLANNEL_SUBNET\n", .error_part = "subnet.env:1"},
  };
  for (const SubnetEnvCase& c : cases) {
    SCOPED_TRACE(c.name);
    auto got = parseSubnetEnv(c.text, "/run/zonewall/subnet.env");
    if (c.subnets.empty()) {
      ASSERT_FALSE(got.has_value());
      EXPECT_EQ(got.error().code, ErrorCode::kInvalidConfig);
      EXPECT_NE(got.error().msg.find(c.error_part), std::string::npos) << got.error().msg;
      continue;
    }
    ASSERT_TRUE(got.has_value()) << got.error().msg;
    std::vector<std::string> subnets;
    for (const Cidr& s : got->subnets) subnets.push_back(s.str());
    EXPECT_EQ(subnets, c.subnets);
    EXPECT_EQ(got->mtu, c.mtu);
  }
}

// No subnet in the config and no file yet: "try again later", the agent has not leased.
TEST_F(ScratchDir, MissingSubnetFileIsTryAgainLater) {
  NetConf conf;
  conf.subnet_file = dir() + "/subnet.env";
  auto got = resolveSubnets(conf);
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::kTryAgainLater);
  std::ofstream(conf.subnet_file) << "FLANNEL_SUBNET=10.244.3.1/24\nFLANNEL_MTU=1400\n";
  got = resolveSubnets(conf);
  ASSERT_TRUE(got.has_value()) << got.error().msg;
  EXPECT_EQ(got->subnets[0].str(), "10.244.3.0/24");
  EXPECT_EQ(got->mtu, 1400);
}

// Network, broadcast and subnet-router anycast addresses are never handed out.
TEST(AllocatableRange, SkipsReservedAddresses) {
  auto range = [](const char* c) {
    auto [lo, hi] = allocatableRange(cidr(c));
    return zonewall::formatAddr(lo) + "-" + zonewall::formatAddr(hi);
  };
  EXPECT_EQ(range("10.244.1.0/24"), "10.244.1.1-10.244.1.254");
  EXPECT_EQ(range("10.244.1.0/30"), "10.244.1.1-10.244.1.2");
  EXPECT_EQ(range("10.244.1.0/31"), "10.244.1.0-10.244.1.1");
  EXPECT_EQ(range("10.244.1.9/32"), "10.244.1.9-10.244.1.9");
  EXPECT_EQ(range("fd00:1::/64"), "fd00:1::1-fd00:1::ffff:ffff:ffff:ffff");
  EXPECT_EQ(range("fd00:1::/127"), "fd00:1::-fd00:1::1");
}

// Round-robin: a released address is not handed out again before the others.
TEST_F(ScratchDir, AllocatesRoundRobinAndReleases) {
  auto pool = AddressPool::open(dir(), "net");
  ASSERT_TRUE(pool.has_value()) << pool.error().msg;
  std::vector<Cidr> subnets{cidr("10.0.0.0/29"), cidr("fd00::/64")};
  auto a = pool->allocate(subnets, owner("a"));
  ASSERT_TRUE(a.has_value()) << a.error().msg;
  ASSERT_EQ(a->size(), 2U);
  EXPECT_EQ((*a)[0].address, addr("10.0.0.1"));
  EXPECT_EQ((*a)[1].address, addr("fd00::1"));
  auto b = pool->allocate(subnets, owner("b"));
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ((*b)[0].address, addr("10.0.0.2"));
  ASSERT_TRUE(pool->release(addr("10.0.0.1")).has_value());
  ASSERT_TRUE(pool->release(addr("10.0.0.1")).has_value());  // releasing twice is fine
  auto c = pool->allocate(subnets, owner("c"));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ((*c)[0].address, addr("10.0.0.3"));

  auto owned = pool->ownedBy("b", "eth0");
  ASSERT_EQ(owned.size(), 2U);
  EXPECT_EQ(owned[0].pod_name, "b");
  EXPECT_TRUE(pool->ownedBy("b", "eth1").empty());
  EXPECT_EQ(pool->freeCount(cidr("10.0.0.0/29")), 4U);  // 6 usable, b and c hold two
}

// A full subnet fails cleanly (code 11) and takes nothing from the other family.
TEST_F(ScratchDir, ExhaustionIsAllOrNothing) {
  auto pool = AddressPool::open(dir(), "net");
  ASSERT_TRUE(pool.has_value());
  std::vector<Cidr> v4{cidr("10.0.0.0/30")};
  ASSERT_TRUE(pool->allocate(v4, owner("a")).has_value());
  ASSERT_TRUE(pool->allocate(v4, owner("b")).has_value());
  std::vector<Cidr> dual{cidr("fd00::/64"), cidr("10.0.0.0/30")};
  auto full = pool->allocate(dual, owner("c"));
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code, ErrorCode::kTryAgainLater);
  EXPECT_NE(full.error().msg.find("10.0.0.0/30"), std::string::npos) << full.error().msg;
  EXPECT_EQ(pool->list().size(), 2U);  // the IPv6 address was given back
  EXPECT_EQ(pool->freeCount(v4[0]), 0U);
}

// What a writer killed mid-way leaves (a temporary file) is removed by the next lock holder,
// and is never mistaken for a reservation.
TEST_F(ScratchDir, RemovesDeadWritersTemporaries) {
  fs::create_directories(dir() + "/net");
  std::ofstream(dir() + "/net/.tmp.999999999.0") << "{\"containerID\":\"x\"";
  auto pool = AddressPool::open(dir(), "net");
  ASSERT_TRUE(pool.has_value());
  EXPECT_FALSE(fs::exists(dir() + "/net/.tmp.999999999.0"));
  EXPECT_TRUE(pool->list().empty());
}

// Many processes allocating at once never share an address (the flock serializes them).
TEST_F(ScratchDir, ParallelProcessesGetDistinctAddresses) {
  constexpr int kProcs = 40;
  std::vector<pid_t> kids;
  for (int i = 0; i < kProcs; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto pool = AddressPool::open(dir(), "net");
      bool ok =
          pool && pool->allocate({cidr("10.1.0.0/26")}, owner("c" + std::to_string(i))).has_value();
      _exit(ok ? 0 : 1);
    }
    kids.push_back(pid);
  }
  int failures = 0;
  for (pid_t pid : kids) {
    int status = 0;
    waitpid(pid, &status, 0);
    failures += WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
  }
  EXPECT_EQ(failures, 0);
  auto pool = AddressPool::open(dir(), "net");
  ASSERT_TRUE(pool.has_value());
  std::vector<Reservation> all = pool->list();
  EXPECT_EQ(all.size(), static_cast<size_t>(kProcs));
  std::set<std::string> owners;
  for (const Reservation& r : all) owners.insert(r.container_id);
  EXPECT_EQ(owners.size(), static_cast<size_t>(kProcs));  // one address each, no two alike
}

// Endpoint records round-trip and are listed; a half-written one is never visible.
TEST_F(ScratchDir, EndpointRecordsRoundTrip) {
  EndpointRecord r{.network = "zw",
                   .container_id = "abc",
                   .ifname = "eth0",
                   .pod_namespace = "bank",
                   .pod_name = "web-0",
                   .netns = "/run/netns/p",
                   .host_veth = "zw0123456789a",
                   .ips = {addr("10.244.1.7"), addr("fd00::7")}};
  ASSERT_TRUE(writeEndpoint(dir() + "/ep", r).has_value());
  EXPECT_TRUE(fs::exists(dir() + "/ep/zw:abc:eth0.json"));
  std::ofstream(dir() + "/ep/.tmp.1.0") << "{";
  auto all = readEndpoints(dir() + "/ep");
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0], r);
  ASSERT_TRUE(removeEndpoint(dir() + "/ep", "zw", "abc", "eth0").has_value());
  ASSERT_TRUE(removeEndpoint(dir() + "/ep", "zw", "abc", "eth0").has_value());
  EXPECT_TRUE(readEndpoints(dir() + "/ep").empty());
  EXPECT_FALSE(endpointFromJson(nlohmann::json::parse(R"({"network":"zw"})")).has_value());
}

}  // namespace
}  // namespace zonewall::cni
