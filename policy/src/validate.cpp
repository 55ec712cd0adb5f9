// Checks across documents: duplicate names, policies in undefined tiers, pod IP clashes.
#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>

#include "zonewall/policy/loader.h"

namespace zonewall::policy {

void validateStore(const Store& store, Diagnostics& diags) {
  auto dup = [&](const std::string& kind, const std::string& key, const SourceLoc& loc,
                 std::map<std::string, SourceLoc>& seen) {
    auto [it, fresh] = seen.emplace(key, loc);
    if (!fresh) {
      diags.error(
          loc, fmt::format("duplicate {} '{}' (first defined at {})", kind, key, it->second.str()),
          "duplicate-name");
    }
  };
  std::map<std::string, SourceLoc> ns_seen;
  std::map<std::string, SourceLoc> pod_seen;
  std::map<std::string, SourceLoc> k8s_seen;
  std::map<std::string, SourceLoc> cal_seen;
  std::map<std::string, SourceLoc> set_seen;
  std::map<std::string, SourceLoc> tier_seen;
  for (const auto& n : store.namespaces) dup("Namespace", n.name, n.loc, ns_seen);
  for (const auto& p : store.pods) dup("Pod", p.key(), p.loc, pod_seen);
  for (const auto& p : store.k8s_policies) dup("NetworkPolicy", p.key(), p.loc, k8s_seen);
  for (const auto& p : store.calico_policies) {
    dup(p.global ? "GlobalNetworkPolicy" : "Calico NetworkPolicy",
        (p.global ? "global/" : "ns/") + p.key(), p.loc, cal_seen);
  }
  for (const auto& s : store.network_sets) {
    dup(s.global ? "GlobalNetworkSet" : "NetworkSet", (s.global ? "global/" : s.ns + "/") + s.name,
        s.loc, set_seen);
  }
  for (const auto& t : store.tiers) dup("Tier", t.name, t.loc, tier_seen);
  std::map<std::string, SourceLoc> admin_seen;
  for (const auto& p : store.admin_policies) {
    dup(adminKindName(p.kind), adminKindName(p.kind) + std::string("/") + p.name, p.loc,
        admin_seen);
  }
  std::map<std::string, SourceLoc> node_seen;
  for (const auto& n : store.nodes) dup("Node", n.name, n.loc, node_seen);
  auto checkTier = [&](const CalicoPolicy& p, const SourceLoc& loc) {
    const bool builtin = std::find(std::begin(kBuiltinTiers), std::end(kBuiltinTiers), p.tier) !=
                         std::end(kBuiltinTiers);
    if (!builtin && !tier_seen.contains(p.tier)) {
      diags.error(loc,
                  fmt::format("policy '{}' names tier '{}', which is not defined", p.key(), p.tier),
                  "unknown-tier");
    }
  };
  for (const auto& p : store.calico_policies) checkTier(p, p.loc);
  std::map<std::string, SourceLoc> staged_seen;
  for (const auto& s : store.staged) {
    dup(s.kind(), s.target(), s.loc, staged_seen);
    if (const auto* c = std::get_if<CalicoPolicy>(&s.policy)) checkTier(*c, s.loc);
  }
  std::map<Addr, const Pod*> ip_owner;
  for (const auto& p : store.pods) {
    for (Addr a : p.ips) {
      auto [it, fresh] = ip_owner.emplace(a, &p);
      if (!fresh) {
        diags.error(p.loc,
                    fmt::format("pod IP {} of {} is also the IP of {}", formatAddr(a), p.key(),
                                it->second->key()),
                    "duplicate-ip");
      }
    }
  }
}

}  // namespace zonewall::policy
