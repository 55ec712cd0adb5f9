#include "zonewall/base/diagnostic.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <tuple>

namespace zonewall {

std::string SourceLoc::str() const {
  if (line <= 0) {
    return file.empty() ? std::string("<input>") : file;
  }
  return fmt::format("{}:{}:{}", file.empty() ? "<input>" : file, line, col > 0 ? col : 1);
}

const char* severityName(Severity s) {
  switch (s) {
    case Severity::kError:
      return "error";
    case Severity::kWarning:
      return "warning";
    case Severity::kInfo:
      return "info";
  }
  return "error";
}

std::string Diagnostic::str() const {
  return fmt::format("{}: {}: {} [{}]", loc.str(), severityName(severity), message, rule_id);
}

void Diagnostics::add(Severity s, SourceLoc loc, std::string message, std::string rule_id) {
  items_.push_back(Diagnostic{s, std::move(loc), std::move(message), std::move(rule_id)});
}

void Diagnostics::append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

bool Diagnostics::hasErrors() const {
  return std::any_of(items_.begin(), items_.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

void Diagnostics::sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return std::tie(a.loc.file, a.loc.line, a.loc.col, a.rule_id, a.message) <
           std::tie(b.loc.file, b.loc.line, b.loc.col, b.rule_id, b.message);
  });
  items_.erase(std::unique(items_.begin(), items_.end(),
                           [](const Diagnostic& a, const Diagnostic& b) {
                             return a.loc == b.loc && a.message == b.message &&
                                    a.rule_id == b.rule_id;
                           }),
               items_.end());
}

std::string Error::str() const {
  std::string out = loc.file.empty() ? message : fmt::format("{}: {}", loc.str(), message);
  if (sys_errno != 0) {
    out += fmt::format(": {}", std::strerror(sys_errno));
  }
  return out;
}

}  // namespace zonewall
