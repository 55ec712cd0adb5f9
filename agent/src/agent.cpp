#include "zonewall/agent/agent.h"

#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "zonewall/dataplane/report.h"

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
      programmer_(transport),
      compiler_(options_.node) {}

void Agent::run(const std::atomic<bool>& stop) {
  std::uint64_t seen = 0;
  auto retry = kRetryMin;
  Clock::time_point next_reconcile = Clock::now() + options_.reconcile_every;
  while (!stop) {
    auto snap = state_.take(seen, next_reconcile, options_.quiet, options_.max_delay, stop,
                            [this](const ClusterState::Snapshot& s) {
                              return force_full_ || !compiler_.incremental(s);
                            });
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
    force_full_ = true;
  }
}

void Agent::report(const std::vector<std::string>& dropped) {
  std::set<std::string> now(dropped.begin(), dropped.end());
  for (const std::string& line : now) {
    if (!reported_.contains(line)) {
      spdlog::warn("left out: {}", line);
      metrics_.rejected.Add({{"kind", "conflict"}}).Increment();
    }
  }
  reported_ = std::move(now);
}

bool Agent::apply(ClusterState::Snapshot& snap) {
  auto t0 = Clock::now();
  auto path = compiler_.apply(snap);
  if (!path) {
    spdlog::error("compile: {}; the kernel keeps its last table", path.error().str());
    metrics_.compile_failures.Increment();
    force_full_ = true;
    return true;  // the same input cannot compile again: wait for the next change
  }
  force_full_ = false;
  if (*path == ClusterCompiler::Path::kFull) {
    // A fresh compile frees the previous one's hundreds of MB at 150k pods in pieces glibc
    // keeps for itself; hand what is free back to the kernel (a few ms beside a full compile).
    ::malloc_trim(0);
  }
  report(compiler_.dropped());
  auto t1 = Clock::now();
  metrics_.compile_seconds.Observe(Seconds(t1 - t0).count());
  const compiler::NodeTable& table = compiler_.table();
  if (*path != ClusterCompiler::Path::kUnchanged &&
      !commit(dataplane::buildRuleset(table, options_.nft), "update")) {
    return false;
  }
  auto t2 = Clock::now();
  metrics_.event_to_kernel.Observe(Seconds(t2 - snap.first_change).count());
  metrics_.endpoints.Set(static_cast<double>(table.endpoints.size()));
  if (waits_ != nullptr) {
    waits_->committed(table.endpoints);
  }
  if (!ready_) {
    spdlog::info("ready: {} local endpoints, {} entries", table.endpoints.size(),
                 table.entryCount());
    ready_ = true;
  }
  if (on_applied_) {
    on_applied_({.path = *path,
                 .changes = snap.changes.size(),
                 .compile_ms = Seconds(t1 - t0).count() * 1e3,
                 .commit_ms = Seconds(t2 - t1).count() * 1e3,
                 .latency_ms = Seconds(t2 - snap.first_change).count() * 1e3,
                 .version = snap.version});
  }
  return true;
}

bool Agent::commit(dataplane::Ruleset want, const char* why) {
  for (const auto& set : want.sets) {
    metrics_.set_entries.Add({{"set", set.name}}).Set(static_cast<double>(set.elements.size()));
  }
  auto plan = programmer_.plan(std::move(want));  // the programmer keeps it once committed
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
    committed_ = true;
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
  committed_ = true;
  return true;
}

void Agent::reconcile() {
  if (!committed_ || !compiler_.hasTable()) {
    return;  // nothing committed yet, or a retry (which reads the kernel) is under way
  }
  metrics_.reconciles.Increment();
  programmer_.reread();
  auto plan = programmer_.plan(dataplane::buildRuleset(compiler_.table(), options_.nft));
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
