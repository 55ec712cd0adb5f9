#include "zonewall/compiler/table.h"

#include <algorithm>
#include <tuple>

namespace zonewall::compiler {

RemoteClassId NodeTable::remoteClassOf(Addr a) const {
  auto e = std::lower_bound(remote_exact.begin(), remote_exact.end(), a,
                            [](const auto& p, Addr x) { return p.first < x; });
  if (e != remote_exact.end() && e->first == a) return e->second;
  auto r = std::upper_bound(remote_ranges.begin(), remote_ranges.end(), a.v,
                            [](U128 v, const auto& p) { return v < p.first.lo; });
  if (r != remote_ranges.begin() && std::prev(r)->first.hi >= a.v) return std::prev(r)->second;
  return kNoRemoteClass;
}

const LocalClass* NodeTable::localClassOf(Direction d, Addr a) const {
  for (const LocalClass& c : dir(d).classes) {
    if (std::binary_search(c.addrs.begin(), c.addrs.end(), a)) return &c;
  }
  return nullptr;
}

const Outcome* NodeTable::decide(Direction d, Addr local, Addr remote, Protocol proto,
                                 std::uint16_t port) const {
  const LocalClass* lc = localClassOf(d, local);
  if (lc == nullptr || local.family() != remote.family()) return nullptr;
  RemoteClassId rc = remoteClassOf(remote);
  const auto& entries = dir(d).entries;
  auto it = std::lower_bound(entries.begin(), entries.end(), std::make_pair(lc->id, rc),
                             [](const Entry& e, const std::pair<std::uint32_t, RemoteClassId>& k) {
                               return std::tie(e.local_class, e.remote_class) <
                                      std::tie(k.first, k.second);
                             });
  for (; it != entries.end() && it->local_class == lc->id && it->remote_class == rc; ++it) {
    if (proto >= it->proto_lo && proto <= it->proto_hi && port >= it->port_lo &&
        port <= it->port_hi) {
      return &outcomes[it->outcome];
    }
  }
  return &outcomes[lc->default_outcome];
}

}  // namespace zonewall::compiler
