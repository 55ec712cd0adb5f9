// JSON text from outside the process (a runtime's stdin, a datastore's value) parsed into
// nlohmann::json without letting any of its exceptions out.
#pragma once

#include <expected>
#include <nlohmann/json.hpp>
#include <string_view>

#include "zonewall/base/error.h"

namespace zonewall {

/// Arrays and objects nest at most this deep, as in Go's encoding/json (what Flannel and the
/// reference CNI plugins read with): deeper input is refused before it is parsed, so that no
/// recursive walk of a value (copy, dump, compare) can run out of stack.
inline constexpr int kMaxJsonDepth = 10000;

/// The text as JSON, or kInvalidInput with the reason ("syntax error while parsing value -
/// invalid literal; last read: 'x'", "number overflow parsing '1E400'", "nested deeper than
/// 10000 levels") and, where there is one, the line:col at which the text stops being
/// acceptable (the caller names the file or field).
std::expected<nlohmann::json, Error> parseJson(std::string_view text);

}  // namespace zonewall
