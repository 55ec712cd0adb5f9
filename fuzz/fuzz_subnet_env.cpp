// Flannel's subnet.env as the CNI plugin reads it: parsed, or refused naming path:line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "zonewall/cni/ipam.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto subnets = zonewall::cni::parseSubnetEnv(text, "/run/zonewall/subnet.env");
  if (!subnets) {
    if (subnets.error().msg.find("/run/zonewall/subnet.env") == std::string_view::npos) {
      std::abort();
    }
    return 0;
  }
  // At most one subnet per family.
  if (subnets->subnets.size() > 2 ||
      (subnets->subnets.size() == 2 && subnets->subnets[0].family == subnets->subnets[1].family)) {
    std::abort();
  }
  return 0;
}
