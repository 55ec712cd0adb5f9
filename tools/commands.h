// The commands behind the command table (cli.cpp): each reads its options, loads its input
// (input.h), calls the libraries and prints. One file per group:
//   lint_command.cpp      lint                 findings as text, JSON or SARIF
//   table_commands.cpp    compile, inventory   a node's table; the pods
//   analysis_commands.cpp matrix, explain      reachability and why, from the cluster view
//   kernel_commands.cpp   apply, verify        program and check the kernel (root)
//   review_commands.cpp   diff, check          what a change opens and closes; zone contracts
//   graph_commands.cpp    paths, graph         lateral movement; the zone graph
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace zonewall::tools {

/// Where a command reads stdin ("-") and writes.
struct Io {
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

struct LintOptions {
  std::vector<std::string> paths;
  std::string format = "text";  ///< text, json, sarif
};
int runLint(const LintOptions& o, Io io);

struct CompileOptions {
  std::vector<std::string> paths;
  std::string node;
  std::string format = "nft";  ///< nft, json
};
int runCompile(const CompileOptions& o, Io io);

struct InventoryOptions {
  std::vector<std::string> paths;
  std::string format = "text";  ///< text, json
};
int runInventory(const InventoryOptions& o, Io io);

struct MatrixOptions {
  std::vector<std::string> paths;
  int port = 80;
  std::string protocol = "TCP";  ///< TCP, UDP, SCTP
  std::string format = "text";   ///< text, json
  bool staged = false;           ///< also with the staged policies promoted
};
int runMatrix(const MatrixOptions& o, Io io);

struct ExplainOptions {
  std::vector<std::string> paths;
  std::string from;  ///< NS/POD or an address
  std::string to;
  std::string port;     ///< N/PROTO, or TYPE[:CODE]/ICMP
  bool staged = false;  ///< explain again with the staged policies promoted
};
int runExplain(const ExplainOptions& o, Io io);

struct DiffOptions {
  std::vector<std::string> before;  ///< OLD...: files, directories, git:REV:PATH
  std::vector<std::string> after;   ///< --to NEW...
  std::string format = "text";      ///< text, json, markdown, sarif
  std::string contract;             ///< a ZoneContract: exit 1 when a change breaks it
};
int runDiff(const DiffOptions& o, Io io);

struct CheckOptions {
  std::vector<std::string> paths;
  std::string contract;         ///< the ZoneContract file
  std::string format = "text";  ///< text, json
};
int runCheck(const CheckOptions& o, Io io);

struct PathsOptions {
  std::vector<std::string> paths;
  std::string from;             ///< a zone of --contract or a Calico selector; empty: exposed pods
  std::string to;               ///< likewise
  int max_hops = -1;            ///< -1: no bound
  std::string contract;         ///< optional: zone names and exposed zones
  std::string format = "text";  ///< text, json
};
int runPaths(const PathsOptions& o, Io io);

struct GraphOptions {
  std::vector<std::string> paths;
  std::string format = "dot";   ///< dot, svg, json
  std::string group = "class";  ///< namespace, zone, class
  std::string contract;         ///< optional: edges against it drawn red; needed for zone
};
int runGraph(const GraphOptions& o, Io io);

struct KernelOptions {
  std::vector<std::string> paths;
  std::string node;
  std::string netns;    ///< a name under /run/netns; empty: this namespace
  bool change = false;  ///< apply: not --dry-run; verify: --repair
};
int runApply(const KernelOptions& o, Io io);
int runVerify(const KernelOptions& o, Io io);

}  // namespace zonewall::tools
