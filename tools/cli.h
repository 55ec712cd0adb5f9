// The `zonewall` command line (DESIGN.md "CLI contract"): a table of commands on CLI11, each
// group of commands in a file of its own (commands.h).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace zonewall::tools {

/// Exit codes, the same for every command:
inline constexpr int kExitOk = 0;        ///< success; lint: no errors; verify: in sync
inline constexpr int kExitFindings = 1;  ///< the input has errors, the kernel refused, drift found
inline constexpr int kExitUsage = 2;     ///< bad arguments, or input that cannot be read
inline constexpr int kExitInternal = 3;  ///< a bug: the compiled table and the reference disagree

/// Runs `zonewall ARGS...` (args without the program name); returns the exit code.
int runCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err);

}  // namespace zonewall::tools
