// The node table as an `nft -f` script: the same objects the netlink path installs.
//
// table inet zonewall
//   base chains forward / input / output:
//     ct state established,related accept; ct state invalid drop; NDP accept
//     local source      → jump egress4|6   (remote class from the destination address)
//     local destination → jump ingress4|6  (remote class from the source address)
//     clear the class bits of the mark
//   egressN / ingressN:
//     clear the class bits; set them from the remote address, nibble by nibble
//     (remoteN_nK_ranges then remoteN_nK_exact: a vmap jump to rc_nK_<hex>, which sets one
//     nibble and returns); then one verdict lookup: exact map, range map, local default.
//
// The remote class rides in the packet mark, bits kClassMask (0xffff0000 by default), and
// every other mark bit is preserved (kube-proxy uses 0x4000 and 0x8000). nft 1.0.6 cannot
// put a map lookup inside a concatenation, so the mark carries it from one rule to the next.
#pragma once

#include <cstdint>
#include <string>

#include "zonewall/compiler/table.h"

namespace zonewall::dataplane {

struct NftOptions {
  std::string table = "zonewall";
  /// Mark bits that carry the remote class: 16 contiguous bits.
  std::uint32_t class_mask = 0xffff0000U;
};

std::string renderNft(const compiler::NodeTable& table, const NftOptions& options = {});

}  // namespace zonewall::dataplane
