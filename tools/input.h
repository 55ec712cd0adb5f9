// A command's input: PATH... read (files, directories of *.yaml/*.yml recursively in sorted
// order, "-" for stdin, git:REV:PATH at a revision), loaded into one Store with every diagnostic,
// and validated.
#pragma once

#include <expected>
#include <istream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/policy/loader.h"
#include "zonewall/policy/model.h"

namespace zonewall::tools {

struct Loaded {
  policy::Store store;
  Diagnostics diags;
};

/// Reads and loads `paths`; nothing (and a message on `err`) when they cannot be read: the
/// caller exits with kExitUsage.
std::optional<Loaded> load(const std::vector<std::string>& paths, std::istream& in,
                           std::ostream& err);

/// For commands that need valid input: load() and, when the input has errors, print them. The
/// exit code when it cannot go on: kExitUsage (unreadable) or kExitFindings (errors).
std::expected<Loaded, int> loadValid(const std::vector<std::string>& paths, std::istream& in,
                                     std::ostream& err);

}  // namespace zonewall::tools
