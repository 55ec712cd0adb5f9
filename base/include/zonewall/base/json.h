// JSON text from outside the process (a runtime's stdin, a datastore's value) parsed into
// nlohmann::json without letting any of its exceptions out.
#pragma once

#include <expected>
#include <nlohmann/json.hpp>
#include <string_view>

#include "zonewall/base/error.h"

namespace zonewall {

/// The text as JSON, or kInvalidInput with the reason ("syntax error while parsing value -
/// invalid literal; last read: 'x'", "number overflow parsing '1E400'") and, for a syntax error,
/// the line:col where the text stops being JSON (the caller names the file or field).
std::expected<nlohmann::json, Error> parseJson(std::string_view text);

}  // namespace zonewall
