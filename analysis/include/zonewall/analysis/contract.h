// Zone contracts checked against the cluster (policy::ZoneContract): each statement over the
// classes of the view refined by zone membership, so a violation is found once per pair of
// pod groups that behave alike, with one concrete pod pair, protocol and port as its
// counterexample and the rules on both sides that let it through or block it.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <utility>
#include <vector>

#include "zonewall/analysis/view.h"
#include "zonewall/base/error.h"
#include "zonewall/policy/model.h"

namespace zonewall::analysis {

/// One flow that breaks a statement: allowed where deny/allowOnly forbid it, or denied where
/// require needs it.
struct Counterexample {
  std::uint32_t from = 0;  ///< endpoints (into ClusterView::endpoints())
  std::uint32_t to = 0;
  Protocol protocol = 0;
  std::uint16_t port = 0;  ///< ICMP: type << 8 | code
  FlowSegment flow;        ///< both sides' deciding outcomes
};

struct StatementResult {
  const policy::ContractStatement* statement = nullptr;
  /// One counterexample per pair of pod groups that violates the statement.
  std::vector<Counterexample> violations;
};

struct ContractResult {
  const policy::ZoneContract* contract = nullptr;
  std::vector<StatementResult> statements;  ///< in the contract's order
  bool holds() const;
};

/// Which zones each endpoint of `view` is in (zone indices, ascending; "*" is not a zone). An
/// error, at the zone, when a zone matches no pod: a statement about it would hold vacuously.
std::expected<std::vector<std::vector<std::uint32_t>>, Error> zoneMembership(
    const ClusterView& view, const policy::ZoneContract& contract);

/// Checks every statement of `contract`. A pod's flows to itself are not checked.
std::expected<ContractResult, Error> checkContract(const ClusterView& view,
                                                   const policy::ZoneContract& contract);

/// A (protocol, port) in the box [proto_lo, proto_hi] x [port_lo, port_hi], all of whose flows
/// are `allowed` (or all denied), at which such a flow breaks `statement`; none if it keeps it.
std::optional<std::pair<Protocol, std::uint16_t>> breakingPoint(
    const policy::ContractStatement& statement, Protocol proto_lo, Protocol proto_hi,
    std::uint16_t port_lo, std::uint16_t port_hi, bool allowed);

}  // namespace zonewall::analysis
