// Diagnostics: findings about the input (load errors, lint findings, compile errors), collected
// rather than stopping at the first (nftables' error_record).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zonewall/base/error.h"

namespace zonewall {

enum class Severity : std::uint8_t { kError, kWarning, kInfo };

const char* severityName(Severity s);

/// One finding about the input: load errors, lint findings, compile errors.
struct Diagnostic {
  Severity severity = Severity::kError;
  SourceLoc loc;
  std::string message;
  std::string rule_id;  ///< stable identifier, e.g. "yaml-syntax", "shadowed-rule"

  /// "file:line:col: severity: message [rule-id]" — the CLI's stable text format.
  std::string str() const;
};

/// Collected diagnostics: stages append, nobody stops at the first one.
class Diagnostics {
 public:
  void add(Severity s, SourceLoc loc, std::string message, std::string rule_id);
  void error(SourceLoc loc, std::string message, std::string rule_id) {
    add(Severity::kError, std::move(loc), std::move(message), std::move(rule_id));
  }
  void warning(SourceLoc loc, std::string message, std::string rule_id) {
    add(Severity::kWarning, std::move(loc), std::move(message), std::move(rule_id));
  }
  void info(SourceLoc loc, std::string message, std::string rule_id) {
    add(Severity::kInfo, std::move(loc), std::move(message), std::move(rule_id));
  }
  void append(const Diagnostics& other);

  bool hasErrors() const;
  const std::vector<Diagnostic>& all() const { return items_; }
  std::vector<Diagnostic>& all() { return items_; }
  /// Orders by file, line, column, then message: output is stable whatever the load order.
  void sort();

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace zonewall
