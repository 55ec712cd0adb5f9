#include <fmt/format.h>

#include <memory>
#include <optional>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/dataplane/programmer.h"
#include "zonewall/dataplane/report.h"
#include "zonewall/dataplane/ruleset.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::tools {
namespace {

using PlanKind = dataplane::Programmer::Plan::Kind;

struct Programmed {
  std::unique_ptr<dataplane::Transport> transport;
  std::unique_ptr<dataplane::Programmer> programmer;
  dataplane::Programmer::Plan plan;
  std::string node;
  size_t entries = 0;
};

// Compiles the node, reads the kernel's table once and works out what would bring it there;
// an exit code when that cannot be done.
std::expected<Programmed, int> prepare(const KernelOptions& o, Io io, const char* cmd) {
  auto loaded = loadValid(o.paths, io.in, io.err);
  if (!loaded) {
    return std::unexpected(loaded.error());
  }
  compiler::Inventory inv(loaded->store);
  auto table = compiler::compileNode(compiler::lower(loaded->store), inv, o.node);
  if (!table) {
    io.err << "zonewall " << cmd << ": " << table.error().str() << "\n";
    return std::unexpected(kExitFindings);
  }
  Programmed p;
  p.node = table->node;
  p.entries = table->entryCount();
  auto transport = dataplane::openNetlink(o.netns.empty() ? "" : "/run/netns/" + o.netns);
  if (!transport) {
    io.err << "zonewall " << cmd << ": " << transport.error().str() << "\n";
    return std::unexpected(kExitFindings);
  }
  p.transport = std::move(*transport);
  p.programmer = std::make_unique<dataplane::Programmer>(*p.transport);
  auto plan = p.programmer->plan(dataplane::buildRuleset(*table));
  if (!plan) {
    io.err << "zonewall " << cmd << ": reading the kernel's table: " << plan.error().str() << "\n";
    return std::unexpected(kExitFindings);
  }
  p.plan = std::move(*plan);
  return p;
}

int commit(Programmed& p, const char* cmd, const char* verb, Io io) {
  auto messages = p.programmer->commit(p.plan);
  if (!messages) {
    io.err << "zonewall " << cmd << ": " << messages.error().str() << "\n";
    return kExitFindings;
  }
  io.out << dataplane::describeCommit(p.plan, *messages, verb, p.node, p.entries);
  return kExitOk;
}

}  // namespace

int runApply(const KernelOptions& o, Io io) {
  auto p = prepare(o, io, "apply");
  if (!p) {
    return p.error();
  }
  if (!o.change) {  // --dry-run
    for (const auto& line : dataplane::describePlan(p->plan)) {
      io.out << line << "\n";
    }
    return kExitOk;
  }
  if (p->plan.empty()) {
    io.out << fmt::format("node '{}': the kernel already holds this table; nothing to do\n",
                          p->node);
    return kExitOk;
  }
  return commit(*p, "apply", "applied", io);
}

int runVerify(const KernelOptions& o, Io io) {
  auto p = prepare(o, io, "verify");
  if (!p) {
    return p.error();
  }
  for (const auto& line : dataplane::describeDrift(p->plan)) {
    io.out << "drift: " << line << "\n";
  }
  if (p->plan.empty()) {
    io.out << fmt::format("node '{}': in sync ({} entries)\n", p->node, p->entries);
    return kExitOk;
  }
  if (!o.change) {  // no --repair
    return kExitFindings;
  }
  return commit(*p, "verify", "repaired", io);
}

}  // namespace zonewall::tools
