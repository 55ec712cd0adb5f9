// SARIF 2.1.0 logs, the shape code-scanning services read: one run of the zonewall tool.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "zonewall/base/error.h"

namespace zonewall::tools {

/// A SARIF artifactLocation.uri for a file name: a URI reference ('/' and RFC 3986's
/// unreserved characters kept, the rest percent-encoded); stdin is "stdin".
std::string sarifUri(const std::string& file);

/// A result's physicalLocation at `loc` (region only where the line is known).
nlohmann::ordered_json sarifLocation(const SourceLoc& loc);

/// The log: `rules` (reportingDescriptors) and `results` of one run.
nlohmann::ordered_json sarifLog(nlohmann::ordered_json rules, nlohmann::ordered_json results);

}  // namespace zonewall::tools
