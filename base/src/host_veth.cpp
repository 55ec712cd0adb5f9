#include "zonewall/base/host_veth.h"

#include <fmt/format.h>

#include "zonewall/base/hash.h"

namespace zonewall {

std::string hostVethName(std::string_view ns, std::string_view name) {
  const std::uint64_t h = fnv1a(name, fnv1a("/", fnv1a(ns)));
  return fmt::format("{}{:011x}", kHostVethPrefix, h >> 20);
}

}  // namespace zonewall
