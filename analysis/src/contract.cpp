#include "zonewall/analysis/contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace zonewall::analysis {
namespace {

using policy::ContractPort;
using policy::ContractStatement;

// A port of a segment to show: the lowest, but not 0 for a protocol with ports.
std::uint16_t nicePort(Protocol p, std::uint16_t lo, std::uint16_t hi) {
  return policy::hasPorts(p) && lo == 0 && hi > 0 ? 1 : lo;
}

// The protocols of [lo, hi] worth trying for a witness: those the statement names, TCP, UDP,
// SCTP, and the first one it does not name (every other behaves like it).
std::vector<Protocol> candidates(const ContractStatement& st, Protocol lo, Protocol hi) {
  std::vector<Protocol> out;
  auto add = [&](int p) {
    if (p >= lo && p <= hi &&
        std::find(out.begin(), out.end(), static_cast<Protocol>(p)) == out.end())
      out.push_back(static_cast<Protocol>(p));
  };
  for (int p : {6, 17, 132}) add(p);
  for (const ContractPort& c : st.ports) add(c.protocol);
  for (int p = lo; p <= hi; ++p) {
    if (std::none_of(st.ports.begin(), st.ports.end(),
                     [&](const ContractPort& c) { return c.protocol == p; })) {
      add(p);
      break;
    }
  }
  return out;
}

}  // namespace

std::optional<std::pair<Protocol, std::uint16_t>> breakingPoint(
    const ContractStatement& st, Protocol proto_lo, Protocol proto_hi, std::uint16_t port_lo,
    std::uint16_t port_hi, bool allowed) {
  struct {
    Protocol proto_lo, proto_hi;
    std::uint16_t port_lo, port_hi;
  } seg{proto_lo, proto_hi, port_lo, port_hi};
  switch (st.kind) {
    case ContractStatement::Kind::kDeny: {
      if (!allowed) return std::nullopt;
      Protocol p = candidates(st, seg.proto_lo, seg.proto_hi).front();
      return std::make_pair(p, nicePort(p, seg.port_lo, seg.port_hi));
    }
    case ContractStatement::Kind::kAllowOnly: {
      if (!allowed) return std::nullopt;
      for (Protocol p : candidates(st, seg.proto_lo, seg.proto_hi)) {
        // The first port of the segment outside the statement's ports for p.
        std::uint32_t port = nicePort(p, seg.port_lo, seg.port_hi);
        bool moved = true;
        while (moved && port <= seg.port_hi) {
          moved = false;
          for (const ContractPort& c : st.ports) {
            if (c.protocol == p && c.lo <= port && port <= c.hi) {
              port = c.hi + 1U;
              moved = true;
            }
          }
        }
        if (port <= seg.port_hi) return std::make_pair(p, static_cast<std::uint16_t>(port));
      }
      return std::nullopt;
    }
    case ContractStatement::Kind::kRequire: {
      if (allowed) return std::nullopt;
      for (const ContractPort& c : st.ports) {
        if (c.protocol < seg.proto_lo || c.protocol > seg.proto_hi) continue;
        if (c.hi < seg.port_lo || c.lo > seg.port_hi) continue;
        return std::make_pair(c.protocol, std::max(c.lo, seg.port_lo));
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

bool ContractResult::holds() const {
  return std::all_of(statements.begin(), statements.end(),
                     [](const StatementResult& s) { return s.violations.empty(); });
}

std::expected<std::vector<std::vector<std::uint32_t>>, Error> zoneMembership(
    const ClusterView& view, const policy::ZoneContract& contract) {
  const policy::Store& store = view.store();
  std::vector<std::vector<std::uint32_t>> out(view.endpoints().size());
  for (std::uint32_t z = 0; z < contract.zones.size(); ++z) {
    const policy::Zone& zone = contract.zones[z];
    std::map<std::string, bool> ns_in;
    bool any = false;
    for (size_t e = 0; e < view.endpoints().size(); ++e) {
      const policy::Pod& pod = store.pods[view.endpoints()[e].pod];
      auto [it, fresh] = ns_in.try_emplace(pod.ns, false);
      if (fresh) it->second = zone.namespace_selector.matches(store.namespaceLabels(pod.ns));
      if (it->second && zone.selector.matches(pod.labels)) {
        out[e].push_back(z);
        any = true;
      }
    }
    if (!any) {
      return fail(Error::Code::kInvalidInput,
                  fmt::format("zone '{}' matches no pod (with an address): a statement about it "
                              "would hold for nothing",
                              zone.name),
                  zone.loc);
    }
  }
  return out;
}

std::expected<ContractResult, Error> checkContract(const ClusterView& view,
                                                   const policy::ZoneContract& contract) {
  auto zones = zoneMembership(view, contract);
  if (!zones) return std::unexpected(zones.error());
  // The view's classes refined by zone membership: endpoints alike in both.
  struct Group {
    std::uint32_t cls = 0;
    std::vector<std::uint32_t> zones;
    std::vector<std::uint32_t> endpoints;
  };
  std::vector<Group> groups;
  std::map<std::pair<std::uint32_t, std::vector<std::uint32_t>>, std::uint32_t> index;
  for (std::uint32_t e = 0; e < view.endpoints().size(); ++e) {
    auto key = std::make_pair(view.endpoints()[e].cls, (*zones)[e]);
    auto [it, fresh] = index.try_emplace(key, static_cast<std::uint32_t>(groups.size()));
    if (fresh) groups.push_back({key.first, key.second, {}});
    groups[it->second].endpoints.push_back(e);
  }
  auto inZone = [&](const Group& g, const std::string& name) {
    if (name == "*") return true;
    for (std::uint32_t z : g.zones) {
      if (contract.zones[z].name == name) return true;
    }
    return false;
  };
  ContractResult result{&contract, {}};
  for (const ContractStatement& st : contract.statements) {
    StatementResult sr{&st, {}};
    for (const Group& src : groups) {
      if (!inZone(src, st.from)) continue;
      for (const Group& dst : groups) {
        if (!inZone(dst, st.to)) continue;
        // A concrete pair of different pods (a pod's flows to itself are not checked).
        std::optional<std::pair<std::uint32_t, std::uint32_t>> pair;
        for (std::uint32_t a : src.endpoints) {
          for (std::uint32_t b : dst.endpoints) {
            if (view.endpoints()[a].pod != view.endpoints()[b].pod) {
              pair = {a, b};
              break;
            }
          }
          if (pair) break;
        }
        if (!pair) continue;
        for (const FlowSegment& seg : view.flows(src.cls, dst.cls)) {
          if (auto w = breakingPoint(st, seg.proto_lo, seg.proto_hi, seg.port_lo, seg.port_hi,
                                     seg.allowed())) {
            sr.violations.push_back({pair->first, pair->second, w->first, w->second, seg});
            break;
          }
        }
      }
    }
    result.statements.push_back(std::move(sr));
  }
  return result;
}

}  // namespace zonewall::analysis
