// Dataplane benchmark (root; runs in network namespaces it creates and removes):
//
//  1. programming latency: cold load of node tables of ~10k and ~100k entries, one policy
//     change and one remote pod relabel on top of the large one, through zonewall's
//     Programmer (plan on the committed state, then its transactions with their grace
//     periods) vs `nft -f` of the same ruleset text (the same elements as add/delete commands
//     for the changes);
//  2. per-packet cost: TCP connection rate, CPU time per connection and throughput between two
//     pods with no table, conntrack only, and 0, 100, 1k and 10k policies compiled by zonewall,
//     vs the same allowed tuples as a linear chain of one rule each, the matching rule last;
//  3. forwarding while a ~100k-entry table is created and deleted (ping latency and loss).
// Prints figures and ratios, all measured in this run. `dataplane_bench SECTION` runs one
// (programming, packets, forwarding).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "kernel/node_harness.h"
#include "packet_bench.h"
#include "synthetic.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/programmer.h"
#include "zonewall/dataplane/transport.h"

namespace {

using namespace zonewall;  // NOLINT
using Clock = std::chrono::steady_clock;
using bench::median;
using bench::Rates;
using testing::NodeHarness;
using testing::run;
using testing::RunResult;

double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

struct Netns {
  explicit Netns(std::string n) : name(std::move(n)) { run("ip netns add " + name); }
  ~Netns() { run("ip netns del " + name + " 2>/dev/null"); }
  std::string path() const { return "/run/netns/" + name; }
  std::string name;
};

struct Setup {
  policy::Store store;
  std::unique_ptr<compiler::Inventory> inv;
  std::unique_ptr<compiler::ProgramBuilder> builder;
  std::unique_ptr<compiler::NodeCompiler> nc;
};

// A synthetic cluster whose node-0 table has roughly the wanted number of entries.
void build(Setup& s, size_t pods, size_t policies, size_t pods_per_node) {
  bench::SyntheticSpec spec;
  spec.pods = pods;
  spec.policies = policies;
  spec.pods_per_node = pods_per_node;
  s.store = bench::syntheticCluster(spec);
  s.inv = std::make_unique<compiler::Inventory>(s.store);
  s.builder = std::make_unique<compiler::ProgramBuilder>(s.store);
  s.nc = std::make_unique<compiler::NodeCompiler>(*s.inv, "node-0");
  (void)s.nc->build(s.builder->program());
}

double timeNftFile(const std::string& ns, const std::string& text) {
  std::string file = "/tmp/zw-bench-" + std::to_string(getpid()) + ".nft";
  std::ofstream(file) << text;
  auto a = Clock::now();
  RunResult r = run("ip netns exec " + ns + " nft -f " + file + " 2>&1");
  auto b = Clock::now();
  std::remove(file.c_str());
  if (r.exit_code != 0) std::printf("  nft -f failed: %s\n", r.out.substr(0, 300).c_str());
  return ms(a, b);
}

// The kernel, with the time of each transaction: the benchmark drives the Programmer (what
// the agent and `zonewall apply` run), and times the transactions it sends.
class TimedTransport : public dataplane::Transport {
 public:
  explicit TimedTransport(dataplane::Transport& kernel) : kernel_(kernel) {}
  struct Commit {
    Clock::time_point start, end;
    bool additive;
    size_t messages;
  };
  std::expected<void, zonewall::Error> commit(const dataplane::Batch& batch) override {
    auto start = Clock::now();
    auto ok = kernel_.commit(batch);
    commits.push_back({start, Clock::now(), batch.additive, batch.messages()});
    if (!ok) std::printf("  netlink failed: %s\n", ok.error().str().c_str());
    return ok;
  }
  std::expected<dataplane::TableSnapshot, zonewall::Error> read(const std::string& table) override {
    return kernel_.read(table);
  }
  std::vector<Commit> commits;

 private:
  dataplane::Transport& kernel_;
};

// For the transactions of one commit, begun at `from`: ms until the table judges as the new
// one (the end of the first transaction that is not additive: the switch; or of the last),
// and ms until the last one ended (the prune, after its grace period).
std::pair<double, double> timing(const TimedTransport& tr, Clock::time_point from) {
  if (tr.commits.empty()) return {0, 0};
  auto effective =
      std::ranges::find_if(tr.commits, [](const TimedTransport::Commit& c) { return !c.additive; });
  if (effective == tr.commits.end()) --effective;
  return {ms(from, effective->end), ms(from, tr.commits.back().end)};
}

// Applies change(i) for i = 0..kChanges-1 (each recompiles `s` incrementally), plans it on the
// committed state (diff) and commits it, and the same element changes through `nft -f` in
// namespace `nft_ns`; prints the medians.
template <class Change>
void measureChanges(const char* label, Setup& s, dataplane::Programmer& prog, TimedTransport& tr,
                    const std::string& nft_ns, Change change) {
  constexpr int kChanges = 21;
  std::vector<double> compile_ms, effect_ms, done_ms, nft_ms;
  size_t n = 0, transactions = 0;
  for (int i = 0; i < kChanges; ++i) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(40));  // the last change's grace period is over
    auto c0 = Clock::now();
    change(i);
    dataplane::Ruleset next = dataplane::buildRuleset(s.nc->table());
    auto plan = prog.plan(next);  // the diff against the committed state, in memory
    if (!plan) return;
    auto c2 = Clock::now();
    // The same element changes as `nft` commands (made before the commit takes the plan).
    n = 0;
    std::string script;
    for (const auto& c : plan->diff.sets) {
      n += c.add.size() + c.remove.size();
      for (const auto& line : dataplane::describeChanges(plan->want, {c})) {
        // "+ set elem" → "add element inet zonewall set { elem }"
        std::string set = line.substr(2, line.find(' ', 2) - 2);
        std::string el = line.substr(line.find(' ', 2) + 1);
        if (line[0] == '-') el = el.substr(0, el.find(" : "));
        script += std::string(line[0] == '+' ? "add" : "delete") + " element inet zonewall " + set +
                  " { " + el + " }\n";
      }
    }
    if (!plan->diff.chains.empty())
      std::printf(
          "  (change %d also changes chains or rebuilds maps: not comparable to nft -f of its "
          "elements)\n",
          i);
    auto c3 = Clock::now();
    tr.commits.clear();
    if (auto ok = prog.commit(std::move(*plan)); !ok) return;
    auto [effect, done] = timing(tr, c3);  // encode included
    effect_ms.push_back(effect);
    done_ms.push_back(done);
    transactions = tr.commits.size();
    nft_ms.push_back(timeNftFile(nft_ns, script));
    compile_ms.push_back(ms(c0, c2));
  }
  std::printf(
      "%-34s %9zu %9.2f %9.1f %7.1fx   (median of %d; %zu element changes, %zu transaction(s), all "
      "done "
      "after %.1f ms, grace periods included; recompile+diff %.2f ms)\n",
      label, s.nc->table().entryCount(), median(effect_ms), median(nft_ms),
      median(nft_ms) / median(effect_ms), kChanges, n, transactions, median(done_ms),
      median(compile_ms));
}

void programming() {
  std::printf(
      "\n1. programming latency (ms; netlink = zonewall's Programmer committing a plan, encode "
      "included, until "
      "the table judges as the new one; nft = the nft -f process)\n");
  std::printf("%-34s %9s %9s %9s %8s\n", "", "entries", "netlink", "nft -f", "ratio");
  struct Size {
    const char* name;
    size_t pods, policies, per_node;
  };
  for (Size sz : {Size{"cold load, ~10k entries", 2000, 300, 300},
                  Size{"cold load, ~100k entries", 2000, 2200, 400}}) {
    Setup s;
    build(s, sz.pods, sz.policies, sz.per_node);
    const compiler::NodeTable& t = s.nc->table();
    dataplane::Ruleset rs = dataplane::buildRuleset(t);
    size_t elements = 0;
    for (const auto& set : rs.sets) elements += set.elements.size();
    Netns a("zwbench" + std::to_string(getpid()) + "a");
    Netns b("zwbench" + std::to_string(getpid()) + "b");
    auto kernel = dataplane::openNetlink(a.path());
    if (!kernel) return;
    TimedTransport tr(**kernel);
    dataplane::Programmer prog(tr);
    // What `zonewall apply` does on an empty kernel: the two transactions of encodeCreate,
    // timed from the first one's start (a fresh Programmer first waits out a grace period),
    // plus the encoding, timed apart (the same call the Programmer makes).
    auto e0 = Clock::now();
    (void)dataplane::encodeCreate(rs, 1);
    double encode = ms(e0, Clock::now());
    auto plan = prog.plan(rs);
    if (!plan || !prog.commit(std::move(*plan))) return;
    double load = encode + (tr.commits.empty() ? 0 : timing(tr, tr.commits.front().start).second);
    size_t messages = 0;
    for (const auto& c : tr.commits) messages += c.messages;
    double nft = timeNftFile(b.name, dataplane::renderNft(rs));
    std::printf(
        "%-34s %9zu %9.1f %9.1f %7.1fx   (%zu set elements, %zu messages; encode %.1f ms)\n",
        sz.name, t.entryCount(), load, nft, nft / load, elements, messages, encode);
    if (sz.policies < 2000) continue;

    // Changes on top of the large table, each made and unmade kChanges times (medians): a
    // policy's selector (verdict map elements only), and a remote pod's labels (its remote
    // class: elements of the class maps, whose jumps make the kernel validate the table).
    policy::K8sPolicy& p = s.store.k8s_policies[7];
    const policy::Selector selector = p.pod_selector;
    measureChanges("one policy change on ~100k", s, prog, tr, b.name, [&](int i) {
      p.pod_selector = i % 2 == 0 ? policy::Selector(policy::selEq("app", "app-2")) : selector;
      s.builder->upsert(p);
      (void)s.nc->programChanged(s.builder->program());
    });
    auto remote = static_cast<std::uint32_t>(
        std::find_if(s.store.pods.begin(), s.store.pods.end(),
                     [](const policy::Pod& pod) { return pod.node != "node-0"; }) -
        s.store.pods.begin());
    const policy::Labels labels = s.store.pods[remote].labels;
    measureChanges("one remote pod relabeled on ~100k", s, prog, tr, b.name, [&](int i) {
      policy::Labels old = s.store.pods[remote].labels;
      s.store.pods[remote].labels = labels;
      if (i % 2 == 0) s.store.pods[remote].labels["app"] = "app-3";
      s.inv->relabel(remote, old);
      (void)s.nc->podLabelsChanged(remote);
    });
  }
}

// The server pod (x/server, 10.244.0.11) accepts TCP 80 from the client (x/client, 10.244.0.10)
// through `policies` synthetic policies plus the one that allows it.
void addPods(policy::Store& st) {
  for (const char* ns : {"x"})
    st.namespaces.push_back({ns, {{policy::kNamespaceNameLabel, ns}}, {}});
  policy::Pod client{
      "x", "client", {{"app", "app-1"}}, "node-0", {zonewall::Addr::fromV4(0x0af4000a)}, {}, {}};
  policy::Pod server{
      "x", "server", {{"app", "app-0"}}, "node-0", {zonewall::Addr::fromV4(0x0af4000b)}, {}, {}};
  st.pods.push_back(client);
  st.pods.push_back(server);
  policy::K8sPolicy allow = bench::allowPolicy("x", "server-from-client", "app-0", "app-1");
  st.k8s_policies.push_back(allow);
}

// What a configuration installs in the node namespace (after the previous one was removed).
struct Config {
  std::string name;
  std::string nft;           // an `nft -f` script, or
  dataplane::Ruleset rules;  // a zonewall ruleset (through the netlink path)
  size_t entries = 0;
  std::vector<Rates> runs;
};

Config zonewallConfig(size_t policies) {
  bench::SyntheticSpec spec;
  spec.pods = 2000;
  spec.policies = policies;
  spec.pods_per_node = 100;
  policy::Store st = bench::syntheticCluster(spec);
  // The two real pods live on node-1 with the synthetic pods of node-1.
  addPods(st);
  for (auto& p : st.pods) {
    if (p.ns == "x") p.node = "node-1";
  }
  compiler::Inventory inv(st);
  auto table = compiler::compileNode(compiler::lower(st), inv, "node-1");
  Config c{std::to_string(policies) + " policies, zonewall",
           "",
           dataplane::buildRuleset(*table),
           table->entryCount(),
           {}};
  return c;
}

// Configurations are measured in interleaved rounds (a 1-second run of each per round), so
// that the machine's drift over the minutes this takes hits all of them alike; medians shown.
void perPacket() {
  std::printf(
      "\n2. per-packet cost: new TCP connections/s and one stream's MB/s, client -> server through "
      "the node\n");
  NodeHarness node({{"x/client", "10.244.0.10"}, {"x/server", "10.244.0.11"}}, {80, 5001});
  if (!node.ok()) {
    std::printf("  harness failed: %s\n", node.error().c_str());
    return;
  }
  std::vector<Config> configs;
  configs.push_back({"no table", "", {}, 0, {}});
  // Connection tracking alone: what any stateful firewall costs a new flow.
  configs.push_back({"conntrack only (1 rule)", bench::conntrackOnly(), {}, 0, {}});
  for (size_t policies : {0, 100, 1000, 10000}) configs.push_back(zonewallConfig(policies));
  for (size_t policies : {100, 1000, 10000}) {
    configs.push_back({std::to_string(policies) + " rules, linear chain",
                       bench::linearChain(policies, "10.244.0.10", "10.244.0.11"),
                       {},
                       0,
                       {}});
  }
  auto tr = dataplane::openNetlink("/run/netns/" + node.nodeNs());
  bench::measureOnce(node, 0, "10.244.0.11");  // warm up (ARP, caches)
  constexpr int kRounds = 7;
  for (int round = 0; round < kRounds; ++round) {
    for (Config& c : configs) {
      run("ip netns exec " + node.nodeNs() + " nft delete table inet zonewall 2>/dev/null");
      if (!c.nft.empty()) timeNftFile(node.nodeNs(), c.nft);
      if (!c.rules.table.empty()) {
        for (const auto& batch : dataplane::encodeCreate(c.rules, 1)) {
          if (auto ok = (*tr)->commit(batch); !ok)
            std::printf("  load failed: %s\n", ok.error().str().c_str());
        }
      }
      c.runs.push_back(bench::measureOnce(node, 0, "10.244.0.11"));
    }
  }
  run("ip netns exec " + node.nodeNs() + " nft delete table inet zonewall 2>/dev/null");
  auto medianOf = [](const Config& c, double Rates::*field) {
    std::vector<double> v;
    for (const Rates& r : c.runs) v.push_back(r.*field);
    return median(v);
  };
  double base_cps = medianOf(configs[0], &Rates::cps);
  double base_mbps = medianOf(configs[0], &Rates::mbps);
  double zw0_cps = medianOf(configs[2], &Rates::cps);
  std::printf("%-28s %9s %8s %8s %12s %9s %8s   (median of %d interleaved rounds)\n", "", "conn/s",
              "vs none", "vs zw 0", "CPU us/conn", "MB/s", "vs none", kRounds);
  for (const Config& c : configs) {
    double cps = medianOf(c, &Rates::cps);
    double mbps = medianOf(c, &Rates::mbps);
    std::printf("%-28s %9.0f %7.0f%% %7.0f%% %12.1f %9.0f %7.0f%%", c.name.c_str(), cps,
                100 * cps / base_cps, 100 * cps / zw0_cps, medianOf(c, &Rates::cpu_us), mbps,
                100 * mbps / base_mbps);
    if (!c.rules.table.empty()) std::printf("   (%zu entries)", c.entries);
    std::printf("\n");
  }
}

// Forwarding while a large table loads: does one big transaction stall the node? A ping
// between two pods the table does not police (their flow is established after the first
// packet) runs at 500 packets/s while a table of ~100k entries is created and deleted three
// times in the node's namespace; its worst round trip and losses are printed next to the same
// ping on the idle node.
void forwardingDuringLoads() {
  std::printf(
      "\n3. forwarding while a ~100k-entry table is created and deleted (ping between two "
      "unpoliced pods, 2 ms apart)\n");
  bench::SyntheticSpec spec;
  spec.pods = 2000;
  spec.policies = 2200;
  spec.pods_per_node = 400;
  policy::Store st = bench::syntheticCluster(spec);
  st.namespaces.push_back({"x", {{policy::kNamespaceNameLabel, "x"}}, {}});
  for (auto [name, ip] : {std::pair{"client", 0x0af4000aU}, std::pair{"server", 0x0af4000bU}}) {
    st.pods.push_back(
        {"x", name, {{"bench", "probe"}}, "node-0", {zonewall::Addr::fromV4(ip)}, {}, {}});
  }
  compiler::Inventory inv(st);
  auto table = compiler::compileNode(compiler::lower(st), inv, "node-0");
  dataplane::Ruleset rs = dataplane::buildRuleset(*table);
  NodeHarness node({{"x/client", "10.244.0.10"}, {"x/server", "10.244.0.11"}}, {80});
  if (!node.ok()) {
    std::printf("  harness failed: %s\n", node.error().c_str());
    return;
  }
  auto tr = dataplane::openNetlink("/run/netns/" + node.nodeNs());
  std::string ping =
      "ip netns exec " + node.podNs(0) + " ping -q -n -i 0.002 -c 1500 -W 1 10.244.0.11";
  auto summary = [](const std::string& out) {
    // "... 1500 packets transmitted, 1500 received, 0% packet loss ..." and "rtt min/avg/max/mdev =
    // a/b/c/d ms"
    std::string loss = "?";
    if (auto at = out.find("% packet loss"); at != std::string::npos) {
      auto from = out.rfind(' ', at);
      loss = out.substr(from + 1, at - from);
    }
    std::string rtt = "?";
    if (auto at = out.find("rtt min/avg/max/mdev = "); at != std::string::npos)
      rtt = out.substr(at + 23, out.find(" ms", at) - at - 23);
    return "loss " + loss + ", rtt min/avg/max/mdev " + rtt + " ms";
  };
  run(ping.substr(0, ping.find("-c 1500")) + "-c 50 10.244.0.11");  // warm up (ARP, conntrack)
  std::printf("  idle node:          %s\n", summary(run(ping).out).c_str());
  std::vector<double> loads;
  std::vector<double> deletes;
  std::thread loader([&] {
    for (int k = 0; k < 3; ++k) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      auto t0 = Clock::now();
      for (const auto& batch : dataplane::encodeCreate(rs, 1)) {
        if (auto ok = (*tr)->commit(batch); !ok)
          std::printf("  load failed: %s\n", ok.error().str().c_str());
      }
      auto t1 = Clock::now();
      (void)(*tr)->commit(dataplane::encodeDropTable(rs.table, 1));
      auto t2 = Clock::now();
      loads.push_back(ms(t0, t1));
      deletes.push_back(ms(t1, t2));
    }
  });
  std::string during = run(ping).out;
  loader.join();
  std::printf("  3 loads + deletes:  %s\n", summary(during).c_str());
  std::printf("  (%zu entries; loads took %.0f / %.0f / %.0f ms, deletes %.0f / %.0f / %.0f ms)\n",
              table->entryCount(), loads[0], loads[1], loads[2], deletes[0], deletes[1],
              deletes[2]);
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::printf("dataplane_bench needs root (network namespaces, nftables)\n");
    return 1;
  }
  std::string only = argc > 1 ? argv[1] : "";
  if (!only.empty() && only != "programming" && only != "packets" && only != "forwarding") {
    std::printf("usage: dataplane_bench [programming|packets|forwarding]\n");
    return 2;
  }
  if (only.empty() || only == "programming") programming();
  if (only.empty() || only == "packets") perPacket();
  if (only.empty() || only == "forwarding") forwardingDuringLoads();
  return 0;
}
