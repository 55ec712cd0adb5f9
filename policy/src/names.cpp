#include "names.h"

#include <fmt/format.h>

namespace zonewall::policy {
namespace {

bool alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]
bool qualifiedNamePart(std::string_view s) {
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool lowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

constexpr const char* kQualifiedNameFormat =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character";

}  // namespace

bool isDns1123Label(std::string_view s) {
  if (s.empty() || s.size() > 63 || !lowerAlnum(s.front()) || !lowerAlnum(s.back())) return false;
  for (char c : s) {
    if (!lowerAlnum(c) && c != '-') return false;
  }
  return true;
}

bool isDns1123Subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view part = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    // Each part is [a-z0-9]([-a-z0-9]*[a-z0-9])? (the 63-character limit is the whole label's).
    if (part.empty() || !lowerAlnum(part.front()) || !lowerAlnum(part.back())) return false;
    for (char c : part) {
      if (!lowerAlnum(c) && c != '-') return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::optional<std::string> qualifiedNameError(std::string_view key) {
  std::string_view name = key;
  if (size_t slash = key.find('/'); slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (name.find('/') != std::string_view::npos) {
      return fmt::format("a qualified name {} with an optional DNS subdomain prefix and '/'",
                         kQualifiedNameFormat);
    }
    if (prefix.empty()) return "prefix part must be non-empty";
    if (prefix.size() > 253) return "prefix part must be no more than 253 characters";
    if (!isDns1123Subdomain(prefix)) {
      return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
             "characters, '-' or '.', and must start and end with an alphanumeric character";
    }
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > 63) {
    return fmt::format("name part must be no more than 63 characters (it has {})", name.size());
  }
  if (!qualifiedNamePart(name)) return fmt::format("name part {}", kQualifiedNameFormat);
  return std::nullopt;
}

std::optional<std::string> labelValueError(std::string_view value) {
  if (value.empty()) return std::nullopt;
  if (value.size() > 63) {
    return fmt::format("must be no more than 63 characters (it has {})", value.size());
  }
  if (!qualifiedNamePart(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', "
           "'_' or '.', and must start and end with an alphanumeric character";
  }
  return std::nullopt;
}

}  // namespace zonewall::policy
