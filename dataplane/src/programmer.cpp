#include "zonewall/dataplane/programmer.h"

#include <algorithm>

namespace zonewall::dataplane {

std::expected<Programmer::Plan, policy::Error> Programmer::plan(Ruleset want) {
  Plan p;
  if (!known_) {
    auto have = transport_.read(want);
    if (!have) return std::unexpected(have.error());
    known_ = std::move(*have);
    p.read_kernel = true;
  }
  const KernelState& have = *known_;
  p.drift = have.drift;
  p.stale_sets = have.stale_sets;
  p.drop_aside = have.aside_exists;
  alignRangeSets(have.ruleset, want);
  if (!have.exists) {
    p.kind = Plan::Kind::kCreate;
  } else if (!have.skeleton_matches || !diffRulesets(have.ruleset, want, p.changes, &p.chains)) {
    p.kind = Plan::Kind::kReplace;
    p.changes.clear();
    p.chains = {};
    p.drop_aside = false;  // the replace deletes it itself
  } else {
    // Range maps left by an unfinished swap go, unless this update's swap reuses the name.
    for (const std::string& stale : p.stale_sets) {
      bool reused = std::ranges::any_of(p.chains.swaps, [&](const RangeSwap& sw) { return sw.replacement.name == stale; });
      if (!reused) p.chains.drop_sets.push_back(stale);
    }
    p.kind = p.changes.empty() && p.chains.empty() ? Plan::Kind::kNothing : Plan::Kind::kUpdate;
  }
  p.want = std::move(want);
  return p;
}

std::expected<std::vector<size_t>, policy::Error> Programmer::commit(Plan plan) {
  // Nothing is ever judged by a half-built table: a new one is created in two transactions
  // (skeleton, then the local sets and verdict maps), a replaced one is built aside first, a
  // rebuilt range map is published before the lookups switch to it.
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
      if (!plan.chains.swaps.empty()) batches.push_back(encodeSwapPreparation(plan.want, plan.chains, plan.stale_sets, 1));
      batches.push_back(encodeChanges(plan.want, plan.changes, 1, plan.chains));
      break;
  }
  // An interrupted replace left its aside table judging: gone once ours is complete.
  if (plan.drop_aside) batches.push_back(encodeDropTable(asideTable(plan.want.table), 1));
  std::vector<size_t> messages;
  for (const Batch& b : batches) {
    if (auto ok = transport_.commit(b); !ok) {
      known_.reset();  // some transactions may have gone through: read before the next plan
      return std::unexpected(ok.error());
    }
    messages.push_back(b.messages());
  }
  KernelState now;
  now.exists = true;
  now.skeleton_matches = true;
  now.ruleset = std::move(plan.want);
  // Swapped range maps now live under their other names.
  for (const RangeSwap& sw : plan.chains.swaps) renameRangeSet(now.ruleset, sw.old_set, sw.replacement.name);
  known_ = std::move(now);
  return messages;
}

}  // namespace zonewall::dataplane
