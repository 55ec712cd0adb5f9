#include "policy_wait.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "zonewall/base/fd.h"
#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

PolicyWait waitForPolicy(const std::string& socket_path, const std::string& host_veth,
                         const std::vector<zonewall::Addr>& ips, double timeout_s) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    return PolicyWait::kNoAgent;
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return PolicyWait::kNoAgent;  // ENOENT, ECONNREFUSED: no agent on this node
  }
  nlohmann::json req = {{"hostVeth", host_veth}, {"ips", nlohmann::json::array()}};
  for (zonewall::Addr a : ips) req["ips"].push_back(zonewall::formatAddr(a));
  std::string line = jsonText(req) + "\n";
  if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return PolicyWait::kFailed;
  }
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  std::string reply;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return PolicyWait::kTimedOut;
    }
    pollfd p{fd.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;  // the deadline check above decides
    char buf[256];
    ssize_t got = ::read(fd.get(), buf, sizeof buf);
    if (got <= 0) {
      return PolicyWait::kFailed;
    }
    reply.append(buf, static_cast<size_t>(got));
    if (reply.find('\n') != std::string::npos) {
      auto j = nlohmann::json::parse(reply.substr(0, reply.find('\n')), nullptr, false);
      return j.is_object() && j.value("programmed", false) ? PolicyWait::kProgrammed
                                                           : PolicyWait::kFailed;
    }
  }
}

}  // namespace zonewall::cni
