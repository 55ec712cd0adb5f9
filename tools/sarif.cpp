#include "sarif.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace zonewall::tools {

using json = nlohmann::ordered_json;

// The version SARIF names as the tool's.
constexpr const char* kVersion = "0.1.0";

std::string sarifUri(const std::string& file) {
  if (file == "<stdin>") return "stdin";
  std::string out;
  for (unsigned char c : file) {
    if (std::isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

json sarifLocation(const SourceLoc& loc) {
  json phys = {{"artifactLocation", {{"uri", sarifUri(loc.file)}}}};
  if (loc.line > 0) {
    phys["region"] = {{"startLine", loc.line}, {"startColumn", std::max(1, loc.col)}};
  }
  return {{"physicalLocation", phys}};
}

json sarifLog(json rules, json results) {
  return {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
          {"version", "2.1.0"},
          {"runs", json::array({{{"tool",
                                  {{"driver",
                                    {{"name", "zonewall"},
                                     {"version", kVersion},
                                     {"informationUri", "https://github.com/zonewall/zonewall"},
                                     {"rules", std::move(rules)}}}}},
                                 {"results", std::move(results)}}})}};
}

}  // namespace zonewall::tools
