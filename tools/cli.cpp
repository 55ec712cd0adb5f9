// The command table on CLI11: every command's options, their checks and its help text, then
// the run function of its group (commands.h). Usage errors exit 2 with CLI11's message.
#include "cli.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <functional>
#include <ostream>

#include "commands.h"

namespace zonewall::tools {
namespace {

constexpr const char* kVersion = "0.1.0";

constexpr const char* kLintHelp = R"(usage: zonewall lint PATH... [--format text|json|sarif]

Checks policy YAML (Kubernetes NetworkPolicy v1, Calico projectcalico.org/v3, with optional
Namespace/Pod inventory) and prints every finding as
  file:line:col: severity: message [rule-id]
Exit: 0 no errors (warnings allowed), 1 errors found, 2 usage or unreadable input.
)";

constexpr const char* kCompileHelp =
    R"(usage: zonewall compile PATH... --node NODE [--format nft|json]

Compiles the classification table of NODE (the pods whose spec.nodeName is NODE) and prints it
as an `nft -f` script (default) or as JSON with element counts.
Exit: 0 compiled, 1 the input has errors, 2 usage or unreadable input.
)";

constexpr const char* kMatrixHelp =
    R"(usage: zonewall matrix PATH... [--port N] [--protocol TCP|UDP|SCTP] [--format text|json]
                      [--staged]

Prints the pod x pod reachability of the inventory on one port (default 80/TCP): a connection
is allowed iff the source's egress and the destination's ingress allow it, each decided by the
compiled table of the pod's node. Text: one row per source, '.' allowed, 'X' denied.
JSON: {"port":80,"protocol":"TCP","results":[{"from":"x/a","to":"x/b","allowed":true},...]}
--staged: also as it would be with the staged policies (StagedNetworkPolicy, ...) promoted;
'+' a connection promotion opens, '-' one it closes; JSON adds "staged": true|false.
Exit: 0 printed, 1 the input has errors, 2 usage or unreadable input.
)";

constexpr const char* kExplainHelp =
    R"(usage: zonewall explain PATH... --from NS/POD|IP --to NS/POD|IP --port N/PROTO [--staged]

Explains one connection: the verdict of the source's egress and the destination's ingress, each
with the deciding policy, rule index and its file:line (or the default that applied).
PROTO is TCP, UDP or SCTP; for ICMP and ICMPv6 give TYPE[:CODE]/ICMP.
--staged: explains it again as it would be with the staged policies promoted, and says
whether promoting them changes the verdict.
Exit: 0 explained, 1 the input has errors, 2 usage or unreadable input.
)";

constexpr const char* kDiffHelp =
    R"(usage: zonewall diff OLD... --to NEW... [--format text|json|markdown|sarif]

What a change of policy (or of pods' labels) does: the flows it opens and closes between pods
present in both revisions, grouped by namespace and by the labels the group's pods share
("public/app=web"), port ranges merged, each with the rule after the change that opened or
closed it and the one that decided before (file:line:col). OLD and NEW are files, directories,
or git:REV:PATH (read with `git show` from the repository of the current directory), e.g.
  zonewall diff git:origin/main:policies --to policies --format markdown
markdown is what a bot posts on a pull request; sarif is for code-scanning services.
--contract FILE: a ZoneContract (see `zonewall check`); an opened flow that breaks one of its
deny or allowOnly statements is marked, with one pod pair, protocol and port.
Exit: 0 compared (and no opened flow breaks the contract), 1 an opened flow breaks the
contract, 2 usage, unreadable input or input with errors.
)";

constexpr const char* kCheckHelp =
    R"(usage: zonewall check PATH... --contract FILE [--format text|json]

Checks a zone contract (apiVersion: zonewall.io/v1alpha1, kind: ZoneContract; README "Zone
contracts") against the policies and pods of PATH: zones are Calico selectors over namespace
and pod labels; `deny` (no flow from one zone to another), `allowOnly` (flows only on the
listed ports) and `require` (flows that must stay open) statements. Each violated statement
prints counterexamples: a concrete pod pair, protocol and port, with the rule on each side
that let the flow through or blocked it (file:line:col). A pod's flows to itself are not
checked.
Exit: 0 every statement holds, 1 a statement is violated, 2 usage, unreadable input, input
with errors, or a contract error (unknown zone, bad selector, a zone that matches no pod).
)";

constexpr const char* kPathsHelp =
    R"(usage: zonewall paths PATH... --to WHO [--from WHO] [--max-hops N] [--contract FILE]
                     [--format text|json]

Lateral movement: how an attacker who owns the --from pods could walk, flow by allowed flow, to
the --to pods. WHO is a zone of --contract, or a Calico selector over the pods' labels (with
projectcalico.org/namespace for the namespace), e.g.
  zonewall paths examples/bank --to "projectcalico.org/namespace == 'secure' && app == 'vault'"
Default --from: the pods that accept traffic from outside the cluster (an address outside the
private, loopback, link-local and multicast ranges that their ingress allows), and the pods of
zones the contract marks `exposed: true`. Prints the shortest path to each target group (each
hop with its ports and the rules that allow it), every group reachable (within --max-hops),
and the smallest cut: the fewest flows whose closing disconnects the sources from the targets.
Pods are grouped as the policies see them; a hop is from every pod of a group to every pod of
the next.
Exit: 0 printed (path or not), 2 usage, unreadable input or input with errors.
)";

constexpr const char* kGraphHelp =
    R"(usage: zonewall graph PATH... [--format dot|svg|json] [--group namespace|zone|class]
                     [--contract FILE]

The allowed-flow graph: a node per group of pods (class: pods the policies cannot tell apart,
the default; namespace; zone, which needs --contract), an edge where some pod of one may open
a flow to some pod of the other, labelled with its protocols and ports. Edges that carry flows
the contract forbids (deny, allowOnly) are red. svg renders through Graphviz's `dot`.
Exit: 0 printed, 2 usage, unreadable input, input with errors, or no `dot` for svg.
)";

constexpr const char* kApplyHelp =
    R"(usage: zonewall apply PATH... --node NODE [--netns NAME] [--dry-run]

Compiles the table of NODE and programs it into the kernel's nftables as table inet zonewall,
in one netlink transaction: the kernel holds the old table or the new one, never a mix. The
kernel's table is read once: if its chains and rules are zonewall's, only the elements that
differ are sent; otherwise the table is replaced whole. --dry-run prints the element-level
diff (or why the table would be replaced) and changes nothing. --netns NAME programs the
network namespace /run/netns/NAME. Needs CAP_NET_ADMIN.
Exit: 0 applied (or nothing to do), 1 the input has errors or the kernel refused, 2 usage.
)";

constexpr const char* kVerifyHelp =
    R"(usage: zonewall verify PATH... --node NODE [--netns NAME] [--repair]

Reads table inet zonewall back from the kernel and compares it with NODE's compiled table:
prints every drift (missing or changed chains, rules, set elements). --repair reconciles: it
sends the element-level fix, or replaces the table when its skeleton was changed.
Exit: 0 in sync (or repaired), 1 drift found (or the input has errors), 2 usage.
)";

constexpr const char* kInventoryHelp = R"(usage: zonewall inventory PATH... [--format text|json]

Lists the pods of the input: namespace/name, node, IPs, host veth (text); JSON adds the
named ports: {"pods":[{"pod":"x/a","node":"n1","ips":["10.0.0.1"],"ports":{"http":"8080/TCP"},
"iface":"zw..."}]}
Exit: 0 listed, 1 the input has errors, 2 usage or unreadable input.
)";

constexpr const char* kHelp = R"(usage: zonewall COMMAND [ARGS...]

Label-based zone policies compiled into an nftables classification table.

commands:
  lint     PATH... [--format text|json|sarif]          check policies, print findings
  compile  PATH... --node NODE [--format nft|json]     the node's table as nft script or JSON
  matrix   PATH... [--port N] [--protocol P] [--format text|json]
                                                       pod x pod reachability
  explain  PATH... --from NS/POD|IP --to NS/POD|IP --port N/PROTO
                                                       why a connection is allowed or denied
  inventory PATH... [--format text|json]               the pods: node, IPs, named ports
  diff     OLD... --to NEW... [--format text|json|markdown|sarif] [--contract FILE]
                                                       the flows a change opens and closes
  check    PATH... --contract FILE [--format text|json]
                                                       check a zone contract
  paths    PATH... --to WHO [--from WHO] [--max-hops N] [--contract FILE]
                                                       lateral movement: paths and cuts
  graph    PATH... [--format dot|svg|json] [--group namespace|zone|class]
                                                       the allowed-flow graph
  apply    PATH... --node NODE [--netns NAME] [--dry-run]
                                                       program the node's table into nftables
  verify   PATH... --node NODE [--netns NAME] [--repair]
                                                       report (and repair) drift in the kernel

PATH is a file, a directory (*.yaml, *.yml, recursively) or - for stdin.
`zonewall COMMAND --help` describes each command.
)";

struct Command {
  CLI::App* app;
  const char* help;
  std::function<int()> run;
};

// PATH... of every command: files, directories or "-".
void addPaths(CLI::App* app, std::vector<std::string>& paths) {
  app->add_option("PATH", paths, "files, directories (*.yaml, *.yml) or - for stdin");
}

}  // namespace

int runCli(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
           std::ostream& err) {
  if (args.empty()) {
    err << kHelp;
    return kExitUsage;
  }
  const std::string& first = args.front();
  if (first == "--help" || first == "-h" || first == "help") {
    out << kHelp;
    return kExitOk;
  }
  if (first == "--version" || first == "version") {
    out << "zonewall " << kVersion << "\n";
    return kExitOk;
  }
  const Io io{in, out, err};
  CLI::App app("zonewall", "zonewall");
  app.set_help_flag();  // `zonewall --help` is answered above, with kHelp
  app.require_subcommand(1);
  std::vector<Command> commands;
  auto add = [&](const char* name, const char* help, std::function<int()> run) {
    CLI::App* sub = app.add_subcommand(name);
    sub->set_help_flag("-h,--help");  // CallForHelp: answered with `help`
    commands.push_back({sub, help, std::move(run)});
    return sub;
  };

  LintOptions lint;
  CLI::App* c = add("lint", kLintHelp, [&] { return runLint(lint, io); });
  addPaths(c, lint.paths);
  c->add_option("--format", lint.format)->check(CLI::IsMember({"text", "json", "sarif"}));

  CompileOptions compile;
  c = add("compile", kCompileHelp, [&] { return runCompile(compile, io); });
  addPaths(c, compile.paths);
  c->add_option("--node", compile.node)->required();
  c->add_option("--format", compile.format)->check(CLI::IsMember({"nft", "json"}));

  MatrixOptions matrix;
  c = add("matrix", kMatrixHelp, [&] { return runMatrix(matrix, io); });
  addPaths(c, matrix.paths);
  c->add_option("--port", matrix.port)->check(CLI::Range(1, 65535));
  c->add_option("--protocol", matrix.protocol)->check(CLI::IsMember({"TCP", "UDP", "SCTP"}));
  c->add_option("--format", matrix.format)->check(CLI::IsMember({"text", "json"}));
  c->add_flag("--staged", matrix.staged);

  ExplainOptions explain;
  c = add("explain", kExplainHelp, [&] { return runExplain(explain, io); });
  addPaths(c, explain.paths);
  c->add_option("--from", explain.from)->required();
  c->add_option("--to", explain.to)->required();
  c->add_option("--port", explain.port)->required();
  c->add_flag("--staged", explain.staged);

  InventoryOptions inventory;
  c = add("inventory", kInventoryHelp, [&] { return runInventory(inventory, io); });
  addPaths(c, inventory.paths);
  c->add_option("--format", inventory.format)->check(CLI::IsMember({"text", "json"}));

  DiffOptions diff;
  c = add("diff", kDiffHelp, [&] { return runDiff(diff, io); });
  c->add_option("OLD", diff.before, "files, directories or git:REV:PATH before the change")
      ->required();
  c->add_option("--to", diff.after, "files, directories or git:REV:PATH after the change")
      ->required();
  c->add_option("--format", diff.format)
      ->check(CLI::IsMember({"text", "json", "markdown", "sarif"}));
  c->add_option("--contract", diff.contract);

  CheckOptions check;
  c = add("check", kCheckHelp, [&] { return runCheck(check, io); });
  addPaths(c, check.paths);
  c->add_option("--contract", check.contract)->required();
  c->add_option("--format", check.format)->check(CLI::IsMember({"text", "json"}));

  PathsOptions paths;
  c = add("paths", kPathsHelp, [&] { return runPaths(paths, io); });
  addPaths(c, paths.paths);
  c->add_option("--from", paths.from);
  c->add_option("--to", paths.to)->required();
  c->add_option("--max-hops", paths.max_hops)->check(CLI::Range(0, 1000000));
  c->add_option("--contract", paths.contract);
  c->add_option("--format", paths.format)->check(CLI::IsMember({"text", "json"}));

  GraphOptions graph;
  c = add("graph", kGraphHelp, [&] { return runGraph(graph, io); });
  addPaths(c, graph.paths);
  c->add_option("--format", graph.format)->check(CLI::IsMember({"dot", "svg", "json"}));
  c->add_option("--group", graph.group)->check(CLI::IsMember({"namespace", "zone", "class"}));
  c->add_option("--contract", graph.contract);

  KernelOptions apply;
  bool dry_run = false;
  c = add("apply", kApplyHelp, [&] {
    apply.change = !dry_run;
    return runApply(apply, io);
  });
  addPaths(c, apply.paths);
  c->add_option("--node", apply.node)->required();
  c->add_option("--netns", apply.netns);
  c->add_flag("--dry-run", dry_run);

  KernelOptions verify;
  c = add("verify", kVerifyHelp, [&] { return runVerify(verify, io); });
  addPaths(c, verify.paths);
  c->add_option("--node", verify.node)->required();
  c->add_option("--netns", verify.netns);
  c->add_flag("--repair", verify.change);

  auto known =
      std::ranges::find_if(commands, [&](const Command& k) { return k.app->get_name() == first; });
  if (known == commands.end()) {
    err << "zonewall: unknown command '" << first << "'\n" << kHelp;
    return kExitUsage;
  }
  // CLI11 takes the arguments last first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << known->help;
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "zonewall " << first << ": " << e.what() << " (see zonewall " << first << " --help)\n";
    return kExitUsage;
  }
  return known->run();
}

}  // namespace zonewall::tools
