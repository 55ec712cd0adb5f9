#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "sarif.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/lint.h"

namespace zonewall::tools {
namespace {

using json = nlohmann::ordered_json;

json sarif(const Diagnostics& diags) {
  json rules = json::array();
  for (const auto& r : compiler::lintRules()) {
    rules.push_back({{"id", r.id}, {"shortDescription", {{"text", r.summary}}}});
  }
  json results = json::array();
  for (const auto& d : diags.all()) {
    const char* level = d.severity == zonewall::Severity::kError     ? "error"
                        : d.severity == zonewall::Severity::kWarning ? "warning"
                                                                     : "note";
    results.push_back({{"ruleId", d.rule_id},
                       {"level", level},
                       {"message", {{"text", d.message}}},
                       {"locations", json::array({sarifLocation(d.loc)})}});
  }
  return sarifLog(std::move(rules), std::move(results));
}

}  // namespace

int runLint(const LintOptions& o, Io io) {
  auto& [in, out, err] = io;
  const std::string& format = o.format;
  auto loaded = load(o.paths, in, err);
  if (!loaded) {
    return kExitUsage;
  }
  Loaded& l = *loaded;
  compiler::Inventory inv(l.store);
  compiler::lint(l.store, inv, l.diags);
  l.diags.sort();
  size_t errors = 0;
  size_t warnings = 0;
  for (const auto& d : l.diags.all()) {
    errors += d.severity == zonewall::Severity::kError;
    warnings += d.severity == zonewall::Severity::kWarning;
  }
  if (format == "sarif") {
    out << sarif(l.diags).dump(2) << "\n";
  } else if (format == "json") {
    json findings = json::array();
    for (const auto& d : l.diags.all()) {
      findings.push_back({{"file", d.loc.file},
                          {"line", d.loc.line},
                          {"column", d.loc.col},
                          {"severity", zonewall::severityName(d.severity)},
                          {"message", d.message},
                          {"rule", d.rule_id}});
    }
    out << json{{"findings", findings}, {"errors", errors}, {"warnings", warnings}}.dump(2) << "\n";
  } else {
    for (const auto& d : l.diags.all()) out << d.str() << "\n";
    err << fmt::format("{} error(s), {} warning(s)\n", errors, warnings);
  }
  return errors > 0 ? kExitFindings : kExitOk;
}

}  // namespace zonewall::tools
