// Subnet leases against a real etcd (Debian's etcd-server, started on loopback by the test):
// claims that never collide, a node taking back its own subnet, renewals, expiry freeing a
// subnet for the next node, the watch other nodes follow, and 50 nodes racing for 8 subnets.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "etcd_server.h"
#include "test_support.h"
#include "zonewall/agent/leases.h"

namespace zonewall::agent {
namespace {

using namespace std::chrono_literals;

class EtcdLeases : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists("/usr/bin/etcd")) {
      if (testing::inCi())
        FAIL() << "/usr/bin/etcd missing: make install-deps installs etcd-server";
      GTEST_SKIP() << "/usr/bin/etcd missing (apt-get install etcd-server)";
    }
    etcd_ = std::make_unique<testing::EtcdServer>();
    ASSERT_TRUE(etcd_->ok()) << etcd_->error();
  }
  void putConfig(const std::string& json) {
    EtcdClient c(etcd_->endpoint());
    ASSERT_TRUE(c.put("/coreos.com/network/config", json).has_value());
  }
  static LeaseAttrs node(const std::string& ip) {
    LeaseAttrs a;
    a.public_ip = *parseAddr(ip);
    a.backend_type = "vxlan";
    a.backend_data = R"({"VNI":1,"VtepMAC":"0a:00:00:00:00:01"})";
    return a;
  }
  std::unique_ptr<testing::EtcdServer> etcd_;
};

TEST_F(EtcdLeases, ClaimTakeBackRenewRelease) {
  putConfig(R"({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}})");
  EtcdSubnetManager a(etcd_->endpoint(), "/coreos.com/network", 60s);
  auto config = a.config();
  ASSERT_TRUE(config.has_value()) << config.error().str();
  auto mine = a.acquire(*config, node("192.168.0.1"));
  ASSERT_TRUE(mine.has_value()) << mine.error().str();
  ASSERT_TRUE(mine->subnet.has_value());
  EXPECT_EQ(mine->subnet->prefix, 24);
  EXPECT_TRUE(config->network.contains(mine->subnet->base));
  EXPECT_NE(mine->subnet->base, config->network.base);  // the first subnet is never handed out
  // The key is Flannel's, its value the attributes, bound to an etcd lease of the TTL.
  EtcdClient raw(etcd_->endpoint());
  auto kv = raw.get("/coreos.com/network/subnets/" + mine->key());
  ASSERT_TRUE(kv.has_value() && kv->has_value());
  EXPECT_EQ((*kv)->value, node("192.168.0.1").toJson());
  EXPECT_EQ((*kv)->lease, mine->etcd_lease);
  auto ttl = raw.timeToLive(mine->etcd_lease);
  ASSERT_TRUE(ttl.has_value());
  EXPECT_GT(*ttl, 50);
  // A second node gets another subnet.
  auto other = a.acquire(*config, node("192.168.0.2"));
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->subnet, mine->subnet);
  // The first node restarts: same PublicIP, same subnet, a fresh etcd lease.
  EtcdSubnetManager restarted(etcd_->endpoint(), "/coreos.com/network", 60s);
  auto again = restarted.acquire(*config, node("192.168.0.1"));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->subnet, mine->subnet);
  EXPECT_NE(again->etcd_lease, mine->etcd_lease);
  auto held = restarted.stillHeld(*again);
  ASSERT_TRUE(held.has_value());
  EXPECT_TRUE(*held);
  // Renewal moves the key to a new etcd lease and keeps it.
  SubnetLease renewed = *again;
  ASSERT_TRUE(restarted.renew(renewed).has_value());
  EXPECT_NE(renewed.etcd_lease, again->etcd_lease);
  EXPECT_TRUE(*restarted.stillHeld(renewed));
  EXPECT_FALSE(*restarted.stillHeld(*again));  // the old etcd lease no longer holds it
  // Leaving: the key goes.
  ASSERT_TRUE(restarted.release(renewed).has_value());
  auto gone = raw.get("/coreos.com/network/subnets/" + renewed.key());
  ASSERT_TRUE(gone.has_value());
  EXPECT_FALSE(gone->has_value());
}

// A restarted node with a subnet.env takes its previous subnet back when it is free.
TEST_F(EtcdLeases, PreviousSubnetFromSubnetEnv) {
  putConfig(R"({"Network": "10.244.0.0/16"})");
  EtcdSubnetManager m(etcd_->endpoint(), "/coreos.com/network", 60s);
  auto config = m.config();
  ASSERT_TRUE(config.has_value());
  Cidr prev{*parseAddr("10.244.42.0"), 24, Family::kV4};
  auto l = m.acquire(*config, node("192.168.0.9"), prev);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(*l->subnet, prev);
  // Taken now: another node naming it as previous gets a different one.
  auto l2 = m.acquire(*config, node("192.168.0.10"), prev);
  ASSERT_TRUE(l2.has_value());
  EXPECT_NE(*l2->subnet, prev);
}

// 50 nodes race for 8 subnets: exactly 8 win, each a different subnet; the rest are told
// the network is out of subnets.
TEST_F(EtcdLeases, FiftyNodesRaceForEightSubnets) {
  putConfig(R"({"Network": "10.5.0.0/25", "SubnetLen": 28, "SubnetMin": "10.5.0.0"})");
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<Cidr> won;
  std::map<std::string, int> errors;
  for (int i = 0; i < 50; ++i) {
    threads.emplace_back([&, i] {
      EtcdSubnetManager m(etcd_->endpoint(), "/coreos.com/network", 60s);
      auto config = m.config();
      if (!config) {
        std::lock_guard lock(mu);
        ++errors[config.error().message];
        return;
      }
      auto l = m.acquire(*config, node(fmt::format("192.168.1.{}", i + 1)));
      std::lock_guard lock(mu);
      if (l) {
        won.push_back(*l->subnet);
      } else {
        ++errors[l.error().message];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.size(), 8u);
  EXPECT_EQ(std::set<Cidr>(won.begin(), won.end()).size(), won.size());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors.begin()->first, "out of subnets");
  EXPECT_EQ(errors.begin()->second, 42);
}

// A lease not renewed expires: its key goes (the watch sees it), and the subnet is free for
// the next node. The old holder can tell it lost it.
TEST_F(EtcdLeases, ExpiryFreesTheSubnetAndTheWatchSeesIt) {
  putConfig(R"({"Network": "10.6.0.0/24", "SubnetLen": 26, "SubnetMin": "10.6.0.64", )"
            R"("SubnetMax": "10.6.0.64"})");
  EtcdSubnetManager short_ttl(etcd_->endpoint(), "/coreos.com/network", 2s);
  auto config = short_ttl.config();
  ASSERT_TRUE(config.has_value()) << config.error().str();
  auto listed = short_ttl.leases();
  ASSERT_TRUE(listed.has_value());
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<std::pair<std::string, bool>> seen;  // key, removed
  std::thread watcher([&] {
    EtcdSubnetManager w(etcd_->endpoint());
    std::int64_t rev = listed->second + 1;
    while (!stop) {
      auto next = w.watch(
          rev,
          [&](const SubnetLease& l, bool removed) {
            std::lock_guard lock(mu);
            seen.emplace_back(l.key(), removed);
            return true;
          },
          stop);
      if (!next || *next == EtcdClient::kCompacted) break;
      rev = *next;
    }
  });
  auto first = short_ttl.acquire(*config, node("192.168.2.1"));
  ASSERT_TRUE(first.has_value()) << first.error().str();
  EXPECT_EQ(first->subnet->str(), "10.6.0.64/26");
  // Only one subnet: a second node finds none while the first holds it.
  EtcdSubnetManager long_ttl(etcd_->endpoint(), "/coreos.com/network", 60s);
  auto blocked = long_ttl.acquire(*config, node("192.168.2.2"));
  ASSERT_FALSE(blocked.has_value());
  EXPECT_EQ(blocked.error().message, "out of subnets");
  // Not renewed: gone within a few seconds (etcd checks expiry about every 500 ms).
  bool freed = false;
  for (int i = 0; i < 100 && !freed; ++i) {
    std::this_thread::sleep_for(100ms);
    auto held = short_ttl.stillHeld(*first);
    freed = held.has_value() && !*held;
  }
  ASSERT_TRUE(freed);
  auto next = long_ttl.acquire(*config, node("192.168.2.2"));
  ASSERT_TRUE(next.has_value()) << next.error().str();
  EXPECT_EQ(next->subnet, first->subnet);
  // The watch saw: added, removed (expired), added again.
  for (int i = 0; i < 50; ++i) {
    {
      std::lock_guard lock(mu);
      if (seen.size() >= 3) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  stop = true;
  watcher.join();
  std::lock_guard lock(mu);
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[0], std::pair(std::string("10.6.0.64-26"), false));
  EXPECT_EQ(seen[1], std::pair(std::string("10.6.0.64-26"), true));
  EXPECT_EQ(seen[2], std::pair(std::string("10.6.0.64-26"), false));
}

}  // namespace
}  // namespace zonewall::agent
