// Waits for something to change under a directory (inotify), or for a stop request.
#pragma once

#include <chrono>
#include <expected>
#include <string>

#include "zonewall/base/error.h"
#include "zonewall/base/fd.h"

namespace zonewall::agent {

class DirWatch {
 public:
  /// Watches `dir` (created when missing) and, with `recursive`, the directories under it
  /// (and those created later).
  static std::expected<DirWatch, Error> open(const std::string& dir, bool recursive);

  enum class Wake : std::uint8_t { kChanged, kTimeout, kStopped };
  /// Blocks until a change, `timeout`, or stop(). Events that arrive together are consumed
  /// together: one wake per burst.
  Wake wait(std::chrono::milliseconds timeout);
  /// Any thread: the current and every later wait() returns kStopped.
  void stop() const;

 private:
  void addTree(const std::string& dir);

  std::string dir_;
  bool recursive_ = false;
  UniqueFd inotify_;
  UniqueFd stop_;  ///< an eventfd
};

}  // namespace zonewall::agent
