// The agent's log: spdlog to stderr, as text or as JSON lines (one object per line, for log
// collectors).
#pragma once

#include <expected>
#include <string>

#include "zonewall/base/error.h"

namespace zonewall::agent {

/// `format`: "text" or "json"; `level`: spdlog's names (debug, info, warn, error).
std::expected<void, Error> setupLogging(const std::string& format, const std::string& level);

}  // namespace zonewall::agent
