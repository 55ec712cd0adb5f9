// Lowering: Kubernetes, Calico and cluster-admin policies into one ordered program, the exact
// semantics of DESIGN.md made explicit.
//
//   tiers (by order, then name)
//     policies (by order, missing = last; ties by Calico's internal name)
//       rules (in order; Kubernetes rules are Allow rules)
//         local:  which endpoints of the policy the rule applies to (Calico's local side,
//                 named ports that resolve on the local pod)
//         peer:   which remote addresses it matches
//         l4:     which protocols and ports
//
// Named ports are resolved here: a rule whose port is named becomes one sub-rule per port
// number the name takes in the inventory, each narrowed to the pods that declare it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

using policy::Action;
using policy::Protocol;

enum class Direction : std::uint8_t { kIngress = 0, kEgress = 1 };
const char* directionName(Direction d);

/// Where a selector looks for endpoints.
struct Scope {
  enum class Kind : std::uint8_t {
    kNamespace,   ///< pods (and, for Calico, NetworkSets) of one namespace
    kNamespaces,  ///< of the namespaces a namespace selector picks
    kEverything,  ///< every pod and every NetworkSet, namespaced or global
    kGlobalSets,  ///< GlobalNetworkSets only (namespaceSelector: global())
  };
  Kind kind = Kind::kNamespace;
  std::string ns;
  policy::Selector ns_selector;
};

/// A predicate over addresses (the remote peer of a rule, or a condition on the local one).
struct AddrExpr {
  enum class Op : std::uint8_t {
    kAll,
    kEndpoints,  ///< endpoints in `scope` matching `selector`
    kCidrs,      ///< addresses in `cidrs`
    kNamedPort,  ///< pods that declare named port `name`/`protocol` as `port`
    kFamily,
    kAnd,
    kOr,
    kNot,
  };
  Op op = Op::kAll;
  policy::Selector selector;
  Scope scope;
  bool calico = false;  ///< Calico semantics: NetworkSets are endpoints, Calico's labels apply
  IntervalSet cidrs;
  std::string name;
  Protocol protocol = 0;
  std::uint16_t port = 0;
  Family family = Family::kV4;
  std::vector<std::shared_ptr<const AddrExpr>> kids;
  std::string key;  ///< canonical text; equal keys mean equal predicates
};
using AddrExprPtr = std::shared_ptr<const AddrExpr>;

AddrExprPtr exprAll();
AddrExprPtr exprEndpoints(policy::Selector sel, Scope scope, bool calico);

// The scope each kind of selector looks in, written once (the reference evaluator keeps an
// independent copy on purpose).
/// A Calico policy's own selector: its namespace; for a global policy, the namespaces its
/// namespaceSelector picks, or every endpoint.
Scope policyScope(const policy::CalicoPolicy& p);
/// A Calico rule's selector and notSelector: the namespaces its namespaceSelector picks
/// (global(): GlobalNetworkSets only); without one, the policy's namespace, or every endpoint
/// for a global policy.
Scope entityScope(const policy::EntityRule& e, const policy::CalicoPolicy& p);
/// A Kubernetes peer's podSelector: the namespaces its namespaceSelector picks, or the
/// policy's namespace `ns`.
Scope peerScope(const policy::K8sPeer& peer, const std::string& ns);
AddrExprPtr exprCidrs(const std::vector<Cidr>& cidrs);
AddrExprPtr exprNamedPort(std::string name, Protocol proto, std::uint16_t port);
AddrExprPtr exprFamily(Family f);
AddrExprPtr exprAnd(std::vector<AddrExprPtr> kids);
AddrExprPtr exprOr(std::vector<AddrExprPtr> kids);
AddrExprPtr exprNot(AddrExprPtr kid);

struct PortRange {
  std::uint16_t lo = 0;
  std::uint16_t hi = 0;
  friend bool operator==(const PortRange&, const PortRange&) = default;
};

/// The ports of 0..65535 that `in` (sorted, disjoint) leaves out, sorted.
std::vector<PortRange> complementPorts(const std::vector<PortRange>& in);

/// Protocols [proto_lo, proto_hi] with destination ports (ICMP: type << 8 | code) in `ports`.
struct L4Clause {
  Protocol proto_lo = 0;
  Protocol proto_hi = 255;
  std::vector<PortRange> ports{{0, 65535}};  ///< sorted, disjoint, non-empty
  friend bool operator==(const L4Clause&, const L4Clause&) = default;
};
/// A union of clauses; no clause matches nothing.
struct L4Match {
  std::vector<L4Clause> clauses;
  static L4Match any() { return L4Match{{L4Clause{}}}; }
};

/// Who decided: the policy rule, or the default that applied.
struct Attribution {
  enum class Kind : std::uint8_t {
    kRule,            ///< a rule of a policy
    kEndOfTier,       ///< a tier selected the endpoint and nothing in it matched
    kNoPolicy,        ///< no policy selects the endpoint in this direction
    kPassedAllTiers,  ///< every tier passed: the namespace profile allows
  };
  Kind kind = Kind::kNoPolicy;
  Direction direction = Direction::kIngress;
  std::string policy;  ///< "NetworkPolicy x/name", "GlobalNetworkPolicy name", ...
  std::string tier;
  int rule_index = -1;    ///< 0-based index in the policy's ingress or egress list
  std::string rule_name;  ///< an admin policy rule's name, if it has one
  Action action = Action::kAllow;
  SourceLoc loc;

  std::string str() const;
  friend bool operator==(const Attribution&, const Attribution&) = default;
};

/// A handle on an attribution that never changes meaning: the owner's uid (a lowered policy,
/// a tier, or the program's defaults) in the high half, the index in the low half.
using AttributionHandle = std::uint64_t;
inline AttributionHandle attributionHandle(std::uint32_t uid, std::uint32_t index) {
  return static_cast<AttributionHandle>(uid) << 32 | index;
}

struct LoweredRule {
  Action action = Action::kAllow;
  AddrExprPtr local;  ///< condition on the local endpoint's address
  AddrExprPtr peer;   ///< condition on the remote address
  L4Match l4;
  std::uint32_t attribution = 0;  ///< into LoweredPolicy::attributions
};

struct LoweredPolicy {
  std::uint32_t uid = 0;  ///< unique per lowering: a changed policy gets a new uid
  std::string key;        ///< identity: kind, namespace, name
  std::string display;    ///< "NetworkPolicy x/allow-web"
  std::string tier;
  double order = 0;
  std::string sort_name;                ///< Calico's internal name, the tie-breaker
  AddrExprPtr applies;                  ///< the endpoints the policy selects
  bool applies_to[2] = {false, false};  ///< by Direction
  std::vector<LoweredRule> rules[2];    ///< by Direction
  std::vector<Attribution> attributions;
  SourceLoc loc;
  std::string ns;  ///< namespace of a namespaced policy (pre-filters local endpoints), or ""
};
using LoweredPolicyPtr = std::shared_ptr<const LoweredPolicy>;

/// Evaluation order within a tier: Calico's order, then its internal name (a total order).
bool policyBefore(const LoweredPolicy& a, const LoweredPolicy& b);

struct TierInfo {
  std::uint32_t uid = 0;
  std::string name;
  Action default_action = Action::kDeny;
  Attribution end[2];  ///< by Direction; handle (uid, direction)
};

struct Program {
  std::vector<TierInfo> tiers;                          ///< in evaluation order
  std::vector<std::vector<LoweredPolicyPtr>> policies;  ///< per tier, in evaluation order
  Attribution no_policy[2];                             ///< handle (kDefaultsUid, direction)
  Attribution passed_all[2];                            ///< handle (kDefaultsUid, 2 + direction)
  static constexpr std::uint32_t kDefaultsUid = 1;

  /// The attribution behind a handle, or nullptr if nothing in this program owns it.
  const Attribution* find(AttributionHandle h) const;
};

/// Lowers policies one at a time so that a changed policy costs one lowering, not all.
class ProgramBuilder {
 public:
  /// Lowers every policy of the store (which must have loaded without errors). Named ports
  /// resolve against the store's pods as they are now.
  explicit ProgramBuilder(const policy::Store& store);

  const Program& program() const { return program_; }

  /// Adds or replaces (same kind, namespace and name) one policy.
  void upsert(const policy::K8sPolicy& p);
  void upsert(const policy::CalicoPolicy& p);
  void upsert(const policy::AdminPolicy& p);
  /// Removes a policy by LoweredPolicy::key; false if there was none.
  bool erase(const std::string& key);
  /// Whether every named port `pod` declares was known when the builder was made (a pod
  /// added later that declares a new one changes how policies naming it lower: build anew).
  bool knowsNamedPorts(const policy::Pod& pod) const;

  static std::string keyOf(const policy::K8sPolicy& p);
  static std::string keyOf(const policy::CalicoPolicy& p);
  static std::string keyOf(const policy::AdminPolicy& p);

 private:
  void place(LoweredPolicyPtr pol, bool keep_sorted);
  class Impl;
  std::shared_ptr<Impl> impl_;
  Program program_;
  std::unordered_map<std::string, LoweredPolicyPtr> by_key_;
};

/// Lowers every policy of the store (pure; the store must have loaded without errors).
Program lower(const policy::Store& store);

}  // namespace zonewall::compiler
