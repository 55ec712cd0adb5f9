#include "zonewall/agent/agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/dataplane/report.h"
#include "zonewall/policy/loader.h"

namespace zonewall::agent {

namespace {
using Seconds = std::chrono::duration<double>;
// After a failed commit: the kernel is read again and the commit retried, no faster than
// this (a kernel that keeps refusing must not be hammered), nor slower than the max.
constexpr std::chrono::milliseconds kRetryMin{100};
constexpr std::chrono::milliseconds kRetryMax{5'000};
}  // namespace

Agent::Agent(AgentOptions options, ClusterState& state, dataplane::Transport& transport,
             Metrics& metrics, PolicyWaitServer* waits)
    : options_(std::move(options)),
      state_(state),
      metrics_(metrics),
      waits_(waits),
      programmer_(transport) {}

void Agent::run(const std::atomic<bool>& stop) {
  std::uint64_t seen = 0;
  auto retry = kRetryMin;
  Clock::time_point next_reconcile = Clock::now() + options_.reconcile_every;
  while (!stop) {
    auto snap = state_.take(seen, next_reconcile, options_.quiet, options_.max_delay, stop);
    if (stop) {
      break;
    }
    if (!snap) {
      if (Clock::now() >= next_reconcile) {
        reconcile();
        next_reconcile = Clock::now() + options_.reconcile_every;
      }
      continue;
    }
    if (apply(*snap)) {
      seen = snap->version;
      retry = kRetryMin;
      continue;
    }
    // Take the state again after a pause (it may have moved on meanwhile).
    auto until = Clock::now() + retry;
    while (!stop && Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    retry = std::min(retry * 2, kRetryMax);
    seen = ~snap->version;
  }
}

void Agent::report(const ClusterState::Snapshot& snap) {
  std::set<std::string> now(snap.dropped.begin(), snap.dropped.end());
  for (const std::string& line : now) {
    if (!reported_.contains(line)) {
      spdlog::warn("left out: {}", line);
      metrics_.rejected.Add({{"kind", "conflict"}}).Increment();
    }
  }
  reported_ = std::move(now);
}

bool Agent::apply(const ClusterState::Snapshot& snap) {
  report(snap);
  auto t0 = Clock::now();
  Diagnostics diags;
  policy::validateStore(snap.store, diags);
  if (diags.hasErrors()) {
    for (const Diagnostic& d : diags.all()) {
      if (d.severity == Severity::kError) spdlog::error("cluster state: {}", d.str());
    }
    spdlog::error("the cluster state does not validate; the kernel keeps its last table");
    metrics_.compile_failures.Increment();
    return true;  // retrying the same input cannot help: wait for the next change
  }
  compiler::Inventory inventory(snap.store);
  auto table = compiler::compileNode(compiler::lower(snap.store), inventory, options_.node);
  if (!table) {
    spdlog::error("compile: {}; the kernel keeps its last table", table.error().str());
    metrics_.compile_failures.Increment();
    return true;
  }
  metrics_.compile_seconds.Observe(Seconds(Clock::now() - t0).count());
  if (!commit(dataplane::buildRuleset(*table, options_.nft), "update")) {
    return false;
  }
  metrics_.event_to_kernel.Observe(Seconds(Clock::now() - snap.first_change).count());
  metrics_.endpoints.Set(static_cast<double>(table->endpoints.size()));
  if (waits_ != nullptr) {
    waits_->committed(table->endpoints);
  }
  table_ = std::move(*table);
  if (!ready_) {
    spdlog::info("ready: {} pods, {} policies, {} entries; {} local endpoints",
                 snap.store.pods.size(),
                 snap.store.k8s_policies.size() + snap.store.calico_policies.size(),
                 table_->entryCount(), table_->endpoints.size());
    ready_ = true;
  }
  return true;
}

bool Agent::commit(dataplane::Ruleset want, const char* why) {
  for (const auto& set : want.sets) {
    metrics_.set_entries.Add({{"set", set.name}}).Set(static_cast<double>(set.elements.size()));
  }
  auto plan = programmer_.plan(want);
  if (!plan) {
    spdlog::error("{}: reading the kernel's table: {}", why, plan.error().str());
    metrics_.commit_failures.Increment();
    return false;
  }
  // What a read of the kernel found. Before the first commit the kernel holds whatever the
  // last agent left (or nothing): differences are expected then, drift only after (a read
  // after a failed commit).
  if (plan->read_kernel) {
    auto level = committed_ ? spdlog::level::warn : spdlog::level::info;
    for (const auto& line : dataplane::describeDrift(*plan)) {
      spdlog::log(level, "{}: {}: {}", why, committed_ ? "drift" : "the kernel's table", line);
    }
  }
  if (plan->empty()) {
    committed_ = std::move(want);
    return true;
  }
  auto t0 = Clock::now();
  auto messages = programmer_.commit(std::move(*plan));
  if (!messages) {
    spdlog::error("{}: commit: {}", why, messages.error().str());
    metrics_.commit_failures.Increment();
    return false;
  }
  metrics_.commits.Increment(static_cast<double>(messages->size()));
  size_t total = 0;
  for (size_t n : *messages) total += n;
  spdlog::info("{}: committed {} messages in {} transactions ({:.2f} ms)", why, total,
               messages->size(), Seconds(Clock::now() - t0).count() * 1e3);
  committed_ = std::move(want);
  return true;
}

void Agent::reconcile() {
  if (!committed_) {
    return;
  }
  metrics_.reconciles.Increment();
  programmer_.reread();
  auto plan = programmer_.plan(*committed_);
  if (!plan) {
    spdlog::error("reconcile: reading the kernel's table: {}", plan.error().str());
    return;
  }
  if (plan->empty()) {
    spdlog::debug("reconcile: the kernel holds the committed table");
    return;
  }
  auto drift = dataplane::describeDrift(*plan);
  metrics_.drift_found.Increment(static_cast<double>(std::max<size_t>(drift.size(), 1)));
  for (const auto& line : drift) spdlog::warn("reconcile: drift: {}", line);
  auto messages = programmer_.commit(std::move(*plan));
  if (!messages) {
    spdlog::error("reconcile: repair: {}", messages.error().str());
    metrics_.commit_failures.Increment();
    return;
  }
  metrics_.drift_repaired.Increment();
  spdlog::warn("reconcile: drift repaired");
}

}  // namespace zonewall::agent
