// Policy review: diff (what a change opens and closes). Each loads its input, asks the
// analysis library (analysis/) and prints text, JSON, markdown (what a bot posts on a pull
// request) or SARIF.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "sarif.h"
#include "zonewall/analysis/diff.h"
#include "zonewall/analysis/l4_text.h"
#include "zonewall/analysis/view.h"

namespace zonewall::tools {
namespace {

using json = nlohmann::ordered_json;
using analysis::Attribution;
using analysis::FlowChange;

// Review commands report bad input as a usage error (2): 1 means "the change violates".
std::expected<Loaded, int> loadForReview(const std::vector<std::string>& paths, std::istream& in,
                                         std::ostream& err) {
  auto l = loadValid(paths, in, err);
  if (!l) return std::unexpected(kExitUsage);
  return l;
}

json attributionJson(const Attribution& a) {
  json j = {{"text", a.str()}};
  if (a.kind == Attribution::Kind::kRule) {
    j["policy"] = a.policy;
    j["rule"] = a.rule_index;
    if (!a.rule_name.empty()) j["name"] = a.rule_name;
  }
  if (a.loc.known())
    j["location"] = {{"file", a.loc.file}, {"line", a.loc.line}, {"column", a.loc.col}};
  return j;
}

std::string attributionsText(const std::vector<Attribution>& as) {
  std::string s;
  for (const Attribution& a : as) s += (s.empty() ? "" : "; ") + a.str();
  return s;
}

std::string changeL4(const FlowChange& c) { return analysis::l4Text(c.l4); }

std::string markdownCell(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\";
    out += c;
  }
  return out;
}

// The rule a SARIF result points at: the first deciding rule with a location, after the
// change, else before it.
SourceLoc changeLocation(const FlowChange& c) {
  for (const auto* side : {&c.now, &c.before}) {
    for (const Attribution& a : *side) {
      if (a.loc.known()) return a.loc;
    }
  }
  return {};
}

void printDiff(const analysis::FlowDiff& d, const std::string& format, std::ostream& out) {
  size_t opened = 0;
  for (const FlowChange& c : d.changes) opened += c.opened;
  const size_t closed = d.changes.size() - opened;
  std::string pods_note;
  if (!d.pods_added.empty() || !d.pods_removed.empty()) {
    pods_note = fmt::format(" ({} pod(s) added, {} removed: their flows are not compared)",
                            d.pods_added.size(), d.pods_removed.size());
  }
  const std::string summary = d.changes.empty()
                                  ? "no flow opens or closes"
                                  : fmt::format("{} opened, {} closed", opened, closed);
  if (format == "json") {
    json changes = json::array();
    for (const FlowChange& c : d.changes) {
      json l4 = json::array();
      for (const auto& r : c.l4) {
        json ports = json::array();
        for (const auto& p : r.ports) ports.push_back({{"from", p.lo}, {"to", p.hi}});
        l4.push_back({{"protocols", {{"from", r.proto_lo}, {"to", r.proto_hi}}}, {"ports", ports}});
      }
      json now = json::array();
      json was = json::array();
      for (const Attribution& a : c.now) now.push_back(attributionJson(a));
      for (const Attribution& a : c.before) was.push_back(attributionJson(a));
      changes.push_back({{"change", c.opened ? "opened" : "closed"},
                         {"from", c.from},
                         {"to", c.to},
                         {"l4", l4},
                         {"text", changeL4(c)},
                         {"by", now},
                         {"was", was},
                         {"example", {{"from", c.example_from}, {"to", c.example_to}}}});
    }
    out << json{{"opened", opened},           {"closed", closed},
                {"changes", changes},         {"groups", d.groups},
                {"pods_added", d.pods_added}, {"pods_removed", d.pods_removed}}
               .dump(2)
        << "\n";
    return;
  }
  if (format == "sarif") {
    json rules = json::array(
        {{{"id", "flow-opened"},
          {"shortDescription", {{"text", "The change allows flows that were denied"}}}},
         {{"id", "flow-closed"},
          {"shortDescription", {{"text", "The change denies flows that were allowed"}}}}});
    json results = json::array();
    for (const FlowChange& c : d.changes) {
      json r = {{"ruleId", c.opened ? "flow-opened" : "flow-closed"},
                {"level", "note"},
                {"message",
                 {{"text", fmt::format("{} → {} {}: {} by {} (was: {})", c.from, c.to, changeL4(c),
                                       c.opened ? "opened" : "closed", attributionsText(c.now),
                                       attributionsText(c.before))}}}};
      SourceLoc loc = changeLocation(c);
      r["locations"] = loc.file.empty() ? json::array() : json::array({sarifLocation(loc)});
      results.push_back(std::move(r));
    }
    out << sarifLog(std::move(rules), std::move(results)).dump(2) << "\n";
    return;
  }
  if (format == "markdown") {
    out << "### zonewall diff: " << summary << "\n\n";
    if (!pods_note.empty()) out << pods_note.substr(1) << "\n\n";
    if (d.changes.empty()) return;
    out << "| change | from | to | ports | by | was |\n|---|---|---|---|---|---|\n";
    for (const FlowChange& c : d.changes) {
      out << fmt::format("| {} | `{}` | `{}` | {} | {} | {} |\n", c.opened ? "opened" : "closed",
                         markdownCell(c.from), markdownCell(c.to), markdownCell(changeL4(c)),
                         markdownCell(attributionsText(c.now)),
                         markdownCell(attributionsText(c.before)));
    }
    return;
  }
  out << "zonewall diff: " << summary << pods_note << "\n";
  for (const FlowChange& c : d.changes) {
    out << fmt::format("{} → {} {}: {} by {}\n    was: {}\n    e.g. {} → {}\n", c.from, c.to,
                       changeL4(c), c.opened ? "opened" : "closed", attributionsText(c.now),
                       attributionsText(c.before), c.example_from, c.example_to);
  }
}

}  // namespace

int runDiff(const DiffOptions& o, Io io) {
  auto& [in, out, err] = io;
  auto before = loadForReview(o.before, in, err);
  if (!before) return before.error();
  auto after = loadForReview(o.after, in, err);
  if (!after) return after.error();
  auto bv = analysis::ClusterView::build(before->store);
  auto av = bv ? analysis::ClusterView::build(after->store) : std::unexpected(bv.error());
  if (!bv || !av) {
    err << "zonewall diff: " << (bv ? av.error() : bv.error()).str() << "\n";
    return kExitUsage;
  }
  printDiff(analysis::diffViews(**bv, **av), o.format, out);
  return kExitOk;
}

}  // namespace zonewall::tools
