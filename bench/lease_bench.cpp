// Subnet leases on a warm etcd (issue 13), with Debian's etcd-server on loopback in a network
// namespace of the bench's own:
//   1. a lease claim (EtcdSubnetManager::acquire: list, grant, create-if-absent) by a new node,
//      p50 / p99 over 200 claims, next to one etcd round trip (a put) in the same run and the
//      claim's parts (the range read of every lease, which etcd 3.4's JSON gateway marshals
//      slowly, and the lease grant);
//   2. a join to routed: from the moment a new node's lease exists in etcd to the moment
//      another node, following the leases (the agent's watch) has the route, neighbour and FDB
//      entry to it on its flannel.1; p50 / p99 over 100 joins.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "bench_netns.h"
#include "etcd_server.h"
#include "test_support.h"
#include "zonewall/agent/leases.h"
#include "zonewall/agent/overlay.h"
#include "zonewall/base/netns.h"

namespace {

using namespace zonewall;         // NOLINT
using namespace zonewall::agent;  // NOLINT
using Clock = std::chrono::steady_clock;

using bench::sh;

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v.empty()
             ? 0
             : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

LeaseAttrs attrsOf(int i) {
  LeaseAttrs a;
  a.public_ip = Addr::fromV4((10u << 24) | (97u << 16) | static_cast<unsigned>(i + 2));
  a.backend_type = "vxlan";
  a.backend_data =
      fmt::format(R"({{"VNI":1,"VtepMAC":"0a:58:00:00:{:02x}:{:02x}"}})", i >> 8, i & 0xff);
  return a;
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    std::puts("lease_bench: needs root");
    return 0;
  }
  if (!testing::haveEtcd()) {
    std::puts("lease_bench: /usr/bin/etcd missing (make deps installs etcd-server)");
    return 1;
  }
  const bench::UnderlayNetns netns(fmt::format("zwb{}l", getpid()), "10.97.0.1");
  const std::string& ns = netns.name();
  if (!netns.ok()) {
    std::puts("lease_bench: cannot set up the namespace");
    return 1;
  }
  testing::EtcdServer etcd(ns, "127.0.0.1");
  if (!etcd.ok()) {
    std::printf("lease_bench: etcd: %s\n", etcd.error().c_str());
    return 1;
  }
  auto guard = NetnsGuard::enter("/run/netns/" + ns);
  if (!guard) return 1;
  EtcdClient(etcd.endpoint())
      .put("/coreos.com/network/config",
           R"({"Network": "10.0.0.0/8", "SubnetLen": 24, "Backend": {"Type": "vxlan"}})");
  EtcdSubnetManager manager(etcd.endpoint());
  auto config = manager.config();
  if (!config) {
    std::printf("lease_bench: %s\n", config.error().str().c_str());
    return 1;
  }

  // 1. Claims by new nodes (each a new PublicIP), after a warm-up; one put as the floor.
  EtcdClient raw(etcd.endpoint());
  std::vector<double> claims, puts;
  std::vector<SubnetLease> held;
  for (int i = 0; i < 220; ++i) {
    auto t0 = Clock::now();
    auto l = manager.acquire(*config, attrsOf(i));
    auto t1 = Clock::now();
    (void)raw.put("/bench/key", "v");
    auto t2 = Clock::now();
    if (!l) {
      std::printf("lease_bench: claim %d: %s\n", i, l.error().str().c_str());
      return 1;
    }
    held.push_back(*l);
    if (i >= 20) {
      claims.push_back(ms(t1 - t0));
      puts.push_back(ms(t2 - t1));
    }
  }
  std::vector<double> lists, grants;
  for (int i = 0; i < 50; ++i) {
    auto t0 = Clock::now();
    (void)manager.leases();
    auto t1 = Clock::now();
    auto g = raw.grant(60);
    auto t2 = Clock::now();
    if (g) (void)raw.revoke(g->id);
    lists.push_back(ms(t1 - t0));
    grants.push_back(ms(t2 - t1));
  }
  for (const SubnetLease& l : held) (void)manager.release(l);

  // 2. Join → routed on a node following the leases.
  auto overlay = Overlay::vxlan(VxlanSpec{1, 0, "ul0", *parseAddr("10.97.0.1")});
  if (!overlay) {
    std::printf("lease_bench: %s\n", overlay.error().str().c_str());
    return 1;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Clock::time_point> routed;  // lease key → when its entries were in
  std::atomic<bool> stop{false};
  std::thread follower([&] {
    auto in_ns = NetnsGuard::enter("/run/netns/" + ns);
    EtcdSubnetManager follower_manager(etcd.endpoint());
    follower_manager.follow(
        [&](const std::vector<SubnetLease>& all) {
          std::vector<Peer> peers;
          for (const SubnetLease& l : all) {
            auto mac =
                parseMac(l.attrs.backend_data.substr(l.attrs.backend_data.find("0a:58"), 17));
            if (l.subnet && mac) peers.push_back({*l.subnet, l.attrs.public_ip, *mac});
          }
          (void)overlay->sync(peers);
          const auto now = Clock::now();
          std::lock_guard lock(mu);
          for (const SubnetLease& l : all) routed.emplace(l.key(), now);
          cv.notify_all();
        },
        stop);
  });
  std::vector<double> joins;
  for (int i = 0; i < 100; ++i) {
    auto l = manager.acquire(*config, attrsOf(1000 + i));
    const auto t0 = Clock::now();
    if (!l) {
      std::printf("lease_bench: join %d: %s\n", i, l.error().str().c_str());
      break;
    }
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(5), [&] { return routed.contains(l->key()); })) {
      std::printf("lease_bench: join %d never routed\n", i);
      break;
    }
    joins.push_back(ms(routed[l->key()] - t0));
  }
  stop = true;
  follower.join();

  std::printf("lease_bench: Flannel's etcd layout on Debian's etcd %s, loopback\n", "3.4");
  std::printf("  %-48s p50 %7.2f ms  p99 %7.2f ms\n", "lease claim by a new node (200)",
              pct(claims, 0.5), pct(claims, 0.99));
  std::printf("  %-48s p50 %7.2f ms  p99 %7.2f ms\n", "one etcd put, the round-trip floor",
              pct(puts, 0.5), pct(puts, 0.99));
  std::printf("  %-48s p50 %7.2f ms\n", "  a claim's range read, with 220 leases held",
              pct(lists, 0.5));
  std::printf("  %-48s p50 %7.2f ms\n", "  a claim's etcd lease grant", pct(grants, 0.5));
  std::printf("  %-48s p50 %7.2f ms  p99 %7.2f ms\n",
              "join: lease in etcd -> routed on a follower (100)", pct(joins, 0.5),
              pct(joins, 0.99));
  return joins.size() == 100 ? 0 : 1;
}
