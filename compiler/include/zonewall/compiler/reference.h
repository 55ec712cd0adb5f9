// The reference evaluator: a plain rule-by-rule interpreter of the policy objects, written
// apart from the compiler so that it can serve as the oracle in differential tests.
#pragma once

#include <string>

#include "zonewall/compiler/program.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

struct Flow {
  Addr src;
  Addr dst;
  Protocol protocol = policy::kTcp;
  std::uint16_t port = 0;  ///< destination port; ICMP: type << 8 | code
};

class ReferenceEvaluator {
 public:
  explicit ReferenceEvaluator(const policy::Store& store) : store_(store) {}

  /// Whether `local` (a pod at address `local_addr`) lets the flow through in direction `d`
  /// (ingress: the flow comes from `peer`; egress: it goes to `peer`).
  bool allows(Direction d, const policy::Pod& local, Addr local_addr, Addr peer, Protocol protocol,
              std::uint16_t port) const;

  /// A connection is allowed iff the source's egress and the destination's ingress allow it
  /// (a side that is not a pod has no policy).
  bool connectionAllowed(const Flow& f) const;

  const policy::Pod* podAt(Addr a) const;

 private:
  const policy::Store& store_;
};

}  // namespace zonewall::compiler
