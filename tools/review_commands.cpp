// Policy review: diff (what a change opens and closes), check (zone contracts). Each loads its
// input, asks the analysis library (analysis/) and prints text, JSON, markdown (what a bot posts on
// a pull request) or SARIF.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "cli.h"
#include "commands.h"
#include "input.h"
#include "review.h"
#include "sarif.h"
#include "zonewall/analysis/contract.h"
#include "zonewall/analysis/diff.h"
#include "zonewall/analysis/l4_text.h"
#include "zonewall/analysis/view.h"

namespace zonewall::tools {

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

// "file:line:col: error: message", as lint prints errors.
std::string locatedError(const Error& e) {
  return fmt::format("{}: error: {}\n", e.loc.str(), e.message);
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

std::string portsText(const std::vector<policy::ContractPort>& ports) {
  std::string s;
  for (const auto& p : ports) {
    s += s.empty() ? "" : ",";
    s += policy::protocolName(p.protocol);
    if (p.lo != 0 || p.hi != 65535) {
      s += p.lo == p.hi ? fmt::format("/{}", p.lo) : fmt::format("/{}-{}", p.lo, p.hi);
    }
  }
  return s;
}

std::string statementText(const policy::ContractStatement& st) {
  std::string s = fmt::format("{} {} → {}", policy::statementKindName(st.kind), st.from, st.to);
  if (!st.ports.empty()) s += " [" + portsText(st.ports) + "]";
  return s;
}

// The contracts of `paths` (files with ZoneContract objects): exactly one is expected.
std::expected<Loaded, int> loadContract(const std::string& path, std::istream& in,
                                        std::ostream& err, const char* command) {
  auto l = loadForReview({path}, in, err);
  if (!l) return l;
  if (l->store.contracts.size() != 1) {
    err << fmt::format(
        "zonewall {}: {}: expected one ZoneContract (apiVersion: zonewall.io/v1alpha1), found {}\n",
        command, path, l->store.contracts.size());
    return std::unexpected(kExitUsage);
  }
  return l;
}

namespace {

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

// A change opens a flow the contract forbids: the statement it breaks and where.
struct Breach {
  const policy::ContractStatement* statement = nullptr;
  std::string from;
  std::string to;
  policy::Protocol protocol = 0;
  std::uint16_t port = 0;
};

// Each opened change of `d`, checked against the contract's deny and allowOnly statements for
// the pods its groups name (zones as the revision after the change has them).
std::vector<std::optional<Breach>> contractBreaches(
    const analysis::FlowDiff& d, const analysis::ClusterView& after,
    const policy::ZoneContract& contract, const std::vector<std::vector<std::uint32_t>>& zones) {
  std::map<std::string, std::set<std::string>> zones_of;  // pod key -> zone names
  for (size_t e = 0; e < after.endpoints().size(); ++e) {
    auto& z = zones_of[after.store().pods[after.endpoints()[e].pod].key()];
    for (std::uint32_t i : zones[e]) z.insert(contract.zones[i].name);
  }
  auto inZone = [&](const std::string& pod, const std::string& zone) {
    return zone == "*" || zones_of[pod].contains(zone);
  };
  std::vector<std::optional<Breach>> out;
  for (const FlowChange& c : d.changes) {
    std::optional<Breach> b;
    for (const auto& st : contract.statements) {
      if (!c.opened || st.kind == policy::ContractStatement::Kind::kRequire || b) continue;
      for (const std::string& src : d.groups.at(c.from)) {
        if (b || !inZone(src, st.from)) continue;
        for (const std::string& dst : d.groups.at(c.to)) {
          if (b || src == dst || !inZone(dst, st.to)) continue;
          for (const auto& r : c.l4) {
            for (const auto& pr : r.ports) {
              auto w = analysis::breakingPoint(st, r.proto_lo, r.proto_hi, pr.lo, pr.hi, true);
              if (w && !b) b = Breach{&st, src, dst, w->first, w->second};
            }
          }
        }
      }
    }
    out.push_back(b);
  }
  return out;
}

std::string breachText(const Breach& b) {
  return fmt::format(
      "breaks contract statement {} at {}: e.g. {} → {} {}", statementText(*b.statement),
      b.statement->loc.str(), b.from, b.to,
      analysis::l4Text(analysis::L4Range{b.protocol, b.protocol, {{b.port, b.port}}}));
}

void printDiff(const analysis::FlowDiff& d, const std::vector<std::optional<Breach>>& breaches,
               const std::string& format, std::ostream& out) {
  size_t opened = 0;
  for (const FlowChange& c : d.changes) opened += c.opened;
  const size_t closed = d.changes.size() - opened;
  std::string pods_note;
  if (!d.pods_added.empty() || !d.pods_removed.empty()) {
    pods_note = fmt::format(" ({} pod(s) added, {} removed: their flows are not compared)",
                            d.pods_added.size(), d.pods_removed.size());
  }
  const size_t breached = static_cast<size_t>(
      std::count_if(breaches.begin(), breaches.end(), [](const auto& b) { return b.has_value(); }));
  std::string summary = d.changes.empty() ? "no flow opens or closes"
                                          : fmt::format("{} opened, {} closed", opened, closed);
  if (breached > 0) summary += fmt::format("; {} opened against the zone contract", breached);
  if (format == "json") {
    json changes = json::array();
    for (size_t k = 0; k < d.changes.size(); ++k) {
      const FlowChange& c = d.changes[k];
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
      if (const auto& b = breaches[k]) {
        changes.back()["contract"] = {{"statement", statementText(*b->statement)},
                                      {"location", b->statement->loc.str()},
                                      {"example",
                                       {{"from", b->from},
                                        {"to", b->to},
                                        {"protocol", policy::protocolName(b->protocol)},
                                        {"port", b->port}}}};
      }
    }
    out << json{{"opened", opened},
                {"closed", closed},
                {"against_contract", breached},
                {"changes", changes},
                {"groups", d.groups},
                {"pods_added", d.pods_added},
                {"pods_removed", d.pods_removed}}
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
    rules.push_back(
        {{"id", "contract-breach"},
         {"shortDescription", {{"text", "The change opens flows the zone contract forbids"}}}});
    json results = json::array();
    for (size_t k = 0; k < d.changes.size(); ++k) {
      const FlowChange& c = d.changes[k];
      const auto& b = breaches[k];
      json r = {{"ruleId", b          ? "contract-breach"
                           : c.opened ? "flow-opened"
                                      : "flow-closed"},
                {"level", b ? "error" : "note"},
                {"message",
                 {{"text", fmt::format("{} → {} {}: {} by {} (was: {})", c.from, c.to, changeL4(c),
                                       c.opened ? "opened" : "closed", attributionsText(c.now),
                                       attributionsText(c.before)) +
                               (b ? "; " + breachText(*b) : "")}}}};
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
    for (size_t k = 0; k < d.changes.size(); ++k) {
      const FlowChange& c = d.changes[k];
      const auto& b = breaches[k];
      out << fmt::format("| {} | `{}` | `{}` | {} | {} | {} |\n",
                         b ? "**opened against the contract**: " + markdownCell(breachText(*b))
                         : c.opened ? "opened"
                                    : "closed",
                         markdownCell(c.from), markdownCell(c.to), markdownCell(changeL4(c)),
                         markdownCell(attributionsText(c.now)),
                         markdownCell(attributionsText(c.before)));
    }
    return;
  }
  out << "zonewall diff: " << summary << pods_note << "\n";
  for (size_t k = 0; k < d.changes.size(); ++k) {
    const FlowChange& c = d.changes[k];
    out << fmt::format("{} → {} {}: {} by {}\n    was: {}\n    e.g. {} → {}\n", c.from, c.to,
                       changeL4(c), c.opened ? "opened" : "closed", attributionsText(c.now),
                       attributionsText(c.before), c.example_from, c.example_to);
    if (const auto& b = breaches[k]) out << "    " << breachText(*b) << "\n";
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
  analysis::FlowDiff d = analysis::diffViews(**bv, **av);
  std::vector<std::optional<Breach>> breaches(d.changes.size());
  std::optional<Loaded> contract;
  if (!o.contract.empty()) {
    auto c = loadContract(o.contract, in, err, "diff");
    if (!c) return c.error();
    contract.emplace(std::move(*c));
    auto zones = analysis::zoneMembership(**av, contract->store.contracts.front());
    if (!zones) {
      err << locatedError(zones.error());
      return kExitUsage;
    }
    breaches = contractBreaches(d, **av, contract->store.contracts.front(), *zones);
  }
  printDiff(d, breaches, o.format, out);
  const bool breached =
      std::any_of(breaches.begin(), breaches.end(), [](const auto& b) { return b.has_value(); });
  return breached ? kExitFindings : kExitOk;
}

int runCheck(const CheckOptions& o, Io io) {
  auto& [in, out, err] = io;
  auto loaded = loadForReview(o.paths, in, err);
  if (!loaded) return loaded.error();
  auto contract = loadContract(o.contract, in, err, "check");
  if (!contract) return contract.error();
  const policy::ZoneContract& zc = contract->store.contracts.front();
  auto view = analysis::ClusterView::build(loaded->store);
  if (!view) {
    err << "zonewall check: " << view.error().str() << "\n";
    return kExitUsage;
  }
  auto result = analysis::checkContract(**view, zc);
  if (!result) {
    err << locatedError(result.error());
    return kExitUsage;
  }
  const auto& eps = (*view)->endpoints();
  auto who = [&](std::uint32_t e) {
    return fmt::format("{} ({})", loaded->store.pods[eps[e].pod].key(), formatAddr(eps[e].addr));
  };
  auto l4 = [](const analysis::Counterexample& v) {
    return analysis::l4Text(analysis::L4Range{v.protocol, v.protocol, {{v.port, v.port}}});
  };
  size_t violated = 0;
  for (const auto& sr : result->statements) violated += !sr.violations.empty();
  if (o.format == "json") {
    json statements = json::array();
    for (const auto& sr : result->statements) {
      json vs = json::array();
      for (const auto& v : sr.violations) {
        vs.push_back({{"from", loaded->store.pods[eps[v.from].pod].key()},
                      {"to", loaded->store.pods[eps[v.to].pod].key()},
                      {"from_address", formatAddr(eps[v.from].addr)},
                      {"to_address", formatAddr(eps[v.to].addr)},
                      {"protocol", policy::protocolName(v.protocol)},
                      {"port", v.port},
                      {"allowed", v.flow.allowed()},
                      {"egress", attributionJson((*view)->attribution(*v.flow.egress))},
                      {"ingress", attributionJson((*view)->attribution(*v.flow.ingress))}});
      }
      statements.push_back({{"statement", statementText(*sr.statement)},
                            {"description", sr.statement->description},
                            {"location", sr.statement->loc.str()},
                            {"holds", sr.violations.empty()},
                            {"violations", vs}});
    }
    out << json{{"contract", zc.name}, {"holds", result->holds()}, {"statements", statements}}.dump(
               2)
        << "\n";
  } else {
    out << fmt::format("contract {} ({}): {} statement(s), {} violated\n", zc.name, zc.loc.str(),
                       result->statements.size(), violated);
    constexpr size_t kShown = 3;
    for (const auto& sr : result->statements) {
      const auto& st = *sr.statement;
      out << fmt::format("{:<9} {}  ({}){}\n", sr.violations.empty() ? "ok" : "VIOLATED",
                         statementText(st), st.loc.str(),
                         st.description.empty() ? "" : ": " + st.description);
      for (size_t k = 0; k < sr.violations.size() && k < kShown; ++k) {
        const auto& v = sr.violations[k];
        out << fmt::format("    {} → {} {} is {}\n", who(v.from), who(v.to), l4(v),
                           v.flow.allowed() ? "allowed" : "denied");
        for (const auto& [side, o2] :
             {std::pair{"egress ", v.flow.egress}, std::pair{"ingress", v.flow.ingress}}) {
          out << fmt::format("      {} {} by {}\n", side, o2->allow ? "allowed" : "denied",
                             (*view)->attribution(*o2).str());
        }
      }
      if (sr.violations.size() > kShown) {
        out << fmt::format("    and {} more pair(s) of pod groups\n",
                           sr.violations.size() - kShown);
      }
    }
  }
  return result->holds() ? kExitOk : kExitFindings;
}

}  // namespace zonewall::tools
