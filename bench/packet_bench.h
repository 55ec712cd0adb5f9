// What the per-packet benchmarks (dataplane_bench, peers_bench) measure with: a client pod's
// new TCP connections per second, the machine's busy CPU time per connection, one stream's
// MB/s and the latency of a connection's first packet, through a node netns
// (kernel/node_harness.h); and the rulesets every comparison shares.
#pragma once

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kernel/node_harness.h"
#include "zonewall/policy/model.h"

namespace zonewall::bench {

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Rates {
  double cps = 0;
  double mbps = 0;
  double cpu_us = 0;        ///< busy CPU time of the whole machine per connection
  double first_us = 0;      ///< median time from SYN sent to connection established
  double first_p99_us = 0;  ///< its 99th percentile
};

/// Busy jiffies (user, nice, system, irq, softirq; not steal, the hypervisor's time for others)
/// from /proc/stat: of CPU `cpu`, or of all CPUs when it is negative.
inline long busyJiffies(int cpu = -1) {
  std::ifstream in("/proc/stat");
  const std::string want = cpu < 0 ? "cpu" : "cpu" + std::to_string(cpu);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, want.size() + 1, want + " ") != 0) continue;
    long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0;
    std::sscanf(line.c_str() + want.size(), "%ld %ld %ld %ld %ld %ld %ld", &user, &nice, &system,
                &idle, &iowait, &irq, &softirq);
    return user + nice + system + irq + softirq;
  }
  return 0;
}

/// Pins this process (and so every process it starts from now on: the pods' servers, the
/// probes) to CPU `cpu`, or to the last CPU it may run on when `cpu` is negative, and returns
/// that CPU (-1 when it cannot). On one CPU a connection's client, forwarding and server run
/// one after the other: no cross-CPU wake-ups, so the rate follows the CPU time the path
/// costs, and that CPU's busy time is (nearly) only the bench's.
inline int pinToOneCpu(int cpu = -1) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
      if (CPU_ISSET(i, &set)) cpu = i;
    }
    if (cpu < 0) return -1;
    CPU_ZERO(&set);
  }
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof set, &set) == 0 ? cpu : -1;
}

/// Keeps what this process starts next (an API server and its etcd) off CPU `cpu`, the measured
/// one: their background work must not count as the path's.
inline void avoidCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; ++i) {
    if (i != cpu) CPU_SET(i, &set);
  }
  if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof set, &set);
}

/// One run of each, from pod `client` to `server_ip` (TCP 80 for connections and
/// their first packet's latency, 5001 for the stream). Spread over CPUs, the connection rate is
/// bound by latency (one connection at a time, wake-ups across three namespaces); the CPU time
/// per connection shows what the rules cost without the scheduler's noise.
/// `cpu`: the CPU the bench is pinned to (pinToOneCpu), whose busy time is counted, or -1 for
/// the whole machine's.
/// `seconds`: how long the rate and the stream are measured; the latency takes 300 connections.
inline Rates measureOnce(const testing::NodeHarness& node, size_t client,
                         const std::string& server_ip, int cpu = -1, double seconds = 1) {
  std::string prefix = "ip netns exec " + node.podNs(client) + " " + testing::probeBinary();
  const std::string secs = std::to_string(seconds);
  long j0 = busyJiffies(cpu);
  testing::RunResult rate = testing::run(prefix + " rate " + secs + " " + server_ip + ":80/TCP");
  long j1 = busyJiffies(cpu);
  Rates r;
  r.cps = std::atof(rate.out.c_str());
  // "N connects/s ok=K fail=F": the connections made.
  auto ok_at = rate.out.find("ok=");
  long connections = ok_at == std::string::npos ? 0 : std::atol(rate.out.c_str() + ok_at + 3);
  if (connections > 0)
    r.cpu_us = static_cast<double>(j1 - j0) * (1e6 / static_cast<double>(sysconf(_SC_CLK_TCK))) /
               static_cast<double>(connections);
  r.mbps = std::atof(
      testing::run(prefix + " stream " + secs + " " + server_ip + ":5001/TCP").out.c_str());
  // "p50 P p99 Q" (µs), connections one at a time.
  std::string lat = testing::run(prefix + " latency 300 " + server_ip + ":80/TCP").out;
  std::sscanf(lat.c_str(), "p50 %lf p99 %lf", &r.first_us, &r.first_p99_us);
  return r;
}

/// Runs an `nft -f` script in namespace `ns`; false (and what nft said) when it fails.
inline bool nftFile(const std::string& ns, const std::string& text) {
  std::string file = "/tmp/zw-bench-" + std::to_string(getpid()) + ".nft";
  std::ofstream(file) << text;
  testing::RunResult r = testing::run("ip netns exec " + ns + " nft -f " + file + " 2>&1");
  std::remove(file.c_str());
  if (r.exit_code != 0) std::printf("  nft -f failed: %s\n", r.out.substr(0, 300).c_str());
  return r.exit_code == 0;
}

/// Puts table `table` ("inet zonewall") of namespace `ns` to sleep (nftables' dormant flag: its
/// hooks are unregistered, its sets and chains stay) or wakes it: ten milliseconds whatever
/// its size, so configurations can take turns many times a second without reloading.
inline bool setDormant(const std::string& ns, const std::string& table, bool dormant) {
  return testing::run("ip netns exec " + ns + " nft add table " + table +
                      (dormant ? " '{ flags dormant; }'" : ""))
             .exit_code == 0;
}

/// The kernel memory that rulesets take, in kB: slab, vmalloc (big hash tables and the interval
/// sets' lookup tables) and per-CPU allocations (counters), from /proc/meminfo.
inline long kernelMemoryKb() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  long value = 0, total = 0;
  std::string unit;
  while (in >> key >> value) {
    if (key == "Slab:" || key == "VmallocUsed:" || key == "Percpu:") total += value;
    std::getline(in, unit);
  }
  return total;
}

/// The policy that lets pods labelled app=`client_app` reach those labelled app=`server_app`
/// in namespace `ns` on TCP 80 (connections) and 5001 (the stream).
inline policy::K8sPolicy allowPolicy(const std::string& ns, const std::string& name,
                                     const std::string& server_app, const std::string& client_app) {
  policy::K8sPolicy allow;
  allow.ns = ns;
  allow.name = name;
  allow.pod_selector = policy::Selector(policy::selEq("app", server_app));
  allow.ingress = true;
  policy::K8sRule r;
  policy::K8sPeer peer;
  peer.pod_selector = policy::Selector(policy::selEq("app", client_app));
  r.peers.push_back(peer);
  for (std::uint16_t port : {std::uint16_t{80}, std::uint16_t{5001}}) {
    policy::K8sPort p;
    p.port = port;
    r.ports.push_back(p);
  }
  allow.ingress_rules.push_back(r);
  return allow;
}

/// Connection tracking alone: what any stateful firewall costs a new flow.
inline std::string conntrackOnly(const std::string& table = "zonewall") {
  return "table inet " + table +
         " {\n\tchain forward {\n\t\ttype filter hook forward priority "
         "filter; policy accept;\n\t\tct state established,related accept\n\t}\n}\n";
}

/// The linear chain: one rule per allowed tuple, then the one that allows `client` to reach
/// `server` on TCP 80 and 5001, last; what is left for the server dropped.
inline std::string linearChain(size_t policies, const std::string& client,
                               const std::string& server, const std::string& table = "zonewall") {
  std::string chain = "table inet " + table +
                      " {\n\tchain forward {\n\t\ttype filter hook forward priority filter; "
                      "policy accept;\n";
  chain += "\t\tct state established,related accept\n";
  std::mt19937 rng(7);
  for (size_t i = 0; i < policies; ++i) {
    chain += "\t\tip saddr 10." + std::to_string(1 + rng() % 200) + "." +
             std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + " ip daddr " +
             server + " tcp dport " + std::to_string(1000 + rng() % 50000) + " accept\n";
  }
  chain += "\t\tip saddr " + client + " ip daddr " + server +
           " tcp dport { 80, 5001 } accept\n\t\tip daddr " + server + " drop\n\t}\n}\n";
  return chain;
}

}  // namespace zonewall::bench
