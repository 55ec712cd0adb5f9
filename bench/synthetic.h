// Synthetic clusters for benchmarks: N pods over namespaces and zones with realistic label
// cardinality, M policies mixing Kubernetes and Calico formats. Seeded and reproducible.
#pragma once

#include <cstdint>
#include <string>

#include "zonewall/policy/model.h"

namespace zonewall::bench {

struct SyntheticSpec {
  size_t pods = 1000;
  size_t policies = 100;
  size_t pods_per_namespace = 50;  ///< a namespace per application team's service
  size_t pods_per_node = 100;      ///< kubelet's default max is 110
  /// Cluster-admin policies on top: AdminNetworkPolicies (distinct priorities), and the
  /// default-deny BaselineAdminNetworkPolicy.
  size_t admin_policies = 0;
  bool baseline = false;
  /// Kubernetes NetworkPolicies only (the mix's Kubernetes share): what every enforcer takes.
  bool kubernetes_only = false;
  std::uint32_t seed = 1;
};

/// Builds the store directly (no YAML): the compiler's input at scale.
policy::Store syntheticCluster(const SyntheticSpec& spec);

/// AdminNetworkPolicy number `i` of a synthetic cluster (`salt` varies its rules: a change).
policy::AdminPolicy syntheticAdminPolicy(const SyntheticSpec& spec, size_t i, int salt = 0);

/// The same policies as multi-document YAML (for lint: parse + check).
std::string syntheticPolicyYaml(const SyntheticSpec& spec);

}  // namespace zonewall::bench
