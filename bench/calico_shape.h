// A Calico-shaped nftables ruleset for one node: what Calico's Felix renders for the same
// Kubernetes NetworkPolicies, modelled on its rule renderer (felix/rules: endpoints.go,
// policy.go, static.go) and loaded with `nft -f`, so that the benchmarks measure zonewall
// against the shape of the enforcer people run, on the same kernel, pods and policies.
//
// Modelled (bench/README.md says more):
//   - the forward hook clears Calico's mark bits, dispatches a packet from a workload interface
//     to that endpoint's from-workload chain and to one to its to-workload chain (a verdict map
//     on the interface name), and accepts what a policy marked accepted;
//   - an endpoint chain: conntrack (established, related accept; invalid drop), the policy
//     mark bits cleared, (from workloads) VXLAN and IP-in-IP encapsulation dropped, the tier:
//     pass bit cleared, a jump to each policy (or to a group chain of policies sharing a
//     selector, a RETURN on verdict every fifth jump) with a RETURN once the accept bit is set,
//     the end-of-tier drop; then the namespace profile (allow) and the final drop;
//   - a policy chain: per rule, per peer and per protocol, the match (an IP set per selector,
//     a named-port IP set, or CIDRs with their exceptions; ports) setting the accept bit,
//     then a RETURN when it is set;
//   - one set per selector (its members' addresses), one per named port (address, protocol,
//     port), as Calico's IP sets.
// Left out: IPv6 (a second table of the same shape), host endpoints, the raw and mangle
// tables, failsafes, service and NAT chains, flow logs: none is on the path of a pod-to-pod
// packet in these benchmarks.
#pragma once

#include <string>

#include "zonewall/policy/model.h"

namespace zonewall::bench {

struct CalicoShape {
  std::string nft;         ///< the `nft -f` script: table ip calico-bench
  size_t chains = 0;       ///< chains rendered
  size_t rules = 0;        ///< rules in them
  size_t sets = 0;         ///< IP sets
  size_t set_members = 0;  ///< elements of all sets
};

/// The ruleset for the endpoints of `node` under the store's Kubernetes NetworkPolicies.
CalicoShape calicoShape(const policy::Store& store, const std::string& node);

}  // namespace zonewall::bench
