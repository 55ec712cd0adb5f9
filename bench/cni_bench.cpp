// CNI benchmark (root; in network namespaces it creates and removes): ADD and DEL latency of
// zonewall-cni vs Debian's ptp + host-local, both exec'd directly from a node netns exactly as a
// runtime would (env + config on stdin), on fresh pod netns, interleaved pod by pod (the order
// alternating) so both see the same machine state. All pods are added, then all deleted. Prints
// median and p90, and the ratios.
//
//   cni_bench [PODS]   (default 200)
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "test_support.h"

namespace {

using Clock = std::chrono::steady_clock;
using zonewall::testing::run;

struct Plugin {
  std::string name;
  std::string binary;
  std::string conf;
  std::vector<double> add_ms;
  std::vector<double> del_ms;
  int failures = 0;
};

// Exec `binary` with `env` and `conf` on stdin; returns the wall time in ms, or -1 on failure.
double execPlugin(const std::string& binary, const std::map<std::string, std::string>& env,
                  const std::string& conf) {
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return -1;
  std::vector<std::string> envs;
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string bin = binary;
  char* argv[] = {bin.data(), nullptr};
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    execve(bin.c_str(), argv, envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  [[maybe_unused]] ssize_t w = write(in[1], conf.data(), conf.size());
  close(in[1]);
  std::string output;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(out[0], buf, sizeof buf)) > 0) output.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  auto t1 = Clock::now();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s %s failed: %s\n", binary.c_str(), env.at("CNI_COMMAND").c_str(),
                 output.c_str());
    return -1;
  }
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::puts("cni_bench: needs root (network namespaces)");
    return 0;
  }
  const int pods = argc > 1 ? std::atoi(argv[1]) : 200;
  const std::string tag = "zwb" + std::to_string(getpid());
  zonewall::testing::TempDir dir;
  std::string node = tag + "n";
  auto sh = [](const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; };
  // The node: forwarding, a default route (so proxy ARP answers), as in the tests.
  bool ok = sh("ip netns add " + node) && sh("ip -n " + node + " link set lo up") &&
            sh("ip -n " + node + " link add zwup type veth peer name zwup2") &&
            sh("ip -n " + node + " link set zwup up") &&
            sh("ip -n " + node + " route add default dev zwup");
  std::vector<std::string> created{node};
  auto cleanup = [&] {
    for (auto it = created.rbegin(); it != created.rend(); ++it) sh("ip netns del " + *it);
  };
  if (!ok) {
    std::fputs("cni_bench: cannot set up the node netns\n", stderr);
    cleanup();
    return 1;
  }
  int node_fd = open(("/run/netns/" + node).c_str(), O_RDONLY | O_CLOEXEC);
  int host_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  std::string d = dir.path().string();
  Plugin zw{.name = "zonewall-cni",
            .binary = ZONEWALL_CNI,
            .conf = R"({"cniVersion":"1.0.0","name":"zwbench","type":"zonewall",)"
                    R"("ipam":{"subnet":"10.244.0.0/16","dataDir":")" +
                    d + R"(/zw"},"endpointsDir":")" + d + R"(/ep"})"};
  Plugin ptp{.name = "ptp+host-local",
             .binary = "/usr/lib/cni/ptp",
             .conf = R"({"cniVersion":"1.0.0","name":"ptpbench","type":"ptp","ipMasq":false,)"
                     R"("ipam":{"type":"host-local","subnet":"10.245.0.0/16",)"
                     R"("routes":[{"dst":"0.0.0.0/0"}],"dataDir":")" +
                     d + R"(/hl"}})"};

  std::printf("CNI ADD/DEL latency, %d pods each, exec'd directly from a node netns, interleaved\n",
              pods);
  // Pod namespaces first, outside the timed region.
  for (int i = 0; i < pods; ++i) {
    for (const char* side : {"z", "p"}) {
      std::string ns = tag + side + std::to_string(i);
      if (!sh("ip netns add " + ns)) {
        std::fputs("cni_bench: ip netns add failed\n", stderr);
        cleanup();
        return 1;
      }
      created.push_back(ns);
    }
  }
  if (setns(node_fd, CLONE_NEWNET) != 0) return 1;
  // Every pod stays up until all are added (a node full of pods, as the reservation
  // directories of both IPAMs then are), then all are deleted; the plugins alternate.
  auto timeAll = [&](const char* command, auto member) {
    for (int i = 0; i < pods; ++i) {
      std::vector<std::pair<Plugin*, std::string>> order{{&zw, tag + "z" + std::to_string(i)},
                                                         {&ptp, tag + "p" + std::to_string(i)}};
      if (i % 2 == 1) std::swap(order[0], order[1]);
      for (auto& [plugin, ns] : order) {
        std::map<std::string, std::string> env{
            {"CNI_COMMAND", command},
            {"CNI_CONTAINERID", "bench" + std::to_string(i)},
            {"CNI_NETNS", "/run/netns/" + ns},
            {"CNI_IFNAME", "eth0"},
            {"CNI_PATH", "/usr/lib/cni"},
            {"CNI_ARGS",
             "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-" + std::to_string(i)}};
        double t = execPlugin(plugin->binary, env, plugin->conf);
        if (t < 0) {
          ++plugin->failures;
        } else {
          (plugin->*member).push_back(t);
        }
      }
    }
  };
  timeAll("ADD", &Plugin::add_ms);
  timeAll("DEL", &Plugin::del_ms);
  if (setns(host_fd, CLONE_NEWNET) != 0) return 1;
  std::printf("%-16s %10s %10s %10s %10s %9s\n", "plugin", "ADD p50", "ADD p90", "DEL p50",
              "DEL p90", "failures");
  for (const Plugin* p : {&zw, &ptp}) {
    std::printf("%-16s %8.2fms %8.2fms %8.2fms %8.2fms %9d\n", p->name.c_str(),
                percentile(p->add_ms, 0.5), percentile(p->add_ms, 0.9), percentile(p->del_ms, 0.5),
                percentile(p->del_ms, 0.9), p->failures);
  }
  double add_ratio = percentile(zw.add_ms, 0.5) / percentile(ptp.add_ms, 0.5);
  double del_ratio = percentile(zw.del_ms, 0.5) / percentile(ptp.del_ms, 0.5);
  std::printf("ADD median: zonewall-cni = %.2f x ptp+host-local (goal <= 0.33)\n", add_ratio);
  std::printf("DEL median: zonewall-cni = %.2f x ptp+host-local (goal <= 1.0)\n", del_ratio);
  close(node_fd);
  close(host_fd);
  cleanup();
  return zw.failures + ptp.failures == 0 ? 0 : 1;
}
