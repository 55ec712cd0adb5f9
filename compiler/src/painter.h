// The painter: one local class's program (its ordered, tiered rules) evaluated over the
// protocol × port space for one remote class, into disjoint segments with their outcome.
//
// The space is a grid: a row per protocol segment (the protocols the program's clauses cut),
// each row a list of port runs (cells). Each rule paints the open cells its clauses cover:
// Allow and Deny decide them, Pass marks them passed, Log records itself and leaves them open.
// At a tier's end the open cells take its default (deny, or pass with defaultAction Pass) and
// passed cells reopen for the next tier; after the last tier, open cells are allowed by the
// program's after-tiers default (no policy, or every tier passed). Equal neighbours merge,
// ports first, then protocol rows.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "zonewall/compiler/program.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

/// One rule of one local class's program.
struct ProgRule {
  policy::Action action;
  std::uint32_t pred;  ///< the remote predicate it names (an index of the remote classifier)
  const L4Match* l4;
  AttributionHandle attribution;
};

/// The end of one tier in a program.
struct TierSlot {
  policy::Action default_action;  ///< what a tier that selects but decides nothing does
  AttributionHandle end_attribution;
  std::uint32_t end;  ///< rules [previous end, end) of the program
};

/// A protocol range [first, second].
using ProtocolSpan = std::pair<Protocol, Protocol>;

/// What a local class evaluates, in order.
struct LocalProgram {
  std::vector<TierSlot> tiers;  ///< only the tiers that select the endpoint
  std::vector<ProgRule> rules;
  AttributionHandle after_tiers;    ///< when nothing decided: no policy, or every tier passed
  std::vector<ProtocolSpan> psegs;  ///< protocol segments of its clauses, covering 0-255
};

/// A box of the protocol × port space with one outcome.
struct Segment {
  Protocol proto_lo;
  Protocol proto_hi;
  std::uint16_t port_lo;
  std::uint16_t port_hi;
  std::uint32_t outcome;  ///< an OutcomeInterner id
  friend bool operator==(const Segment&, const Segment&) = default;
};

/// Outcomes by content: equal (allow, attribution, logs) share one id, stable while it lives.
class OutcomeInterner {
 public:
  using Key = std::tuple<bool, AttributionHandle, std::vector<AttributionHandle>>;
  std::uint32_t intern(bool allow, AttributionHandle attribution,
                       const std::vector<AttributionHandle>& logs);
  const Key& operator[](std::uint32_t id) const { return outcomes_[id]; }
  std::size_t size() const { return outcomes_.size(); }
  void clear();

 private:
  std::vector<Key> outcomes_;
  std::map<Key, std::uint32_t> index_;
};

/// No outcome: what a default is compared with before the program's own default is known.
inline constexpr std::uint32_t kNoOutcome = ~0U;

/// Evaluates `lp` restricted to the rules at `positions` (ascending) over the protocol
/// segments `psegs` × every port; returns the segments whose outcome differs from
/// `default_outcome`, equal neighbours merged.
std::vector<Segment> paint(const LocalProgram& lp, const std::vector<ProtocolSpan>& psegs,
                           const std::vector<std::uint32_t>& positions,
                           std::uint32_t default_outcome, OutcomeInterner& outcomes);

}  // namespace zonewall::compiler
