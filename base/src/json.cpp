#include "zonewall/base/json.h"

#include <fmt/format.h>

#include <string>

namespace zonewall {

namespace {

// nlohmann's what() is "[json.exception.<kind>.<id>] <reason>", and a parse error's reason starts
// with "parse error at line L, column C: "; the position goes into the location instead.
std::string reason(const nlohmann::json::exception& e) {
  std::string what = e.what();
  if (auto tag = what.find("] ");
      what.starts_with("[json.exception.") && tag != std::string::npos) {
    what.erase(0, tag + 2);
  }
  if (what.starts_with("parse error")) {
    if (auto at = what.find(": "); at != std::string::npos) what.erase(0, at + 2);
  }
  return what;
}

SourceLoc positionOf(std::string_view text, size_t byte) {
  SourceLoc loc{.line = 1, .col = 1};
  // nlohmann counts `byte` from 1 at the character it could not take.
  for (size_t i = 0; i + 1 < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++loc.line;
      loc.col = 1;
    } else {
      ++loc.col;
    }
  }
  return loc;
}

// The byte at which `text` opens its (limit+1)-th nested array or object, or npos. Brackets in
// strings do not count; whatever is not JSON is left to the parser.
size_t tooDeepAt(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string_view::npos;
}

}  // namespace

std::expected<nlohmann::json, Error> parseJson(std::string_view text) {
  if (size_t at = tooDeepAt(text, kMaxJsonDepth); at != std::string_view::npos) {
    return std::unexpected(Error{Error::Code::kInvalidInput,
                                 fmt::format("nested deeper than {} levels", kMaxJsonDepth),
                                 positionOf(text, at + 1), 0});
  }
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return std::unexpected(
        Error{Error::Code::kInvalidInput, reason(e), positionOf(text, e.byte), 0});
  } catch (const nlohmann::json::exception& e) {  // a number out of range: no position
    return std::unexpected(Error{Error::Code::kInvalidInput, reason(e), {}, 0});
  }
}

}  // namespace zonewall
