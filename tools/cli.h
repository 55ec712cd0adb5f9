// The `zonewall` command line: lint, compile, matrix, explain (DESIGN.md "CLI contract").
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace zonewall::tools {

/// Exit codes: 0 success/clean, 1 errors found in the input, 2 usage or unreadable input.
int runCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err);

}  // namespace zonewall::tools
