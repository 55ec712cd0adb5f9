// The agent's loop: cluster state → compile → commit, and nothing else on its thread.
//
//   take() a snapshot (every change since the last, a burst coalesced)
//     → assemble the store → lower, compile this node's table → ruleset
//     → Programmer::plan (a diff against the committed state, in memory) → commit
//     → answer the CNI plugins waiting for their pods, update the metrics
//   every reconcile interval: read the kernel, report drift, repair it
//
// Nothing that fails stops enforcement: input that does not compile leaves the kernel with
// its last table (logged, counted); a commit the kernel refuses is retried after a read of
// the kernel. The first commit waits until every source has listed everything, and is a diff
// against whatever table the kernel holds (a restart never flushes).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "zonewall/agent/cluster_compiler.h"
#include "zonewall/agent/cluster_state.h"
#include "zonewall/agent/metrics.h"
#include "zonewall/agent/policy_wait.h"
#include "zonewall/compiler/table.h"
#include "zonewall/dataplane/programmer.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::agent {

struct AgentOptions {
  std::string node;
  dataplane::NftOptions nft;
  /// A burst ends when nothing changed for `quiet`; it is committed at most `max_delay` after
  /// it began, however long it goes on.
  std::chrono::microseconds quiet{2'000};
  std::chrono::microseconds max_delay{50'000};
  std::chrono::seconds reconcile_every{60};
};

class Agent {
 public:
  Agent(AgentOptions options, ClusterState& state, dataplane::Transport& transport,
        Metrics& metrics, PolicyWaitServer* waits);

  /// Runs until `stop` is set (and ClusterState::wake() called).
  void run(const std::atomic<bool>& stop);

  /// Every source listed and the first commit done (/readyz).
  const std::atomic<bool>& ready() const { return ready_; }

  /// What one snapshot cost, for benchmarks and logs.
  struct Applied {
    ClusterCompiler::Path path = ClusterCompiler::Path::kFull;
    size_t changes = 0;
    double compile_ms = 0;
    double commit_ms = 0;   ///< ruleset, plan and commit
    double latency_ms = 0;  ///< first change → committed
    std::uint64_t version = 0;
  };
  /// Called on the loop's thread after each snapshot is committed.
  void onApplied(std::function<void(const Applied&)> f) { on_applied_ = std::move(f); }

 private:
  /// Compiles and commits one snapshot; false when it must be retried (the commit failed).
  bool apply(ClusterState::Snapshot& snap);
  /// Plans and commits `want`; false on failure (logged, counted).
  bool commit(dataplane::Ruleset want, const char* why);
  void reconcile();
  void report(const std::vector<std::string>& dropped);

  AgentOptions options_;
  ClusterState& state_;
  Metrics& metrics_;
  PolicyWaitServer* waits_;
  dataplane::Programmer programmer_;
  bool committed_ = false;  ///< the kernel was brought to a table of this agent's
  ClusterCompiler compiler_;
  bool force_full_ = false;  ///< after a failure: compile afresh
  std::function<void(const Applied&)> on_applied_;
  std::atomic<bool> ready_{false};
  std::set<std::string> reported_;  ///< dropped-object lines already logged
};

}  // namespace zonewall::agent
