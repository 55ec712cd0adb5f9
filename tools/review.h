// What the review commands (review_commands.cpp: diff, check; graph_commands.cpp: paths,
// graph) share: loading for review (bad input is exit 2: 1 means "the policies violate"), the
// contract file, and how rules, statements and errors are printed.
#pragma once

#include <expected>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "input.h"
#include "zonewall/analysis/view.h"
#include "zonewall/policy/model.h"

namespace zonewall::tools {

/// loadValid(), with input errors as kExitUsage.
std::expected<Loaded, int> loadForReview(const std::vector<std::string>& paths, std::istream& in,
                                         std::ostream& err);
/// `path` must hold exactly one ZoneContract; otherwise a message and kExitUsage.
std::expected<Loaded, int> loadContract(const std::string& path, std::istream& in,
                                        std::ostream& err, const char* command);
/// "file:line:col: error: message\n", as lint prints errors.
std::string locatedError(const Error& e);
/// {"text", "policy", "rule", "name", "location": {file, line, column}} (fields where known).
nlohmann::ordered_json attributionJson(const analysis::Attribution& a);
/// "TCP/5432,UDP/53"
std::string portsText(const std::vector<policy::ContractPort>& ports);
/// "allowOnly internal → secure [TCP/5432]"
std::string statementText(const policy::ContractStatement& st);

}  // namespace zonewall::tools
