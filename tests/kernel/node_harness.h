// A node in network namespaces, wired as DESIGN.md's CNI section says, for kernel tests:
//
//   node netns ── zwh<i> ══ veth ══ eth0 in pod netns <i>
//                 (no address, proxy ARP,   (IP/32, default via 169.254.1.1 onlink)
//                  route IP/32)
//
// Every pod runs zw_probe servers (TCP, UDP, SCTP when the kernel has it) on the given ports;
// probe() measures the reachability matrix with real packets, all sources in parallel.
// Everything created is removed in the destructor, and left-overs of crashed runs at start.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "zonewall/policy/model.h"

extern char** environ;

namespace zonewall::testing {

inline std::string probeBinary() { return ZONEWALL_PROBE; }

class NodeHarness {
 public:
  struct PodSpec {
    std::string key;  // "ns/name"
    std::string ip;
  };

  /// `tag` tells apart the namespaces of two nodes in one process (a letter: the pid before it
  /// is what a later run's clean-up reads).
  NodeHarness(std::vector<PodSpec> pods, std::vector<int> ports, const std::string& tag = {})
      : pods_(std::move(pods)) {
    reapStale();
    prefix_ = "zwt" + std::to_string(getpid()) + tag;
    node_ = prefix_ + "n";
    if (!sh("ip netns add " + node_)) {
      fail("ip netns add " + node_);
      return;
    }
    created_.push_back(node_);
    sh("ip -n " + node_ + " link set lo up");
    sh("ip netns exec " + node_ + " sysctl -qw net.ipv4.ip_forward=1");
    sh("ip netns exec " + node_ + " sysctl -qw net.ipv6.conf.all.forwarding=1");
    // A node has a default route (to the underlay): proxy ARP answers only for addresses it
    // can route, 169.254.1.1 among them. The peer end just absorbs what is sent there.
    if (!sh("ip -n " + node_ + " link add zwup type veth peer name zwup2") ||
        !sh("ip -n " + node_ + " link set zwup up") ||
        !sh("ip -n " + node_ + " link set zwup2 up") ||
        !sh("ip -n " + node_ + " route add default dev zwup")) {
      fail("node default route");
      return;
    }
    for (size_t i = 0; i < pods_.size(); ++i) {
      std::string ns = podNs(i);
      // The host veth is named as the CNI plugin names it: the dataplane's anti-spoofing set
      // knows the pod by that name.
      auto slash = pods_[i].key.find('/');
      std::string host =
          zonewall::hostVethName(pods_[i].key.substr(0, slash), pods_[i].key.substr(slash + 1));
      const std::string& ip = pods_[i].ip;
      bool v6 = ip.find(':') != std::string::npos;
      std::string plen = v6 ? "/128" : "/32";
      if (!sh("ip netns add " + ns)) {
        fail("ip netns add " + ns);
        return;
      }
      created_.push_back(ns);
      bool ok =
          sh("ip -n " + node_ + " link add " + host + " type veth peer name eth0 netns " + ns) &&
          sh("ip -n " + ns + " link set lo up") && sh("ip -n " + ns + " link set eth0 up") &&
          sh("ip -n " + ns + " addr add " + ip + plen + " dev eth0") &&
          sh("ip -n " + node_ + " link set " + host + " up") &&
          sh("ip netns exec " + node_ + " sysctl -qw net.ipv4.conf." + host + ".proxy_arp=1") &&
          // Answer proxy ARP at once (the default delays up to 0.8 s), as Calico does.
          sh("ip netns exec " + node_ + " sysctl -qw net.ipv4.neigh." + host + ".proxy_delay=0") &&
          sh("ip -n " + node_ + " route add " + ip + plen + " dev " + host);
      if (!v6) {
        ok = ok && sh("ip -n " + ns + " route add 169.254.1.1 dev eth0 scope link") &&
             sh("ip -n " + ns + " route add default via 169.254.1.1 dev eth0 onlink");
      }
      if (!ok) {
        fail("wiring pod " + pods_[i].key);
        return;
      }
      std::vector<std::string> argv{"ip", "netns", "exec", ns, probeBinary(), "serve"};
      for (int p : ports) argv.push_back(std::to_string(p));
      pid_t pid = spawn(argv);
      if (pid <= 0) {
        fail("starting the servers of " + pods_[i].key);
        return;
      }
      servers_.push_back(pid);
    }
    // The servers bind within milliseconds; give them a moment before the first probe.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ok_ = true;
  }

  ~NodeHarness() {
    for (pid_t pid : servers_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) sh("ip netns del " + *it);
  }

  NodeHarness(const NodeHarness&) = delete;
  NodeHarness& operator=(const NodeHarness&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& nodeNs() const { return node_; }
  std::string podNs(size_t i) const { return prefix_ + "p" + std::to_string(i); }
  /// Runs a shell command in pod i's namespace; true on success.
  bool inPod(size_t i, const std::string& cmd) const {
    return sh("ip netns exec " + podNs(i) + " " + cmd);
  }
  bool inNode(const std::string& cmd) const { return sh("ip netns exec " + node_ + " " + cmd); }
  /// Servers in the node namespace itself (stopped with the pods' servers).
  bool serveInNode(const std::vector<int>& ports) {
    std::vector<std::string> argv{"ip", "netns", "exec", node_, probeBinary(), "serve"};
    for (int p : ports) argv.push_back(std::to_string(p));
    pid_t pid = spawn(argv);
    if (pid > 0) servers_.push_back(pid);
    return pid > 0;
  }

  /// "from -> to" → allowed, for every ordered pair of distinct pods (a pod's traffic to itself
  /// stays inside its own namespace and never meets the node: upstream ignores it too).
  std::map<std::string, bool> probe(int port, const std::string& proto,
                                    int timeout_ms = 400) const {
    std::map<std::string, bool> allowed;
    for (const auto& [pair, verdict] : verdicts(port, proto, timeout_ms)) {
      allowed[pair] = verdict == "ok";
    }
    return allowed;
  }

  /// As probe(), with zw_probe's verdict: "ok", "fail" (timed out: a silent drop) or
  /// "refused" (a reset or an ICMP error came back).
  std::map<std::string, std::string> verdicts(int port, const std::string& proto,
                                              int timeout_ms = 400) const {
    std::vector<std::future<std::string>> outs;
    for (size_t i = 0; i < pods_.size(); ++i) {
      std::string cmd = "ip netns exec " + podNs(i) + " " + probeBinary() + " probe " +
                        std::to_string(timeout_ms);
      for (size_t j = 0; j < pods_.size(); ++j) {
        if (i == j) continue;
        bool v6 = pods_[j].ip.find(':') != std::string::npos;
        cmd += " " + (v6 ? "[" + pods_[j].ip + "]" : pods_[j].ip) + ":" + std::to_string(port) +
               "/" + proto;
      }
      outs.push_back(std::async(std::launch::async, [cmd] { return run(cmd + " 2>&1").out; }));
    }
    std::map<std::string, std::string> result;
    for (size_t i = 0; i < pods_.size(); ++i) {
      std::istringstream lines(outs[i].get());
      std::string target;
      std::string verdict;
      size_t j = 0;
      while (lines >> target >> verdict) {
        if (j == i) ++j;
        if (j >= pods_.size()) break;
        result[pods_[i].key + " -> " + pods_[j].key] = verdict;
        ++j;
      }
    }
    return result;
  }

  static bool sctpAvailable() {
    run("command -v modprobe >/dev/null && modprobe sctp 2>/dev/null");
    return run(probeBinary() + " sctp").exit_code == 0;
  }

 private:
  static bool sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; }

  void fail(const std::string& what) {
    error_ = what;
    ok_ = false;
  }

  static pid_t spawn(const std::vector<std::string>& args) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc == 0 ? pid : -1;
  }

  // Namespaces of earlier runs whose process is gone (a crash skips destructors).
  static void reapStale() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
      std::string name = e.path().filename().string();
      if (!name.starts_with("zwt")) continue;
      pid_t pid = std::atoi(name.substr(3).c_str());
      if (pid > 0 && kill(pid, 0) != 0) sh("ip netns del " + name);
    }
  }

  std::vector<PodSpec> pods_;
  std::string prefix_;
  std::string node_;
  std::vector<std::string> created_;
  std::vector<pid_t> servers_;
  bool ok_ = false;
  std::string error_;
};

/// Skips outside CI when unprivileged; fails under CI (kernel tests must run there).
#define ZONEWALL_REQUIRE_ROOT()                                                              \
  do {                                                                                       \
    if (!::zonewall::testing::isRoot()) {                                                    \
      if (::zonewall::testing::inCi()) FAIL() << "kernel test needs root under CI";          \
      GTEST_SKIP() << "kernel test: needs root (network namespaces, nftables); run as root"; \
    }                                                                                        \
  } while (0)

}  // namespace zonewall::testing
