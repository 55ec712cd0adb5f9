// The one hash zonewall puts on the wire: host veth names, remote class ids and Log chain
// names are derived from it, so the CNI plugin, the compiler and the dataplane of different
// builds must agree on every bit. FNV-1a, 64 bits: stable across versions and machines.
#pragma once

#include <cstdint>
#include <string_view>

namespace zonewall {

inline constexpr std::uint64_t kFnv1aBasis = 1469598103934665603ULL;

/// FNV-1a of `s`, continuing from `h` (chain calls to hash several pieces).
constexpr std::uint64_t fnv1a(std::string_view s, std::uint64_t h = kFnv1aBasis) {
  constexpr std::uint64_t kPrime = 1099511628211ULL;
  for (unsigned char c : s) {
    h = (h ^ c) * kPrime;
  }
  return h;
}

}  // namespace zonewall
