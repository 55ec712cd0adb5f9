// Running a helper program (git, Graphviz's dot) and collecting what it prints.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "zonewall/base/error.h"

namespace zonewall::tools {

/// Runs `argv` (argv[0] looked up on PATH) with `input` on its stdin: its stdout, or an error
/// carrying the last line it wrote on stderr when it cannot start or exits non-zero.
std::expected<std::string, Error> runProcess(const std::vector<std::string>& argv,
                                             const std::string& input = {});

}  // namespace zonewall::tools
