// A "node" network namespace in which zonewall-cni is exec'd exactly as a runtime would:
// env + config on stdin, result on stdout. Pods are network namespaces the test creates.
//
//   node netns zwt<pid><tag>: lo up, forwarding on, default route out of an underlay veth
//   (proxy ARP answers 169.254.1.1 only when the node can route it, as on a real node)
//   pod netns  zwt<pid><tag>p<n>: created empty; the plugin wires them
//
// Everything is removed in the destructor; NodeHarness::reapStale-style cleanup of crashed runs
// works on the same "zwt<pid>" prefix.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "node_harness.h"
#include "test_support.h"

namespace zonewall::testing {

inline std::string cniBinary() { return ZONEWALL_CNI; }

struct PluginRun {
  int exit_code = -1;  ///< -1: killed or did not exit
  std::string out;
  nlohmann::json json() const { return nlohmann::json::parse(out, nullptr, false); }
};

/// A plugin process started in the node's netns.
struct PluginProcess {
  pid_t pid = -1;
  int out_fd = -1;
};

class CniNode {
 public:
  /// `subnets`: the ipam.subnet list ("10.244.1.0/24", "fd00:1::/64").
  CniNode(std::string tag, std::vector<std::string> subnets) : subnets_(std::move(subnets)) {
    prefix_ = "zwt" + std::to_string(getpid()) + tag;
    node_ = prefix_;
    ok_ = sh("ip netns add " + node_);
    if (!ok_) return;
    created_.push_back(node_);
    ok_ = sh("ip -n " + node_ + " link set lo up") &&
          sh("ip -n " + node_ + " link add zwup type veth peer name zwup2") &&
          sh("ip -n " + node_ + " link set zwup up") &&
          sh("ip -n " + node_ + " link set zwup2 up") &&
          sh("ip -n " + node_ + " route add default dev zwup") &&
          sh("ip -n " + node_ + " -6 route add default dev zwup");
    node_fd_ = ::open(("/run/netns/" + node_).c_str(), O_RDONLY | O_CLOEXEC);
    ok_ = ok_ && node_fd_ >= 0;
  }

  ~CniNode() {
    for (pid_t pid : stray_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (node_fd_ >= 0) ::close(node_fd_);
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) sh("ip netns del " + *it);
  }
  CniNode(const CniNode&) = delete;
  CniNode& operator=(const CniNode&) = delete;

  bool ok() const { return ok_; }
  const std::string& ns() const { return node_; }
  std::string dataDir() const { return (dir_.path() / "data").string(); }
  std::string endpointsDir() const { return (dir_.path() / "endpoints").string(); }
  std::string poolDir() const { return dataDir() + "/zwtest"; }

  /// The network config, with `extra` merged over the defaults.
  std::string conf(const std::string& version = "1.0.0",
                   const nlohmann::json& extra = nlohmann::json::object()) const {
    nlohmann::json c = {{"cniVersion", version},
                        {"name", "zwtest"},
                        {"type", "zonewall"},
                        {"ipam", {{"subnet", subnets_}, {"dataDir", dataDir()}}},
                        {"endpointsDir", endpointsDir()}};
    c.merge_patch(extra);
    return c.dump();
  }

  /// A new, empty pod netns; returns its path.
  std::string newPod() {
    std::string name = prefix_ + "p" + std::to_string(pods_++);
    if (!sh("ip netns add " + name)) return "";
    created_.push_back(name);
    sh("ip -n " + name + " link set lo up");
    return "/run/netns/" + name;
  }
  void deletePod(const std::string& path) {
    std::string name = path.substr(path.rfind('/') + 1);
    sh("ip netns del " + name);
    std::erase(created_, name);
  }

  /// The environment a runtime passes for `command` on container `cid`.
  static std::map<std::string, std::string> env(const std::string& command, const std::string& cid,
                                                const std::string& netns,
                                                const std::string& ifname = "eth0",
                                                const std::string& args = "") {
    std::map<std::string, std::string> e{{"CNI_COMMAND", command}, {"CNI_PATH", "/usr/lib/cni"}};
    if (!cid.empty()) e["CNI_CONTAINERID"] = cid;
    e["CNI_NETNS"] = netns;
    if (!ifname.empty()) e["CNI_IFNAME"] = ifname;
    if (!args.empty()) e["CNI_ARGS"] = args;
    return e;
  }

  PluginProcess start(const std::map<std::string, std::string>& env,
                      const std::string& stdin_text) {
    int in[2];
    int out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return {};
    std::vector<std::string> envs;
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : envs) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string bin = cniBinary();
    char* argv[] = {bin.data(), nullptr};
    pid_t pid = ::fork();
    if (pid == 0) {
      // Only async-signal-safe calls between fork and exec.
      if (::setns(node_fd_, CLONE_NEWNET) != 0) _exit(127);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execve(bin.c_str(), argv, envp.data());
      _exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    if (pid > 0) {
      // The plugin reads all of stdin before it writes; one that exits without reading it is
      // an EPIPE here, not a SIGPIPE.
      ::signal(SIGPIPE, SIG_IGN);
      for (size_t done = 0; done < stdin_text.size();) {
        ssize_t n = ::write(in[1], stdin_text.data() + done, stdin_text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
    }
    ::close(in[1]);
    return {pid, out[0]};
  }

  static PluginRun finish(PluginProcess p) {
    PluginRun r;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(p.out_fd, buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
    ::close(p.out_fd);
    int status = 0;
    ::waitpid(p.pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
  }

  PluginRun exec(const std::map<std::string, std::string>& env, const std::string& stdin_text) {
    return finish(start(env, stdin_text));
  }

  /// ADD with Kubernetes args for pod `ns/name`.
  PluginRun add(const std::string& cid, const std::string& netns, const std::string& pod = "",
                const std::string& version = "1.0.0") {
    std::string args;
    if (!pod.empty()) {
      auto slash = pod.find('/');
      args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=" + pod.substr(0, slash) +
             ";K8S_POD_NAME=" + pod.substr(slash + 1);
    }
    return exec(env("ADD", cid, netns, "eth0", args), conf(version));
  }

  bool inNode(const std::string& cmd) const { return sh("ip netns exec " + node_ + " " + cmd); }
  std::string nodeOut(const std::string& cmd) const {
    return run("ip netns exec " + node_ + " " + cmd + " 2>&1").out;
  }
  static bool inNs(const std::string& netns_path, const std::string& cmd) {
    return sh("nsenter --net=" + netns_path + " " + cmd);
  }

  /// Files in the IPAM directory that are reservations (named by an address; the attachment
  /// locks are in a subdirectory).
  std::vector<std::string> reservations() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(poolDir(), ec)) {
      std::string n = e.path().filename();
      if (!e.is_directory() && n != "lock" && !n.starts_with("last_reserved_ip") &&
          !n.starts_with("."))
        out.push_back(n);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  /// Host veths with a zonewall alias, by name.
  std::vector<std::string> hostVeths() const {
    std::vector<std::string> out;
    std::istringstream lines(nodeOut("ip -o link show"));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.find("alias zonewall ") == std::string::npos) continue;
      auto colon = line.find(": ");
      auto at = line.find_first_of("@:", colon + 2);
      out.push_back(line.substr(colon + 2, at - colon - 2));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static bool sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; }

  /// A TCP connection from `client_netns` to `target` ("ip:port") reaches a zw_probe server
  /// listening on `port` in `server_netns`.
  static bool tcpReaches(const std::string& client_netns, const std::string& server_netns, int port,
                         const std::string& target) {
    pid_t server = ::fork();
    if (server == 0) {
      ::execlp("nsenter", "nsenter", ("--net=" + server_netns).c_str(), probeBinary().c_str(),
               "serve", std::to_string(port).c_str(), nullptr);
      _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server binds in ~1 ms
    std::string out = run("nsenter --net=" + client_netns + " " + probeBinary() + " probe 1000 " +
                          target + "/TCP")
                          .out;
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    return out.find(" ok") != std::string::npos;
  }

 private:
  TempDir dir_;
  std::vector<std::string> subnets_;
  std::string prefix_;
  std::string node_;
  int node_fd_ = -1;
  int pods_ = 0;
  std::vector<std::string> created_;
  std::vector<pid_t> stray_;
  bool ok_ = false;
};

}  // namespace zonewall::testing
