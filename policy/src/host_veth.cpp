#include "zonewall/policy/host_veth.h"

#include <fmt/format.h>

#include <cstdint>

namespace zonewall::policy {

std::string hostVethName(std::string_view ns, std::string_view name) {
  // FNV-1a, 64 bits: stable across versions and machines, which is all a name needs.
  std::uint64_t h = 1469598103934665603ULL;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  };
  mix(ns);
  mix("/");
  mix(name);
  return fmt::format("{}{:011x}", kHostVethPrefix, h >> 20);
}

}  // namespace zonewall::policy
