// What every benchmark measures with: wall time in milliseconds and the process's peak RSS.
#pragma once

#include <sys/resource.h>

#include <chrono>

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

}  // namespace zonewall::bench
