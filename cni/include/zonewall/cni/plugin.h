// The plugin's commands, wired: env + stdin in, exit code + stdout out. The binary's main
// only gathers the environment and stdin and prints what this returns.
//
//   ADD    parse → resolve subnet → reserve (locked) → veth (libnl) → endpoint record
//          → result
//   DEL    reservations of the attachment → remove host veth (alias-checked) → release
//          → record
//   CHECK  prevResult → reservation, pod interface, addresses, routes, host veth and routes
//   GC     release what cni.dev/attachments does not list; its veths and records too
//   STATUS subnet known and an address left in each family, else 50
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

struct Outcome {
  int exit_code = 0;
  std::string stdout_text;  ///< result or error JSON; empty when the command prints nothing
};

Outcome runPlugin(const std::map<std::string, std::string>& env, std::string_view stdin_bytes);

/// The host veth name of an attachment: zonewall::hostVethName of the pod for its eth0 (the
/// name the dataplane's anti-spoofing expects), of pod + ifname for further interfaces, and
/// of the container id + ifname outside Kubernetes.
std::string hostVethFor(const Environment& env);

}  // namespace zonewall::cni
