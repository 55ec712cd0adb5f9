// What a plan and a commit say to a person: the lines `zonewall apply --dry-run`, `apply` and
// `verify` print, and the agent logs.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "zonewall/dataplane/programmer.h"

namespace zonewall::dataplane {

/// What committing `plan` would do, one line each ("would create table inet zonewall",
/// "- chain log_…", "~ map … rebuilt as …", "+ ingress4_exact …"), ending with the count of
/// element changes for an update.
std::vector<std::string> describePlan(const Programmer::Plan& plan);

/// What `plan` found different in the kernel, one line each, without a prefix: a missing
/// table, the skeleton drift, and for an update the chains and elements that differ.
std::vector<std::string> describeDrift(const Programmer::Plan& plan);

/// After a commit: "<verb> node '<node>' (<entries> entries): <what> in <N> transactions of
/// <messages> netlink messages", then for a replace one "  because …" line per drift.
std::string describeCommit(const Programmer::Plan& plan, const std::vector<size_t>& messages,
                           std::string_view verb, std::string_view node, size_t entries);

}  // namespace zonewall::dataplane
