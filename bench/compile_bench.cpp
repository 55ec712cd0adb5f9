// Compiler benchmark: for N pods x M policies, the full compile of one node's table, its size,
// peak memory, and the time to recompute after one pod's labels change and after one policy
// changes; and lint of 10k policies. Each configuration runs in its own process so that peak
// memory is its own. Prints figures and their ratio to the goals (issue: 150k pods x 10k
// policies ≤ 1 s; one change ≤ 10 ms; lint of 10k policies ≤ 2 s); then the same clusters with
// 100 AdminNetworkPolicies and a BaselineAdminNetworkPolicy on top, as ratios to the figures
// without them measured in the same run (goal: within 10%).
//
//   compile_bench [--quick]      (--quick: only the small configurations)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "synthetic.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/lint.h"
#include "zonewall/policy/loader.h"

namespace {

using namespace zonewall;  // NOLINT
using bench::Clock;
using bench::ms;
using bench::peakRssMb;

// The node that holds pod 0: in the synthetic cluster every node holds pods_per_node pods.
const std::string kNode = "node-0";

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// What one configuration measured (ms), for the comparisons.
struct Figures {
  double full = 0;
  double pod_chg = 0;
  double local = 0;
  double pol_chg = 0;
  double admin_chg = 0;  ///< an AdminNetworkPolicy changed (with admin policies only)
  size_t entries = 0;
};

Figures runConfig(size_t pods, size_t policies, bool admin = false, bool print = true) {
  bench::SyntheticSpec spec;
  spec.pods = pods;
  spec.policies = policies;
  if (admin) {
    spec.admin_policies = 100;
    spec.baseline = true;
  }
  policy::Store store = bench::syntheticCluster(spec);
  auto t1 = Clock::now();
  compiler::Inventory inv(store);
  auto t2 = Clock::now();
  compiler::ProgramBuilder builder(store);
  auto t3 = Clock::now();
  compiler::NodeCompiler nc(inv, kNode);
  auto built = nc.build(builder.program());
  auto t4 = Clock::now();
  if (!built) {
    std::printf("%7zu %6zu  compile failed: %s\n", pods, policies, built.error().str().c_str());
    return {};
  }
  const compiler::NodeTable& table = nc.table();
  double full = ms(t1, t4);
  size_t entries = table.entryCount();
  size_t rcls = table.remote_classes.size();
  size_t lcls = table.dir(compiler::Direction::kIngress).classes.size();
  long peak = peakRssMb();

  // One pod's labels change, 13 times (5 pods of this node, then 8 of other nodes): incremental,
  // against the baseline of a full recompute (index + lowering + table) in the same run.
  std::vector<double> pod_inc;
  std::vector<double> local_inc;
  for (size_t k = 0; k < 13; ++k) {
    bool local = k < 5;  // the first pods_per_node pods are on node-0
    auto pod = static_cast<std::uint32_t>(local ? 3 + 10 * k : (pods / 9) * (k - 4) + 7);
    policy::Labels old = store.pods[pod].labels;
    store.pods[pod].labels["app"] = "app-" + std::to_string((k + 1) % 8);
    auto a = Clock::now();
    inv.relabel(pod, old);
    auto r = nc.podLabelsChanged(pod);
    auto b = Clock::now();
    if (!r) std::printf("update failed: %s\n", r.error().str().c_str());
    (local ? local_inc : pod_inc).push_back(ms(a, b));
  }
  auto f0 = Clock::now();
  {
    compiler::Inventory inv2(store);
    compiler::Program prog2 = compiler::lower(store);
    auto t = compiler::compileNode(prog2, inv2, kNode);
    (void)t;
  }
  auto f1 = Clock::now();
  double full_recompute = ms(f0, f1);

  // A pod added, then deleted, 9 times (other nodes' pods, and one local pod first): the
  // inventory's slots and NodeCompiler::podsChanged.
  std::vector<double> add_inc;
  std::vector<double> del_inc;
  for (size_t k = 0; k < 9; ++k) {
    policy::Pod pod = store.pods[k == 0 ? 3 : (pods / 9) * k + 11];
    pod.name = "bench-added-" + std::to_string(k);
    pod.ips = {Addr::fromV4(0x0b000000u + static_cast<std::uint32_t>(k))};
    auto a = Clock::now();
    store.pods.push_back(pod);
    auto i = static_cast<std::uint32_t>(store.pods.size() - 1);
    auto r = nc.podsChanged({}, inv.addPod(i));
    auto b = Clock::now();
    if (r) {
      r = nc.podsChanged(inv.removePod(i), {});
      store.pods[i].ips.clear();
      inv.recycle();
    }
    auto c = Clock::now();
    if (!r) std::printf("update failed: %s\n", r.error().str().c_str());
    add_inc.push_back(ms(a, b));
    del_inc.push_back(ms(b, c));
  }
  // One policy changes (a Kubernetes policy's selector), 9 times.
  std::vector<double> pol_inc;
  for (size_t k = 0; k < 9; ++k) {
    policy::K8sPolicy& p = store.k8s_policies[(k * 37) % store.k8s_policies.size()];
    p.pod_selector = policy::Selector(policy::selEq("app", "app-" + std::to_string(k % 8)));
    auto a = Clock::now();
    builder.upsert(p);
    auto r = nc.programChanged(builder.program());
    auto b = Clock::now();
    if (!r) std::printf("update failed: %s\n", r.error().str().c_str());
    pol_inc.push_back(ms(a, b));
  }
  // One AdminNetworkPolicy changes (its priority and one subject), 9 times.
  std::vector<double> admin_inc;
  for (size_t k = 0; admin && k < 9; ++k) {
    policy::AdminPolicy p = bench::syntheticAdminPolicy(spec, (k * 11) % 100, 1 + int(k));
    auto a = Clock::now();
    builder.upsert(p);
    auto r = nc.programChanged(builder.program());
    auto b = Clock::now();
    if (!r) std::printf("update failed: %s\n", r.error().str().c_str());
    admin_inc.push_back(ms(a, b));
  }
  if (print) {
    std::printf(
        "%7zu %6zu  %8.1f  (index %6.1f, lower %5.1f, table %6.1f)  %7zu %5zu %5zu  %6ld  %8.2f "
        "%8.2f %8.2f %8.2f %8.2f  %8.1f  %6.0fx\n",
        pods, policies, full, ms(t1, t2), ms(t2, t3), ms(t3, t4), entries, rcls, lcls, peak,
        median(pod_inc), median(local_inc), median(add_inc), median(del_inc), median(pol_inc),
        full_recompute,
        full_recompute / std::max(1e-3, std::max({median(pod_inc), median(pol_inc), median(add_inc),
                                                  median(del_inc), median(local_inc)})));
  }
  return {full, median(pod_inc), median(local_inc), median(pol_inc), median(admin_inc), entries};
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
  std::printf(
      "zonewall lint of %zu policies (%zu KiB of YAML): %.1f ms (exit %d); goal 2000 ms: %.2fx of "
      "goal\n",
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

// Runs `f` in a child process (its own heap) and brings its Figures back through a pipe.
template <class F>
Figures figuresInChild(F&& f) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    Figures r = f();
    ssize_t w = write(fds[1], &r, sizeof r);
    (void)w;
    _exit(0);
  }
  close(fds[1]);
  Figures r;
  ssize_t n = read(fds[0], &r, sizeof r);
  close(fds[0]);
  waitpid(pid, nullptr, 0);
  return n == sizeof r ? r : Figures{};
}

// The same cluster with and without 100 AdminNetworkPolicies + the BaselineAdminNetworkPolicy,
// alternated three times (A B A B A B), each figure the best of its three runs: the admin
// policies' cost as a ratio measured in this run.
void compareAdmin(size_t pods, size_t policies) {
  constexpr int kRounds = 3;
  Figures without[kRounds];
  Figures with[kRounds];
  for (int round = 0; round < kRounds; ++round) {
    without[round] = figuresInChild([&] { return runConfig(pods, policies, false, false); });
    with[round] = figuresInChild([&] { return runConfig(pods, policies, true, false); });
  }
  auto best = [](const Figures(&f)[kRounds], double Figures::*m) {
    double b = f[0].*m;
    for (const Figures& x : f) b = std::min(b, x.*m);
    return b;
  };
  auto row = [&](const char* what, double Figures::*m) {
    double a = best(without, m);
    double b = best(with, m);
    std::printf("  %-22s %9.2f ms %9.2f ms   %5.2fx\n", what, a, b, b / std::max(1e-6, a));
  };
  std::printf("%zu pods x %zu policies (+100 ANPs and the BANP: %zu -> %zu entries)\n", pods,
              policies, without[0].entries, with[0].entries);
  std::printf("  %-22s %12s %12s   %6s\n", "", "without", "with", "ratio");
  row("full compile", &Figures::full);
  row("pod change (median)", &Figures::pod_chg);
  row("local pod (median)", &Figures::local);
  row("policy change (median)", &Figures::pol_chg);
  std::printf("  %-22s %12s %9.2f ms\n", "admin policy change", "",
              best(with, &Figures::admin_chg));
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  if (argc > 1 && std::strcmp(argv[1], "--size") == 0) {  // one size alone: --size PODS POLS
    auto pods = argc == 4 ? bench::parseCount("compile_bench", argv[2], 100, 1000000, "PODS")
                          : std::nullopt;
    auto pols =
        argc == 4 ? bench::parseCount("compile_bench", argv[3], 1, 1000000, "POLS") : std::nullopt;
    if (!pods || !pols) {
      std::fprintf(stderr, "usage: compile_bench [--quick | --admin | --size PODS POLS]\n");
      return 2;
    }
    runConfig(*pods, *pols);
    return 0;
  }
  if (argc > 1 && std::strcmp(argv[1], "--admin") == 0) {  // the admin comparison alone
    compareAdmin(10000, 1000);
    compareAdmin(150000, 10000);
    return 0;
  }
  std::vector<size_t> pod_counts =
      quick ? std::vector<size_t>{1000, 10000} : std::vector<size_t>{1000, 10000, 150000};
  std::vector<size_t> policy_counts =
      quick ? std::vector<size_t>{100, 1000} : std::vector<size_t>{100, 1000, 10000};
  std::printf(
      "one node's table (%s, ~100 pods per node); times in ms, memory in MiB (peak RSS of the "
      "process)\n",
      kNode.c_str());
  std::printf(
      "compile: full compile of the node (index + lowering + table); pod-chg: median of 8 label "
      "changes of\n"
      "remote pods, incremental; local: median of 5 local pods'; pod-add / pod-del: median of 9 "
      "pods added, "
      "then\n"
      "deleted (one local), incremental; pol-chg: median of 9 policy changes, incremental;\n"
      "full-rc: the baseline, a full recompute after such a change; speedup: full-rc / slowest "
      "incremental.\n"
      "Goals: compile <= 1000 ms at 150k x 10k; a change <= 10 ms.\n");
  std::printf("%7s %6s  %8s  %38s  %7s %5s %5s  %6s  %8s %8s %8s %8s %8s  %8s  %7s\n", "pods",
              "pols", "compile", "", "entries", "rcls", "lcls", "peakMB", "pod-chg", "local",
              "pod-add", "pod-del", "pol-chg", "full-rc", "speedup");
  for (size_t pods : pod_counts) {
    for (size_t pols : policy_counts) inChild([&] { runConfig(pods, pols); });
  }
  inChild([&] { runLint(quick ? 1000 : 10000); });
  std::printf(
      "\ncluster-admin policy on top (goal: full compile and one change within 10%% of the "
      "figures without):\n");
  compareAdmin(10000, 1000);
  if (!quick) compareAdmin(150000, 10000);
  return 0;
}
