// What the kernel holds compared with what should be there (pure): a TableSnapshot read back
// by the Transport, analysed against the expected Ruleset. Used for a one-shot apply's first
// diff, after a failed commit, and for drift detection; never on the agent's update path.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/dataplane/ruleset.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::dataplane {

/// Our table as the kernel holds it, in the terms of the expected ruleset.
struct KernelState {
  bool exists = false;
  /// The sets of the expected ruleset, with the elements the kernel holds (decoded with the
  /// expected set's kind); the chains and rules of the expected ruleset when the kernel's match
  /// them exactly, otherwise empty.
  Ruleset ruleset;
  bool skeleton_matches = false;
  std::vector<std::string> drift;       ///< human-readable differences of the skeleton
  std::vector<std::string> stale_sets;  ///< range maps no lookup references (an unfinished swap)
  bool aside_exists = false;  ///< asideTable() exists: a replace was interrupted (it judges too)
};

/// Compares `snapshot` with `expected`. Swapped maps may live under their alternate names:
/// the analysis follows what the kernel's lookup chains reference.
KernelState analyzeSnapshot(const Ruleset& expected, const TableSnapshot& snapshot);

/// The snapshot the kernel gives of `rs` loaded exactly as it is (analyzeSnapshot's inverse):
/// what a fake kernel answers in tests, and what a table without drift reads back as.
TableSnapshot snapshotOf(const Ruleset& rs);

/// Reads `expected.table` through `transport` and analyses it.
std::expected<KernelState, Error> readKernelState(Transport& transport, const Ruleset& expected);

}  // namespace zonewall::dataplane
