#include "zonewall/base/netns.h"

#include <fcntl.h>
#include <sched.h>

#include <cerrno>
#include <cstdlib>

namespace zonewall {

std::expected<NetnsGuard, Error> NetnsGuard::enter(int target) {
  UniqueFd home(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!home) {
    return fail(Error::Code::kIo, "open /proc/thread-self/ns/net", errno);
  }
  if (::setns(target, CLONE_NEWNET) != 0) {
    return fail(Error::Code::kIo, "setns into the target network namespace", errno);
  }
  return NetnsGuard(std::move(home));
}

std::expected<NetnsGuard, Error> NetnsGuard::enter(const std::string& path) {
  UniqueFd target(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) {
    return fail(Error::Code::kIo, "open network namespace " + path, errno);
  }
  return enter(target.get());
}

NetnsGuard::~NetnsGuard() {
  if (home_ && ::setns(home_.get(), CLONE_NEWNET) != 0) {
    std::abort();
  }
}

}  // namespace zonewall
