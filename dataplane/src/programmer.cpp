#include "zonewall/dataplane/programmer.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace zonewall::dataplane {
namespace {

// Waits for an RCU grace period: every packet the kernel was judging has been judged.
// membarrier(MEMBARRIER_CMD_GLOBAL) is synchronize_rcu() (8-16 ms here); where it is refused
// (nohz_full kernels), a pause far longer than any packet's evaluation stands in.
void waitForReaders() {
  if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

}  // namespace

Programmer::~Programmer() {
  if (grace_.valid()) grace_.wait();
}

std::expected<Programmer::Plan, Error> Programmer::plan(Ruleset want) {
  Plan p;
  if (!known_) {
    auto have = readKernelState(transport_, want);
    if (!have) return std::unexpected(have.error());
    known_ = std::move(*have);
    p.read_kernel = true;
  }
  const KernelState& have = *known_;
  p.drift = have.drift;
  p.stale_sets = have.stale_sets;
  p.drop_aside = have.aside_exists;
  alignSwappedSets(have.ruleset, want);
  if (!have.exists) {
    p.kind = Plan::Kind::kCreate;
  } else if (auto diff = have.skeleton_matches ? diffRulesets(have.ruleset, want)
                                               : std::unexpected(SkeletonMismatch{});
             !diff) {
    if (!diff.error().why.empty()) {
      p.drift.push_back("the new table's skeleton differs: " + diff.error().why);
    }
    p.kind = Plan::Kind::kReplace;
    p.drop_aside = false;  // the replace deletes it itself
  } else {
    p.diff = std::move(*diff);
    // Range maps left by an unfinished swap go, unless this update's swap reuses the name.
    for (const std::string& stale : p.stale_sets) {
      bool reused = std::ranges::any_of(p.diff.chains.swaps, [&](const MapSwap& sw) {
        return std::ranges::any_of(sw.replacements,
                                   [&](const SetDef& r) { return r.name == stale; });
      });
      if (!reused) p.diff.chains.drop_sets.push_back(stale);
    }
    p.kind = p.diff.empty() ? Plan::Kind::kNothing : Plan::Kind::kUpdate;
  }
  p.want = std::move(want);
  return p;
}

std::expected<std::vector<size_t>, Error> Programmer::commit(Plan plan) {
  // Nothing is ever judged by a half-built table: a new one is created in two transactions
  // (skeleton, then the local sets and verdict maps), a replaced one is built aside first, an
  // update makes its chains, grows, switches and prunes (encodeUpdate).
  std::vector<Batch> batches;
  switch (plan.kind) {
    case Plan::Kind::kNothing:
      break;
    case Plan::Kind::kCreate:
      batches = encodeCreate(plan.want, 1);
      break;
    case Plan::Kind::kReplace:
      batches = encodeReplace(plan.want, 1);
      break;
    case Plan::Kind::kUpdate:
      batches = encodeUpdate(plan.want, plan.diff, plan.stale_sets, 1);
      break;
  }
  // An interrupted replace left its aside table judging: gone once ours is complete.
  if (plan.drop_aside) batches.push_back(encodeDropTable(asideTable(plan.want.table), 1));
  std::vector<size_t> messages;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (grace_.valid()) {
      grace_.get();
    } else if (!committed_ || (i > 0 && !batches[i - 1].additive)) {
      waitForReaders();
    }
    const Batch& b = batches[i];
    auto ok = transport_.commit(b);
    committed_ = true;
    if (!ok) {
      known_.reset();  // some transactions may have gone through: read before the next plan
      grace_ = std::async(std::launch::async, waitForReaders);
      return std::unexpected(ok.error());
    }
    messages.push_back(b.messages());
  }
  if (!batches.empty()) grace_ = std::async(std::launch::async, waitForReaders);
  KernelState now;
  now.exists = true;
  now.skeleton_matches = true;
  now.ruleset = std::move(plan.want);
  // Swapped maps now live under their other names.
  for (const MapSwap& sw : plan.diff.chains.swaps) {
    for (size_t i = 0; i < sw.old_sets.size(); ++i)
      renameSwappedSet(now.ruleset, sw.old_sets[i], sw.replacements[i].name);
  }
  known_ = std::move(now);
  return messages;
}

}  // namespace zonewall::dataplane
