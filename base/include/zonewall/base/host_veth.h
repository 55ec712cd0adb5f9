// The name of a pod's host-side veth: shared by the CNI plugin, which creates the interface,
// and the dataplane, whose anti-spoofing set expects it.
#pragma once

#include <string>
#include <string_view>

namespace zonewall {

/// Every pod's host veth starts with this.
inline constexpr const char* kHostVethPrefix = "zw";

/// "zw" + 11 hex digits of a hash of "ns/name" (13 characters, under IFNAMSIZ).
std::string hostVethName(std::string_view ns, std::string_view name);

}  // namespace zonewall
