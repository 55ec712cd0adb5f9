// Compiler benchmark: for N pods x M policies, the full compile of one node's table, its size,
// peak memory, and the time to recompute after one pod's labels change and after one policy
// changes; and lint of 10k policies. Each configuration runs in its own process so that peak
// memory is its own. Prints figures and their ratio to the goals (issue: 150k pods x 10k
// policies ≤ 1 s; one change ≤ 10 ms; lint of 10k policies ≤ 2 s).
//
//   compile_bench [--quick]      (--quick: only the small configurations)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "synthetic.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/lint.h"
#include "zonewall/policy/loader.h"

namespace {

using namespace zonewall;  // NOLINT
using Clock = std::chrono::steady_clock;

double ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

long peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// The node that holds pod 0: in the synthetic cluster every node holds pods_per_node pods.
const std::string kNode = "node-0";

void runConfig(size_t pods, size_t policies) {
  bench::SyntheticSpec spec;
  spec.pods = pods;
  spec.policies = policies;
  auto t0 = Clock::now();
  policy::Store store = bench::syntheticCluster(spec);
  auto t1 = Clock::now();
  compiler::Inventory inv(store);
  auto t2 = Clock::now();
  compiler::Program prog = compiler::lower(store);
  auto t3 = Clock::now();
  auto table = compiler::compileNode(prog, inv, kNode);
  auto t4 = Clock::now();
  if (!table) {
    std::printf("%7zu %6zu  compile failed: %s\n", pods, policies, table.error().str().c_str());
    return;
  }
  double full = ms(t1, t4);

  // One pod's labels change (a pod of another node, in a namespace policies name): the
  // inventory index and the node's table are recomputed.
  store.pods[pods / 2].labels["app"] = "app-1";
  auto p0 = Clock::now();
  compiler::Inventory inv2(store);
  auto pod_table = compiler::compileNode(prog, inv2, kNode);
  auto p1 = Clock::now();

  // One policy changes: the program is lowered again and the table recomputed.
  store.k8s_policies[1].pod_selector = policy::Selector(policy::selEq("app", "app-3"));
  auto q0 = Clock::now();
  compiler::Program prog2 = compiler::lower(store);
  auto pol_table = compiler::compileNode(prog2, inv2, kNode);
  auto q1 = Clock::now();

  std::printf("%7zu %6zu  %9.1f  (index %7.1f, lower %6.1f, table %7.1f)  %7zu %6zu %6zu  %6ld  %9.1f %9.1f\n", pods,
              policies, full, ms(t1, t2), ms(t2, t3), ms(t3, t4), table->entryCount(), table->remote_classes.size(),
              table->dir(compiler::Direction::kIngress).classes.size(), peakRssMb(), ms(p0, p1), ms(q0, q1));
  (void)pod_table;
  (void)pol_table;
  (void)t0;
}

// Lint as users run it: the zonewall binary beside this one, on a file of `policies` policies.
void runLint(size_t policies) {
  bench::SyntheticSpec spec;
  spec.pods = 5000;
  spec.policies = policies;
  std::string yaml = bench::syntheticPolicyYaml(spec);
  char self[4096] = {};
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = std::string(self, n > 0 ? static_cast<size_t>(n) : 0);
  dir = dir.substr(0, dir.rfind('/'));
  std::string zonewall = dir + "/../tools/zonewall";
  std::string file = "/tmp/zonewall-bench-lint-" + std::to_string(getpid()) + ".yaml";
  if (FILE* f = std::fopen(file.c_str(), "w")) {
    std::fwrite(yaml.data(), 1, yaml.size(), f);
    std::fclose(f);
  }
  std::string cmd = zonewall + " lint " + file + " > /dev/null 2>&1";
  auto t0 = Clock::now();
  int rc = std::system(cmd.c_str());
  auto t1 = Clock::now();
  std::remove(file.c_str());
  double t = ms(t0, t1);
  std::printf("zonewall lint of %zu policies (%zu KiB of YAML): %.1f ms (exit %d); goal 2000 ms: %.2fx of goal\n",
              policies, yaml.size() / 1024, t, WEXITSTATUS(rc), t / 2000.0);
}

template <class F>
void inChild(F&& f) {
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    f();
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<size_t> pod_counts = quick ? std::vector<size_t>{1000, 10000} : std::vector<size_t>{1000, 10000, 150000};
  std::vector<size_t> policy_counts = quick ? std::vector<size_t>{100, 1000} : std::vector<size_t>{100, 1000, 10000};
  std::printf("one node's table (%s, ~100 pods per node); times in ms, memory in MiB (peak RSS of the process)\n",
              kNode.c_str());
  std::printf("%7s %6s  %9s  %40s  %7s %6s %6s  %6s  %9s %9s\n", "pods", "pols", "compile", "", "entries", "rcls",
              "lcls", "peakMB", "pod-chg", "pol-chg");
  for (size_t pods : pod_counts) {
    for (size_t pols : policy_counts) inChild([&] { runConfig(pods, pols); });
  }
  inChild([&] { runLint(quick ? 1000 : 10000); });
  return 0;
}
