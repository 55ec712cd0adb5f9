// What every benchmark measures with: wall time in milliseconds and the process's peak RSS.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace zonewall::bench {

using Clock = std::chrono::steady_clock;

inline double ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

inline long peakRssMb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}

// A count given on the command line: digits only, from `min` to `max`; nullopt (and a message
// naming `program` and `what`) otherwise.
inline std::optional<size_t> parseCount(const char* program, std::string_view text, size_t min,
                                        size_t max, const char* what) {
  if (!text.empty() && text.size() <= 7 && text.find_first_not_of("0123456789") == text.npos) {
    size_t n = std::stoul(std::string(text));
    if (n >= min && n <= max) return n;
  }
  std::fprintf(stderr, "%s: %s takes a number from %zu to %zu, not '%.*s'\n", program, what, min,
               max, static_cast<int>(text.size()), text.data());
  return std::nullopt;
}

}  // namespace zonewall::bench
