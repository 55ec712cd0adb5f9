// The allowed-flow graph on pod groups: pods whose addresses are in the same classes (one per
// family) and the same `extra` partition (zones, sources and targets of a query) are one node,
// and an edge says every pod of one node may open some flow to every other pod of the other,
// with the protocols and ports and the rules that allow them. Pod-level questions (hops,
// reachability, cuts) have the same answers on it as on the pods, at a fraction of the size.
// Searched with boost-graph.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/analysis/l4_text.h"
#include "zonewall/analysis/view.h"

namespace zonewall::analysis {

inline constexpr std::uint32_t kNoNode = ~0U;

struct PodGraph {
  struct Node {
    std::vector<std::uint32_t> pods;      ///< store indices, ascending
    std::optional<std::uint32_t> cls[2];  ///< the view's class, by Family
    std::uint32_t extra = 0;
  };
  struct Edge {
    std::uint32_t from = 0;
    std::uint32_t to = 0;
    std::vector<L4Range> l4;         ///< what is allowed
    std::vector<Attribution> rules;  ///< the rules that allow it (either side), distinct
  };
  std::vector<Node> nodes;
  std::vector<Edge> edges;  ///< sorted by (from, to); from == to only for nodes of 2+ pods
  std::vector<std::uint32_t> node_of_pod;  ///< by store index; kNoNode for a pod without IPs
};

/// Builds the graph; `extra` (by store pod index, empty: all 0) splits nodes further.
PodGraph buildPodGraph(const ClusterView& view, const std::vector<std::uint32_t>& extra = {});

/// Hops from the nearest source pod, by node (0: a source; -1: unreachable), and for each
/// reached node the edge it was first reached by (kNoNode for sources and unreached ones).
struct Reach {
  std::vector<int> hops;
  std::vector<std::uint32_t> via;  ///< index into PodGraph::edges
};
Reach reachFrom(const PodGraph& g, const std::vector<std::uint32_t>& sources);

/// A smallest set of edges whose removal leaves no path from any source node to any target
/// node (a minimum cut, edges counted once each); nullopt when a node is both.
std::optional<std::vector<std::uint32_t>> minimumCut(const PodGraph& g,
                                                     const std::vector<std::uint32_t>& sources,
                                                     const std::vector<std::uint32_t>& targets);

/// Pods that accept some flow from outside the cluster: an address outside the private,
/// loopback, link-local and multicast ranges (RFC 1918, RFC 6598, RFC 4193, ...) that the
/// pod's ingress allows on some protocol and port (an ipBlock or net covering public
/// addresses, 0.0.0.0/0, or no policy at all). Store indices, ascending.
std::vector<std::uint32_t> exposedPods(const ClusterView& view);

}  // namespace zonewall::analysis
