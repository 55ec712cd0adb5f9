// The plugin's side of the policy-wait handshake (agent/policy_wait.h has the protocol).
#pragma once

#include <string>
#include <vector>

#include "zonewall/base/ip.h"

namespace zonewall::cni {

enum class PolicyWait : std::uint8_t {
  kProgrammed,  ///< the agent committed the pod's rules
  kNoAgent,     ///< nothing listens on the socket: nothing to wait for
  kTimedOut,    ///< the agent did not answer in time
  kFailed,      ///< the agent went away mid-wait
};

/// Asks the agent on `socket_path` to answer once `host_veth` with `ips` is committed; waits
/// at most `timeout_s` seconds.
PolicyWait waitForPolicy(const std::string& socket_path, const std::string& host_veth,
                         const std::vector<zonewall::Addr>& ips, double timeout_s);

}  // namespace zonewall::cni
