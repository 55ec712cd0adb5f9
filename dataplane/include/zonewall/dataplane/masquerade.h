// Masquerade of pod traffic that leaves the cluster network, Flannel's rules
// (flannel-io/flannel pkg/trafficmngr/nftables) in a table of its own, apart from the policy
// table:
//
//   table inet zonewall-masq
//     chain postrouting (nat hook postrouting, priority srcnat)
//       meta mark & 0x4000 == 0x4000 return     kube-proxy masquerades what it marked
//       <fam> saddr POD daddr CLUSTER return     pod to pod: never
//       <fam> saddr CLUSTER daddr POD return
//       <fam> saddr != POD daddr CLUSTER return  arriving from a node that owns the pod IP
//       <fam> saddr CLUSTER daddr != MULTICAST masquerade fully-random
//
// (Flannel's sixth rule, "saddr != CLUSTER daddr CLUSTER masquerade", can never match after
// the fourth and is left out.) The table is replaced whole in one transaction.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zonewall/base/ip.h"
#include "zonewall/dataplane/batch.h"

namespace zonewall::dataplane {

struct MasqueradeSpec {
  std::string table = "zonewall-masq";
  struct Net {
    Cidr cluster;  ///< the whole pod network (FLANNEL_NETWORK)
    Cidr pod;      ///< this node's subnet (FLANNEL_SUBNET)
  };
  std::vector<Net> nets;  ///< one per IP family
  bool random_fully = true;
  std::uint32_t skip_mark = 0x4000;  ///< kube-proxy's masquerade bit (0: no such rule)
};

/// The table, created or replaced, as one transaction.
Batch encodeMasquerade(const MasqueradeSpec& spec, std::uint32_t first_seq);

}  // namespace zonewall::dataplane
