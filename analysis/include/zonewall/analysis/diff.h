// What a policy change does: the flows it opens and closes, between groups of pods named the
// way people think of them (groups.h), port ranges merged, each change with the rules on the
// side whose verdict changed, after and before. Computed on the classes of the two revisions
// (view.h): pods of one class pair share every verdict, so each pair of classes is compared
// once over the whole (protocol, port) space, never pod by pod or port by port.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "zonewall/analysis/l4_text.h"
#include "zonewall/analysis/view.h"

namespace zonewall::analysis {

struct FlowChange {
  bool opened = false;  ///< false: closed
  std::string from;     ///< group names (groups.h)
  std::string to;
  std::vector<L4Range> l4;  ///< the protocols and ports, sorted
  /// The side(s) whose verdict changed (source's egress, destination's ingress): the deciding
  /// rule or default after the change, and before it.
  std::vector<Attribution> now;
  std::vector<Attribution> before;
  std::string example_from;  ///< one pod pair the change applies to ("ns/name")
  std::string example_to;
};

struct FlowDiff {
  std::vector<FlowChange> changes;  ///< sorted by (from, to, opened)
  /// Pods in one revision only (by namespace/name): their flows are not compared.
  std::vector<std::string> pods_added;
  std::vector<std::string> pods_removed;
  /// The pods ("ns/name", sorted) of every group a change names.
  std::map<std::string, std::vector<std::string>> groups;
};

/// The flows between pods present in both revisions whose verdict differs. A pod's flows use
/// its first address of each family, in each revision.
FlowDiff diffViews(const ClusterView& before, const ClusterView& after);

/// Calls `fn(proto_lo, proto_hi, port_lo, port_hi, a_segment, b_segment)` for every box of
/// the overlay of two flows() results (each covering the whole space), in order.
template <typename Fn>
void overlay(const std::vector<FlowSegment>& a, const std::vector<FlowSegment>& b, Fn&& fn);

// ---- implementation ----

template <typename Fn>
void overlay(const std::vector<FlowSegment>& a, const std::vector<FlowSegment>& b, Fn&& fn) {
  size_t i = 0;
  size_t j = 0;
  // Both lists run protocol segment by protocol segment, ports ascending within one.
  while (i < a.size() && j < b.size()) {
    const Protocol p_lo = std::max(a[i].proto_lo, b[j].proto_lo);
    const Protocol p_hi = std::min(a[i].proto_hi, b[j].proto_hi);
    // The runs of each list for the protocol segment containing p_lo.
    size_t ie = i;
    while (ie < a.size() && a[ie].proto_lo == a[i].proto_lo) ++ie;
    size_t je = j;
    while (je < b.size() && b[je].proto_lo == b[j].proto_lo) ++je;
    size_t x = i;
    size_t y = j;
    std::uint32_t lo = 0;
    while (x < ie && y < je) {
      std::uint16_t hi = std::min(a[x].port_hi, b[y].port_hi);
      fn(p_lo, p_hi, static_cast<std::uint16_t>(lo), hi, a[x], b[y]);
      lo = hi + 1U;
      if (a[x].port_hi == hi) ++x;
      if (b[y].port_hi == hi) ++y;
    }
    // Advance past the protocol segment that ends first (or both).
    const bool a_done = a[i].proto_hi == p_hi;
    const bool b_done = b[j].proto_hi == p_hi;
    if (a_done) i = ie;
    if (b_done) j = je;
    if (!a_done && !b_done) break;  // unreachable: one of them ends at p_hi
  }
}

}  // namespace zonewall::analysis
