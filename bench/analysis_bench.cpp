// Policy review at scale (issue: diff, check, paths on the synthetic clusters): for N pods x M
// policies, the cluster view (one table in which every pod is local), diff of two revisions
// differing in 1 and in M/10 policies, a 20-statement zone contract, and paths from a zone to
// another; against the brute-force evaluation pod pair by pod pair (the reference evaluator on
// every ordered pair, at one port per protocol), measured in the same run on a sample of pairs
// and scaled to all of them. Each configuration runs in its own process (peak memory is its
// own). Prints figures and ratios; asserts nothing.
//
//   analysis_bench [--quick]      (--quick: the smallest configuration only)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.h"
#include "synthetic.h"
#include "zonewall/analysis/contract.h"
#include "zonewall/analysis/diff.h"
#include "zonewall/analysis/graph.h"
#include "zonewall/analysis/view.h"
#include "zonewall/compiler/reference.h"

namespace {

using namespace zonewall;  // NOLINT
using bench::Clock;
using bench::ms;
using bench::peakRssMb;

// 20 statements over the synthetic cluster's zones (namespace label zone) and apps.
policy::ZoneContract contract() {
  auto sel = [](const std::string& s) { return *policy::parseSelector(s); };
  policy::ZoneContract c;
  c.name = "bench";
  const char* zones[] = {"public", "internal", "secure"};
  for (const char* z : zones) {
    c.zones.push_back({z, sel(std::string("zone == '") + z + "'"), sel("all()"), false, {}});
  }
  for (int a = 0; a < 3; ++a) {
    c.zones.push_back({"app-" + std::to_string(a),
                       sel("all()"),
                       sel("app == 'app-" + std::to_string(a) + "'"),
                       false,
                       {}});
  }
  using K = policy::ContractStatement::Kind;
  const std::vector<policy::ContractPort> db{{policy::kTcp, 5432, 5432, {}}};
  const std::vector<policy::ContractPort> web{{policy::kTcp, 8080, 8080, {}},
                                              {policy::kTcp, 443, 443, {}}};
  for (int k = 0; k < 20; ++k) {
    policy::ContractStatement st;
    st.kind = static_cast<K>(k % 3);
    st.from = c.zones[static_cast<size_t>(k) % c.zones.size()].name;
    st.to = c.zones[static_cast<size_t>(k * 7 + 1) % c.zones.size()].name;
    if (st.kind != K::kDeny) st.ports = k % 2 ? db : web;
    c.statements.push_back(st);
  }
  return c;
}

void runConfig(size_t pods, size_t policies) {
  bench::SyntheticSpec spec;
  spec.pods = pods;
  spec.policies = policies;
  const policy::Store before = bench::syntheticCluster(spec);
  auto t0 = Clock::now();
  auto view = analysis::ClusterView::build(before);
  auto t1 = Clock::now();
  if (!view) {
    std::printf("%7zu %6zu  view failed: %s\n", pods, policies, view.error().str().c_str());
    return;
  }
  const double build = ms(t0, t1);
  // Revisions differing in 1 and in policies/10 Kubernetes policies (removed).
  auto diffOf = [&](size_t changed, size_t& lines) {
    policy::Store after = before;
    after.k8s_policies.erase(after.k8s_policies.begin(),
                             after.k8s_policies.begin() +
                                 static_cast<long>(std::min(changed, after.k8s_policies.size())));
    auto a = Clock::now();
    auto av = analysis::ClusterView::build(after);
    analysis::FlowDiff d = analysis::diffViews(**view, **av);
    auto b = Clock::now();
    lines = d.changes.size();
    return ms(a, b);
  };
  size_t lines1 = 0;
  size_t lines_many = 0;
  const double diff1 = diffOf(1, lines1);
  const double diff_many = diffOf(policies / 10, lines_many);
  auto c0 = Clock::now();
  const policy::ZoneContract zc = contract();
  auto checked = analysis::checkContract(**view, zc);
  auto c1 = Clock::now();
  size_t violated = 0;
  if (checked) {
    for (const auto& s : checked->statements) violated += !s.violations.empty();
  }
  // paths: from the public zone to the secure zone's databases (role=db).
  std::vector<std::uint32_t> extra(before.pods.size(), 0);
  for (size_t p = 0; p < before.pods.size(); ++p) {
    const auto& pod = before.pods[p];
    const auto zone = pod.labels.find("zone");
    if (zone != pod.labels.end() && zone->second == "public") extra[p] |= 1;
    const auto role = pod.labels.find("role");
    if (zone != pod.labels.end() && zone->second == "secure" && role != pod.labels.end() &&
        role->second == "db")
      extra[p] |= 2;
  }
  auto p0 = Clock::now();
  analysis::PodGraph g = analysis::buildPodGraph(**view, extra);
  std::vector<std::uint32_t> src;
  std::vector<std::uint32_t> dst;
  for (std::uint32_t n = 0; n < g.nodes.size(); ++n) {
    if (g.nodes[n].extra & 1U) src.push_back(n);
    if (g.nodes[n].extra & 2U) dst.push_back(n);
  }
  analysis::Reach reach = analysis::reachFrom(g, src);
  auto cut = analysis::minimumCut(g, src, dst);
  auto p1 = Clock::now();
  int hops = -1;
  for (std::uint32_t t : dst) {
    if (reach.hops[t] >= 0 && (hops < 0 || reach.hops[t] < hops)) hops = reach.hops[t];
  }
  // Brute force: the reference evaluator on sampled ordered pod pairs, one port per protocol
  // (TCP 8080, UDP 53): the cost per pair, times every pair, twice (both revisions of a diff).
  compiler::ReferenceEvaluator ref(before);
  const size_t n = before.pods.size();
  const size_t sample = std::min<size_t>(n * n, 20000);
  auto b0 = Clock::now();
  size_t allowed = 0;
  for (size_t k = 0; k < sample; ++k) {
    const auto& s = before.pods[(k * 7919) % n];
    const auto& d = before.pods[(k * 104729 + 13) % n];
    allowed += ref.connectionAllowed({s.ips.front(), d.ips.front(), policy::kTcp, 8080});
    allowed += ref.connectionAllowed({s.ips.front(), d.ips.front(), policy::kUdp, 53});
  }
  auto b1 = Clock::now();
  const double brute_diff = ms(b0, b1) / static_cast<double>(sample) * static_cast<double>(n) *
                            static_cast<double>(n) * 2.0;
  std::printf(
      "%7zu %6zu  %6zu %8.0f %9.0f (%5zu) %9.0f (%5zu) %7.0f (%2zu/20) %7.0f (%2d hops, cut %zu) "
      "%12.0f %8.0fx %6ld\n",
      pods, policies, (*view)->classes().size(), build, diff1, lines1, diff_many, lines_many,
      ms(c0, c1), violated, ms(p0, p1), hops, cut ? cut->size() : 0, brute_diff, brute_diff / diff1,
      peakRssMb());
  (void)allowed;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::printf(
      "analysis_bench: times in ms (each diff builds the second revision's view; the first's is "
      "'view')\n"
      "   pods policies classes   view  diff 1 pol (lines) diff M/10 (lines)   check "
      "(violated)   paths            brute-force diff  ratio  RSS MB\n");
  std::vector<std::pair<size_t, size_t>> configs{{1000, 100}, {10000, 1000}};
  if (quick) configs.resize(1);
  for (const auto& [pods, policies] : configs) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      runConfig(pods, policies);
      std::fflush(stdout);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
  }
  std::printf(
      "150k pods x 10k policies: not run. The one-table view is the cluster compiled with every "
      "pod "
      "local; at that size it has ~72k classes and 47.7M entries and took 585 s and 9.7 GB on "
      "2026-12-07 (README \"Policy review\": the open performance item).\n");
  return 0;
}
