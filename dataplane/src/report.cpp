#include "zonewall/dataplane/report.h"

#include <fmt/format.h>

#include <iterator>

#include "zonewall/dataplane/batch.h"

namespace zonewall::dataplane {
namespace {

using PlanKind = Programmer::Plan::Kind;

// Element changes of an update, the rebuilt maps' included.
std::vector<std::string> elementLines(const Programmer::Plan& plan) {
  auto lines = describeChanges(plan.want, plan.diff.sets);
  for (const auto& sw : plan.diff.chains.swaps) {
    for (auto& line : describeChanges(plan.want, sw.edits)) {
      lines.push_back(std::move(line));
    }
  }
  return lines;
}

const char* plural(size_t n) { return n == 1 ? "entry" : "entries"; }

}  // namespace

std::vector<std::string> describePlan(const Programmer::Plan& plan) {
  std::vector<std::string> out;
  if (plan.kind == PlanKind::kCreate) {
    out.push_back("would create table inet zonewall");
    return out;
  }
  if (plan.kind == PlanKind::kReplace) {
    out.push_back("would replace table inet zonewall:");
    for (const auto& d : plan.drift) {
      out.push_back("  " + d);
    }
    return out;
  }
  const ChainChanges& cc = plan.diff.chains;
  for (const auto& c : cc.remove) {
    out.push_back("- chain " + c);
  }
  for (const auto& c : cc.add) {
    out.push_back("+ chain " + c.name);
  }
  for (const auto& sw : cc.swaps) {
    for (size_t i = 0; i < sw.old_sets.size(); ++i) {
      out.push_back(fmt::format("~ map {} rebuilt as {} ({} entries)", sw.old_sets[i],
                                sw.replacements[i].name, sw.replacements[i].elements.size()));
    }
    for (const auto& b : sw.bridges) {
      out.push_back(
          fmt::format("~ map {} bridged: {} {} for new classes and addresses until it goes", b.name,
                      b.elements.size(), plural(b.elements.size())));
    }
  }
  for (const auto& s : cc.drop_sets) {
    out.push_back("- set " + s);
  }
  if (plan.drop_aside) {
    out.push_back("- table inet " + asideTable(plan.want.table));
  }
  auto lines = elementLines(plan);
  const size_t count = lines.size();
  out.insert(out.end(), std::make_move_iterator(lines.begin()),
             std::make_move_iterator(lines.end()));
  out.push_back(fmt::format("{} element changes", count));
  return out;
}

std::vector<std::string> describeDrift(const Programmer::Plan& plan) {
  std::vector<std::string> out;
  if (plan.kind == PlanKind::kCreate) {
    out.push_back("table inet zonewall does not exist");
  }
  out.insert(out.end(), plan.drift.begin(), plan.drift.end());
  if (plan.kind == PlanKind::kUpdate) {
    for (const auto& c : plan.diff.chains.remove) {
      out.push_back("- chain " + c);
    }
    for (const auto& c : plan.diff.chains.add) {
      out.push_back("+ chain " + c.name);
    }
    for (auto& line : elementLines(plan)) {
      out.push_back(std::move(line));
    }
  }
  return out;
}

std::string describeCommit(const Programmer::Plan& plan, const std::vector<size_t>& messages,
                           std::string_view verb, std::string_view node, size_t entries) {
  std::string counts;
  for (size_t m : messages) {
    counts += (counts.empty() ? "" : " + ") + std::to_string(m);
  }
  static constexpr const char* kTransactions[] = {"no transaction", "one transaction",
                                                  "two transactions", "three transactions",
                                                  "four transactions"};
  std::string transactions = (messages.size() < std::size(kTransactions)
                                  ? std::string(kTransactions[messages.size()])
                                  : std::to_string(messages.size()) + " transactions") +
                             " of " + counts;
  if (plan.kind == PlanKind::kCreate) {
    return fmt::format("{} node '{}' ({} entries): table created in {} netlink messages\n", verb,
                       node, entries, transactions);
  }
  size_t elements = 0;
  for (const auto& c : plan.diff.sets) {
    elements += c.add.size() + c.remove.size();
  }
  const ChainChanges& cc = plan.diff.chains;
  std::string chains = cc.add.empty() && cc.remove.empty()
                           ? ""
                           : fmt::format(" and {} chain changes", cc.add.size() + cc.remove.size());
  std::string swaps;
  for (const auto& sw : cc.swaps) {
    for (size_t i = 0; i < sw.old_sets.size(); ++i) {
      swaps += fmt::format(", map {} rebuilt as {} ({} entries)", sw.old_sets[i],
                           sw.replacements[i].name, sw.replacements[i].elements.size());
    }
    for (const auto& b : sw.bridges) {
      swaps += fmt::format(", {} {} bridged into {}", b.elements.size(), plural(b.elements.size()),
                           b.name);
    }
  }
  std::string out =
      fmt::format("{} node '{}' ({} entries): {} in {} netlink messages\n", verb, node, entries,
                  plan.kind == PlanKind::kReplace
                      ? std::string("table replaced")
                      : fmt::format("{} element changes{}{}", elements, chains, swaps),
                  transactions);
  if (plan.kind == PlanKind::kReplace) {
    for (const auto& d : plan.drift) {
      out += "  because " + d + "\n";
    }
  }
  return out;
}

}  // namespace zonewall::dataplane
