// What the vxlan tunnel costs (issue 13): new TCP connections/s and one stream's MB/s from a
// pod on one node to a pod on another, over zonewall's vxlan overlay (flannel.1, programmed by
// Overlay from the two nodes' leases) and, in the same run, over plain routes between the same
// nodes (what host-gw installs), alternating, three runs each; the ratio is the tunnel's cost.
// Root: four network namespaces (two nodes on a veth underlay, a pod behind each).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "test_support.h"
#include "zonewall/agent/overlay.h"
#include "zonewall/base/netns.h"

namespace {

using namespace zonewall;  // NOLINT
using testing::run;

bool sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; }

struct Rates {
  double cps = 0;
  double mbps = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    std::puts("tunnel_bench: needs root");
    return 0;
  }
  const std::string tag = fmt::format("zwb{}t", getpid());
  auto ns = [&](const std::string& n) { return tag + n; };
  struct Cleanup {
    std::string tag;
    ~Cleanup() {
      for (const char* n : {"n0", "n1", "p0", "p1"}) {
        sh("ip netns pids " + tag + n + " | xargs -r kill");
        sh("ip netns del " + tag + n);
      }
    }
  } cleanup{tag};
  // Node i: underlay 10.97.1.(1+i) on ul0; its pod 10.244.(1+i).2 behind veth vp, gateway .1.
  bool ok = true;
  for (int i = 0; i < 2 && ok; ++i) {
    const std::string n = ns(fmt::format("n{}", i));
    const std::string p = ns(fmt::format("p{}", i));
    ok = sh("ip netns add " + n) && sh("ip netns add " + p) &&
         sh("ip -n " + n + " link set lo up") && sh("ip -n " + p + " link set lo up") &&
         sh("ip netns exec " + n + " sysctl -qw net.ipv4.ip_forward=1") &&
         sh(fmt::format("ip -n {} link add vp type veth peer name eth0 netns {}", n, p)) &&
         sh(fmt::format("ip -n {} addr add 10.244.{}.1/24 dev vp", n, 1 + i)) &&
         sh(fmt::format("ip -n {} link set vp up", n)) &&
         sh(fmt::format("ip -n {} addr add 10.244.{}.2/24 dev eth0", p, 1 + i)) &&
         sh(fmt::format("ip -n {} link set eth0 up", p)) &&
         sh(fmt::format("ip -n {} route add default via 10.244.{}.1", p, 1 + i));
  }
  ok = ok && sh(fmt::format("ip -n {} link add ul0 type veth peer name ul0 netns {}", ns("n0"),
                            ns("n1")));
  for (int i = 0; i < 2 && ok; ++i) {
    const std::string n = ns(fmt::format("n{}", i));
    ok = sh(fmt::format("ip -n {} addr add 10.97.1.{}/24 dev ul0", n, 1 + i)) &&
         sh("ip -n " + n + " link set ul0 up");
  }
  if (!ok) {
    std::puts("tunnel_bench: cannot set up the namespaces");
    return 1;
  }
  const std::string server = fmt::format(
      "ip netns exec {} {} serve 80 5001 "
      ">/dev/null 2>&1 &",
      ns("p1"), std::string(ZONEWALL_PROBE));
  run(server);  // killed with the namespace (Cleanup)

  // The two configurations, switched in place: plain routes (host-gw's), and the overlay.
  auto plain = [&](bool on) {
    for (int i = 0; i < 2; ++i) {
      sh(fmt::format("ip -n {} route {} 10.244.{}.0/24 via 10.97.1.{}", ns(fmt::format("n{}", i)),
                     on ? "replace" : "del", 2 - i, 2 - i));
      sh(fmt::format("ip -n {} link set eth0 mtu {}", ns(fmt::format("p{}", i)),
                     on ? 1500 : 1450));  // FLANNEL_MTU: what each backend gives its pods
    }
  };
  std::vector<agent::Overlay> overlays;
  std::vector<agent::Mac> macs;
  for (int i = 0; i < 2; ++i) {
    auto guard = NetnsGuard::enter("/run/netns/" + ns(fmt::format("n{}", i)));
    auto o = agent::Overlay::vxlan(
        agent::VxlanSpec{1, 0, "ul0", *parseAddr(fmt::format("10.97.1.{}", 1 + i))});
    if (!guard || !o || !o->assign(parseCidr(fmt::format("10.244.{}.0/24", 1 + i))->cidr)) {
      std::puts("tunnel_bench: cannot create flannel.1");
      return 1;
    }
    macs.push_back(o->mac());
    overlays.push_back(std::move(*o));
  }
  auto tunnel = [&](bool on) {
    for (int i = 0; i < 2; ++i) {
      auto guard = NetnsGuard::enter("/run/netns/" + ns(fmt::format("n{}", i)));
      std::vector<agent::Peer> peers;
      if (on) {
        peers.push_back({parseCidr(fmt::format("10.244.{}.0/24", 2 - i))->cidr,
                         *parseAddr(fmt::format("10.97.1.{}", 2 - i)), macs[1 - i]});
      }
      if (!guard || !overlays[i].sync(peers)) std::puts("tunnel_bench: sync failed");
    }
  };
  const std::string client = "ip netns exec " + ns("p0") + " " + std::string(ZONEWALL_PROBE);
  auto measure = [&] {
    Rates r;
    r.cps = std::atof(run(client + " rate 1 10.244.2.2:80/TCP").out.c_str());
    r.mbps = std::atof(run(client + " stream 1 10.244.2.2:5001/TCP").out.c_str());
    return r;
  };
  std::vector<double> plain_cps, plain_mbps, vx_cps, vx_mbps;
  for (int round = 0; round < 3; ++round) {
    tunnel(false);
    plain(true);
    Rates p = measure();
    plain(false);
    tunnel(true);
    Rates v = measure();
    plain_cps.push_back(p.cps);
    plain_mbps.push_back(p.mbps);
    vx_cps.push_back(v.cps);
    vx_mbps.push_back(v.mbps);
  }
  const double pc = median(plain_cps), pm = median(plain_mbps);
  const double vc = median(vx_cps), vm = median(vx_mbps);
  std::printf("tunnel_bench: pod -> pod across two nodes, median of 3 one-second runs each\n");
  std::printf("  %-34s %12s %12s\n", "", "new conn/s", "stream MB/s");
  std::printf("  %-34s %12.0f %12.1f\n", "plain routes (host-gw), MTU 1500", pc, pm);
  std::printf("  %-34s %12.0f %12.1f\n", "vxlan (flannel.1), MTU 1450", vc, vm);
  std::printf("  %-34s %11.0f%% %11.0f%%\n", "vxlan / plain", pc > 0 ? 100 * vc / pc : 0,
              pm > 0 ? 100 * vm / pm : 0);
  if (pc <= 0 || vc <= 0 || pm <= 0 || vm <= 0) {
    std::puts("tunnel_bench: a configuration moved no traffic");
    return 1;
  }
  return 0;
}
