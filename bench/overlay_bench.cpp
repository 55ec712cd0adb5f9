// The vxlan overlay's netlink work at scale (issue 13): the neighbours, FDB entries and routes
// for 1,000 remote nodes programmed from nothing, then one node joining, one leaving, and an
// unchanged set, through zonewall's Overlay (libnl-3, one request per entry). Baseline in
// the same run: the same 3,000 entries on a second VXLAN device by `ip -batch` and
// `bridge -batch` (iproute2, the tools an operator would script). Root: a network namespace.
//
// Goals: 1,000 nodes in <= 100 ms; one node joining in <= 1 ms of netlink work.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench_netns.h"
#include "test_support.h"
#include "zonewall/agent/overlay.h"
#include "zonewall/base/netns.h"

namespace {

using namespace zonewall;         // NOLINT
using namespace zonewall::agent;  // NOLINT
using Clock = std::chrono::steady_clock;

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

using bench::sh;

Peer peer(int i) {
  Peer p;
  p.subnet = Cidr{Addr::fromV4((10u << 24) | (static_cast<unsigned>(1 + i) << 8)), 24, Family::kV4};
  p.public_ip = Addr::fromV4((10u << 24) | (98u << 16) | (static_cast<unsigned>(1 + i / 250) << 8) |
                             static_cast<unsigned>(1 + i % 250));
  p.vtep_mac = {0x0a,
                0x58,
                static_cast<std::uint8_t>(i >> 16),
                static_cast<std::uint8_t>(i >> 8),
                static_cast<std::uint8_t>(i),
                0x01};
  return p;
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    std::puts("overlay_bench: needs root");
    return 0;
  }
  constexpr int kNodes = 1000;
  const bench::UnderlayNetns netns(fmt::format("zwb{}ov", getpid()), "10.97.0.10");
  const std::string& ns = netns.name();
  if (!netns.ok()) {
    std::puts("overlay_bench: cannot set up the namespace");
    return 1;
  }
  auto guard = NetnsGuard::enter("/run/netns/" + ns);
  if (!guard) {
    std::printf("overlay_bench: %s\n", guard.error().str().c_str());
    return 1;
  }
  auto o = Overlay::vxlan(VxlanSpec{1, 0, "ul0", *parseAddr("10.97.0.10")});
  if (!o || !o->assign(Cidr{*parseAddr("10.0.0.0"), 24, Family::kV4})) {
    std::puts("overlay_bench: cannot create flannel.1");
    return 1;
  }
  std::vector<Peer> peers;
  for (int i = 0; i < kNodes; ++i) peers.push_back(peer(i));
  std::printf("overlay_bench: %d remote nodes (a neighbour, an FDB entry and a route each)\n",
              kNodes);

  auto t0 = Clock::now();
  auto all = o->sync(peers);
  auto t1 = Clock::now();
  if (!all) {
    std::printf("overlay_bench: %s\n", all.error().str().c_str());
    return 1;
  }
  const double zonewall_full = ms(t0, t1);

  // Baseline: the same entries on flannel.2 with iproute2's batch mode.
  sh("ip link add flannel.2 type vxlan id 2 local 10.97.0.10 dev ul0 nolearning dstport 8472");
  sh("ip link set flannel.2 up");
  {
    std::ofstream ipb("/tmp/" + ns + ".ip");
    std::ofstream brb("/tmp/" + ns + ".bridge");
    for (const Peer& p : peers) {
      ipb << fmt::format("neigh replace {} lladdr {} dev flannel.2 nud permanent\n",
                         formatAddr(p.subnet.base), formatMac(p.vtep_mac));
      brb << fmt::format("fdb replace {} dev flannel.2 dst {} self permanent\n",
                         formatMac(p.vtep_mac), formatAddr(p.public_ip));
      ipb << fmt::format("route replace {} via {} dev flannel.2 onlink\n", p.subnet.str(),
                         formatAddr(p.subnet.base));
    }
  }
  auto b0 = Clock::now();
  bool ok = sh("ip -batch /tmp/" + ns + ".ip") && sh("bridge -batch /tmp/" + ns + ".bridge");
  auto b1 = Clock::now();
  std::remove(("/tmp/" + ns + ".ip").c_str());
  std::remove(("/tmp/" + ns + ".bridge").c_str());
  const double baseline_full = ms(b0, b1);

  // One node joins, one leaves, nothing changes: 51 rounds each (a single sync of 1,000
  // peers is ~1 ms of diffing, and one sample's noise is as large as a join's netlink work),
  // medians compared.
  std::vector<double> joins, leaves, sames;
  int join_entries = 0, leave_entries = 0, unchanged = 0;
  for (int round = 0; round < 51; ++round) {
    peers.push_back(peer(kNodes + round));
    auto j0 = Clock::now();
    auto joined = o->sync(peers);
    auto j1 = Clock::now();
    auto u0 = Clock::now();
    auto same = o->sync(peers);
    auto u1 = Clock::now();
    peers.pop_back();
    auto l0 = Clock::now();
    auto left = o->sync(peers);
    auto l1 = Clock::now();
    if (!joined || !left || !same) {
      std::puts("overlay_bench: a sync failed");
      return 1;
    }
    joins.push_back(ms(j0, j1));
    sames.push_back(ms(u0, u1));
    leaves.push_back(ms(l0, l1));
    join_entries = joined->added;
    leave_entries = left->removed;
    unchanged = same->unchanged;
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("  %-44s %9.1f ms  (%d entries)\n", "zonewall, 1,000 nodes from nothing",
              zonewall_full, all->added);
  std::printf("  %-44s %9.1f ms%s\n", "ip -batch + bridge -batch, the same entries", baseline_full,
              ok ? "" : "  (failed)");
  std::printf("  %-44s %9.2fx\n", "ratio (baseline / zonewall)", baseline_full / zonewall_full);
  std::printf("  %-44s %9.3f ms  (%d entries, median of 51)\n", "one node joins", median(joins),
              join_entries);
  std::printf("  %-44s %9.3f ms  (%d entries, median of 51)\n", "one node leaves", median(leaves),
              leave_entries);
  std::printf("  %-44s %9.3f ms  (%d peers unchanged, median of 51)\n", "no change", median(sames),
              unchanged);
  // A sync diffs the whole set: what a join adds to an unchanged sync is its netlink work.
  const double join_netlink = median(joins) - median(sames);
  std::printf("  %-44s %9.3f ms\n", "a join's netlink work (join - no change)", join_netlink);
  std::printf("  goals: 1,000 nodes <= 100 ms: %s; a join's netlink work <= 1 ms: %s\n",
              zonewall_full <= 100 ? "met" : "NOT met", join_netlink <= 1 ? "met" : "NOT met");
  return 0;
}
