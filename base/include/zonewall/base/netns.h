// Entering a network namespace for the lifetime of a scope (this thread only), and coming
// back: the netlink sockets and links made inside belong to that namespace.
#pragma once

#include <expected>
#include <string>

#include "zonewall/base/error.h"
#include "zonewall/base/fd.h"

namespace zonewall {

class NetnsGuard {
 public:
  /// Enters the namespace `target` (an open /proc/.../ns/net or /run/netns/NAME descriptor).
  static std::expected<NetnsGuard, Error> enter(int target);
  /// Enters the namespace at `path` (e.g. /run/netns/NAME).
  static std::expected<NetnsGuard, Error> enter(const std::string& path);

  /// Returns to the namespace the thread was in; a thread that cannot go back would do its
  /// later work in the wrong namespace, so that aborts.
  ~NetnsGuard();
  NetnsGuard(NetnsGuard&&) noexcept = default;
  NetnsGuard& operator=(NetnsGuard&&) = delete;
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;

 private:
  explicit NetnsGuard(UniqueFd home) : home_(std::move(home)) {}
  UniqueFd home_;  ///< the namespace to return to; empty once moved from
};

}  // namespace zonewall
