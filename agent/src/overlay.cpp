#include "zonewall/agent/overlay.h"

#include <fmt/format.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <cctype>
#include <cstring>
#include <optional>
#include <set>

#include "zonewall/base/c_handle.h"

namespace zonewall::agent {
namespace {

using NlSockPtr = CHandle<nl_sock, nl_socket_free>;
using NlAddrPtr = CHandle<nl_addr, nl_addr_put>;
using NlCachePtr = CHandle<nl_cache, nl_cache_free>;
using LinkPtr = CHandle<rtnl_link, rtnl_link_put>;
using AddrPtr = CHandle<rtnl_addr, rtnl_addr_put>;
using RoutePtr = CHandle<rtnl_route, rtnl_route_put>;
using NeighPtr = CHandle<rtnl_neigh, rtnl_neigh_put>;

// The device's MTU leaves room for the outer IP + UDP + VXLAN headers: 50 bytes over IPv4
// (Flannel's), 70 over IPv6 (the kernel's VXLAN6_HEADROOM: it refuses more).
constexpr int kVxlanOverhead = 50;
constexpr int kVxlan6Overhead = 70;

std::unexpected<Error> kernelError(const std::string& what, int nl_err) {
  return fail(Error::Code::kKernel,
              fmt::format("{}: {}", what, nl_geterror(nl_err < 0 ? -nl_err : nl_err)));
}

NlAddrPtr ipAddr(Addr a, int prefix = -1) {
  const AddrBytes b = addrBytes(a, a.family());
  NlAddrPtr out(nl_addr_build(a.family() == Family::kV4 ? AF_INET : AF_INET6, b.data(), b.size));
  nl_addr_set_prefixlen(out.get(), prefix < 0 ? static_cast<int>(b.size * 8) : prefix);
  return out;
}
NlAddrPtr macAddr(const Mac& m) { return NlAddrPtr(nl_addr_build(AF_LLC, m.data(), m.size())); }

std::optional<Addr> ipOf(nl_addr* a) {
  if (a == nullptr) return std::nullopt;
  const auto* p = static_cast<const unsigned char*>(nl_addr_get_binary_addr(a));
  if (nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 4) {
    return addrFromBytes(p, Family::kV4);
  }
  if (nl_addr_get_family(a) == AF_INET6 && nl_addr_get_len(a) == 16) {
    return addrFromBytes(p, Family::kV6);
  }
  return std::nullopt;
}
std::optional<Mac> macOf(nl_addr* a) {
  if (a == nullptr || nl_addr_get_len(a) != 6) return std::nullopt;
  Mac m;
  std::memcpy(m.data(), nl_addr_get_binary_addr(a), 6);
  return m;
}

std::expected<LinkPtr, Error> linkByName(nl_sock* sock, const std::string& name) {
  rtnl_link* link = nullptr;
  int rc = rtnl_link_get_kernel(sock, 0, name.c_str(), &link);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return LinkPtr{};
  if (rc < 0) return kernelError("RTM_GETLINK " + name, rc);
  return LinkPtr(link);
}

// What the device holds, as three sets: routes (subnet → via), neighbours (address → MAC),
// FDB entries (MAC → remote address).
struct Entries {
  std::map<Cidr, Addr> routes;
  std::map<Addr, Mac> neighbours;
  std::map<Mac, Addr> fdb;
};

Entries wanted(const std::vector<Peer>& peers, bool vxlan) {
  Entries e;
  for (const Peer& p : peers) {
    if (!vxlan) {
      e.routes[p.subnet] = p.public_ip;
      continue;
    }
    e.routes[p.subnet] = p.subnet.base;
    e.neighbours[p.subnet.base] = p.vtep_mac;
    e.fdb[p.vtep_mac] = p.public_ip;
  }
  return e;
}

NlSockPtr connectRoute() {
  NlSockPtr sock(nl_socket_alloc());
  if (sock && nl_connect(sock.get(), NETLINK_ROUTE) < 0) sock.reset();
  return sock;
}

}  // namespace

std::string formatMac(const Mac& m) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4],
                     m[5]);
}

std::optional<Mac> parseMac(std::string_view text) {
  Mac m;
  if (text.size() != 17) return std::nullopt;
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i * 3 + k])));
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + static_cast<unsigned>(d);
    }
    m[i] = static_cast<std::uint8_t>(v);
  }
  return m;
}

struct Overlay::Impl {
  NlSockPtr sock;
  VxlanSpec spec;
  int family = AF_INET;         ///< the overlay's address family
  std::optional<Cidr> network;  ///< host-gw: the only routes it touches
  std::string device;           ///< flannel.<VNI>, or host-gw's underlay
  int ifindex = 0;
  int mtu = 0;
  Mac mac{};
  std::optional<Entries> programmed;  ///< empty until the first sync read the kernel

  std::expected<Entries, Error> readKernel() {
    Entries e;
    nl_cache* raw = nullptr;
    if (int rc = rtnl_route_alloc_cache(sock.get(), family, 0, &raw); rc < 0) {
      return kernelError("RTM_GETROUTE", rc);
    }
    NlCachePtr routes(raw);
    for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_nnexthops(r) != 1) continue;
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      if (rtnl_route_nh_get_ifindex(nh) != ifindex) continue;
      auto dst = ipOf(rtnl_route_get_dst(r));
      auto via = ipOf(rtnl_route_nh_get_gateway(nh));
      if (!dst || !via) continue;
      Cidr subnet{*dst, static_cast<int>(nl_addr_get_prefixlen(rtnl_route_get_dst(r))),
                  dst->family()};
      if (network && !(subnet.prefix >= network->prefix && network->contains(subnet.base))) {
        continue;
      }
      e.routes[subnet] = *via;
    }
    if (network) return e;  // host-gw: the underlay's neighbours are not ours
    // Neighbours (an AF_UNSPEC dump) and the FDB (an AF_BRIDGE dump: `bridge fdb`).
    for (int dump : {AF_UNSPEC, AF_BRIDGE}) {
      raw = nullptr;
      if (int rc = nl_cache_alloc_name("route/neigh", &raw); rc < 0) {
        return kernelError("neighbour cache", rc);
      }
      NlCachePtr neigh(raw);
      nl_cache_set_arg1(neigh.get(), dump);
      if (int rc = nl_cache_refill(sock.get(), neigh.get()); rc < 0) {
        return kernelError(dump == AF_BRIDGE ? "RTM_GETNEIGH (fdb)" : "RTM_GETNEIGH", rc);
      }
      for (nl_object* o = nl_cache_get_first(neigh.get()); o; o = nl_cache_get_next(o)) {
        auto* n = reinterpret_cast<rtnl_neigh*>(o);
        if (rtnl_neigh_get_ifindex(n) != ifindex) continue;
        if (!(rtnl_neigh_get_state(n) & NUD_PERMANENT)) continue;
        auto mac_of = macOf(rtnl_neigh_get_lladdr(n));
        auto ip = ipOf(rtnl_neigh_get_dst(n));
        if (!mac_of || !ip) continue;
        if (rtnl_neigh_get_family(n) == AF_BRIDGE) {
          e.fdb[*mac_of] = *ip;
        } else {
          e.neighbours[*ip] = *mac_of;
        }
      }
    }
    return e;
  }

  std::expected<void, Error> route(const Cidr& subnet, Addr via, bool add) {
    RoutePtr r(rtnl_route_alloc());
    rtnl_route_set_family(r.get(), static_cast<std::uint8_t>(family));
    rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
    rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
    rtnl_route_set_type(r.get(), RTN_UNICAST);
    rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
    NlAddrPtr dst = ipAddr(subnet.base, subnet.prefix);
    rtnl_route_set_dst(r.get(), dst.get());
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, ifindex);
    NlAddrPtr gw = ipAddr(via);
    rtnl_route_nh_set_gateway(nh, gw.get());
    if (!network) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
    rtnl_route_add_nexthop(r.get(), nh);
    int rc = add ? rtnl_route_add(sock.get(), r.get(), NLM_F_CREATE | NLM_F_REPLACE)
                 : rtnl_route_delete(sock.get(), r.get(), 0);
    if (rc < 0 && !(!add && rc == -NLE_OBJ_NOTFOUND)) {
      return kernelError(fmt::format("{} {} via {} dev {}", add ? "RTM_NEWROUTE" : "RTM_DELROUTE",
                                     subnet.str(), formatAddr(via), device),
                         rc);
    }
    return {};
  }

  std::expected<void, Error> neighbour(bool bridge, Addr ip, const Mac& m, bool add) {
    NeighPtr n(rtnl_neigh_alloc());
    rtnl_neigh_set_ifindex(n.get(), ifindex);
    NlAddrPtr dst = ipAddr(ip);
    NlAddrPtr ll = macAddr(m);
    rtnl_neigh_set_dst(n.get(), dst.get());
    rtnl_neigh_set_lladdr(n.get(), ll.get());
    rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
    if (bridge) {
      rtnl_neigh_set_family(n.get(), AF_BRIDGE);
      rtnl_neigh_set_flags(n.get(), NTF_SELF);
    }
    int rc = add ? rtnl_neigh_add(sock.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE)
                 : rtnl_neigh_delete(sock.get(), n.get(), 0);
    if (rc < 0 && !(!add && rc == -NLE_OBJ_NOTFOUND)) {
      return kernelError(
          fmt::format("{} {} {} lladdr {} dev {}", add ? "RTM_NEWNEIGH" : "RTM_DELNEIGH",
                      bridge ? "fdb dst" : "neigh", formatAddr(ip), formatMac(m), device),
          rc);
    }
    return {};
  }
};

Overlay::Overlay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Overlay::~Overlay() = default;
Overlay::Overlay(Overlay&&) noexcept = default;
Overlay& Overlay::operator=(Overlay&&) noexcept = default;
const Mac& Overlay::mac() const { return impl_->mac; }
int Overlay::mtu() const { return impl_->mtu; }
int Overlay::ifindex() const { return impl_->ifindex; }
bool Overlay::isVxlan() const { return !impl_->network; }

std::expected<Overlay, Error> Overlay::hostGw(const std::string& underlay, const Cidr& network) {
  auto impl = std::make_unique<Impl>();
  impl->sock = connectRoute();
  if (!impl->sock) return fail(Error::Code::kKernel, "netlink socket: cannot connect");
  impl->network = network;
  impl->family = network.family == Family::kV6 ? AF_INET6 : AF_INET;
  impl->device = underlay;
  auto link = linkByName(impl->sock.get(), underlay);
  if (!link) return std::unexpected(link.error());
  if (!*link) return fail(Error::Code::kInvalidInput, "no interface " + underlay + " for host-gw");
  impl->ifindex = rtnl_link_get_ifindex(link->get());
  impl->mtu = static_cast<int>(rtnl_link_get_mtu(link->get()));
  return Overlay(std::move(impl));
}

std::expected<Overlay, Error> Overlay::vxlan(const VxlanSpec& spec) {
  auto impl = std::make_unique<Impl>();
  impl->spec = spec;
  impl->family = spec.local.family() == Family::kV6 ? AF_INET6 : AF_INET;
  impl->device = spec.name();
  impl->sock = connectRoute();
  if (!impl->sock) return fail(Error::Code::kKernel, "netlink socket: cannot connect");
  nl_sock* sock = impl->sock.get();
  auto underlay = linkByName(sock, spec.underlay);
  if (!underlay) return std::unexpected(underlay.error());
  if (!*underlay) {
    return fail(Error::Code::kInvalidInput, "no interface " + spec.underlay + " for the tunnel");
  }
  const int underlay_index = rtnl_link_get_ifindex(underlay->get());
  impl->mtu = static_cast<int>(rtnl_link_get_mtu(underlay->get())) -
              (impl->family == AF_INET6 ? kVxlan6Overhead : kVxlanOverhead);
  const std::string name = spec.name();
  auto existing = linkByName(sock, name);
  if (!existing) return std::unexpected(existing.error());
  if (*existing) {
    // Adopt it if it is the tunnel this spec describes; otherwise make it again.
    rtnl_link* l = existing->get();
    std::uint32_t vni = 0;
    nl_addr* local = nullptr;
    const char* type = rtnl_link_get_type(l);
    bool fits = type != nullptr && std::string_view(type) == "vxlan" &&
                rtnl_link_vxlan_get_id(l, &vni) == 0 &&
                vni == static_cast<std::uint32_t>(spec.vni) &&
                rtnl_link_vxlan_get_local(l, &local) == 0 && ipOf(local) == spec.local;
    if (local != nullptr) nl_addr_put(local);
    if (!fits) {
      if (int rc = rtnl_link_delete(sock, l); rc < 0) return kernelError("RTM_DELLINK " + name, rc);
      existing->reset();
    }
  }
  if (!*existing) {
    LinkPtr link(rtnl_link_vxlan_alloc());
    rtnl_link_set_name(link.get(), name.c_str());
    rtnl_link_vxlan_set_id(link.get(), static_cast<std::uint32_t>(spec.vni));
    rtnl_link_vxlan_set_link(link.get(), static_cast<std::uint32_t>(underlay_index));
    NlAddrPtr local = ipAddr(spec.local);
    rtnl_link_vxlan_set_local(link.get(), local.get());
    rtnl_link_vxlan_set_learning(link.get(), 0);
    if (spec.port != 0) rtnl_link_vxlan_set_port(link.get(), static_cast<std::uint32_t>(spec.port));
    rtnl_link_set_mtu(link.get(), static_cast<unsigned>(impl->mtu));
    if (int rc = rtnl_link_add(sock, link.get(), NLM_F_CREATE | NLM_F_EXCL); rc < 0) {
      return kernelError("RTM_NEWLINK " + name + " type vxlan", rc);
    }
  }
  auto link = linkByName(sock, name);
  if (!link || !*link) {
    return fail(Error::Code::kKernel, name + " vanished after it was created");
  }
  impl->ifindex = rtnl_link_get_ifindex(link->get());
  if (auto m = macOf(rtnl_link_get_addr(link->get()))) impl->mac = *m;
  // MTU and up.
  LinkPtr change(rtnl_link_alloc());
  rtnl_link_set_mtu(change.get(), static_cast<unsigned>(impl->mtu));
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int rc = rtnl_link_change(sock, link->get(), change.get(), 0); rc < 0) {
    return kernelError("RTM_NEWLINK " + name + " up", rc);
  }
  return Overlay(std::move(impl));
}

std::expected<void, Error> Overlay::assign(const Cidr& subnet) {
  if (impl_->network) return {};
  // Flannel's EnsureV4AddressOnLink / ConfigureIPv6: the subnet's network address, /32 or /128.
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), impl_->ifindex);
  NlAddrPtr own = ipAddr(subnet.base);
  rtnl_addr_set_local(addr.get(), own.get());
  if (int rc = rtnl_addr_add(impl_->sock.get(), addr.get(), NLM_F_REPLACE);
      rc < 0 && rc != -NLE_EXIST) {
    return kernelError(
        fmt::format("RTM_NEWADDR {} dev {}", formatAddr(subnet.base), impl_->spec.name()), rc);
  }
  return {};
}

void Overlay::forget() { impl_->programmed.reset(); }

std::expected<Overlay::Changes, Error> Overlay::sync(const std::vector<Peer>& peers) {
  Impl& im = *impl_;
  if (!im.programmed) {
    auto now = im.readKernel();
    if (!now) return std::unexpected(now.error());
    im.programmed = std::move(*now);
  }
  Entries want = wanted(peers, !im.network);
  Entries& have = *im.programmed;
  Changes c;
  // Removals first: a subnet that moved to another node must not keep the old next hop.
  for (auto it = have.routes.begin(); it != have.routes.end();) {
    auto w = want.routes.find(it->first);
    if (w != want.routes.end() && w->second == it->second) {
      ++it;
      continue;
    }
    if (auto ok = im.route(it->first, it->second, false); !ok) return std::unexpected(ok.error());
    ++c.removed;
    it = have.routes.erase(it);
  }
  for (auto it = have.neighbours.begin(); it != have.neighbours.end();) {
    auto w = want.neighbours.find(it->first);
    if (w != want.neighbours.end() && w->second == it->second) {
      ++it;
      continue;
    }
    if (auto ok = im.neighbour(false, it->first, it->second, false); !ok) {
      return std::unexpected(ok.error());
    }
    ++c.removed;
    it = have.neighbours.erase(it);
  }
  for (auto it = have.fdb.begin(); it != have.fdb.end();) {
    auto w = want.fdb.find(it->first);
    if (w != want.fdb.end() && w->second == it->second) {
      ++it;
      continue;
    }
    if (auto ok = im.neighbour(true, it->second, it->first, false); !ok) {
      return std::unexpected(ok.error());
    }
    ++c.removed;
    it = have.fdb.erase(it);
  }
  // Additions: neighbour and FDB before the route that uses them.
  for (const auto& [ip, m] : want.neighbours) {
    if (have.neighbours.contains(ip)) continue;
    if (auto ok = im.neighbour(false, ip, m, true); !ok) return std::unexpected(ok.error());
    have.neighbours[ip] = m;
    ++c.added;
  }
  for (const auto& [m, ip] : want.fdb) {
    if (have.fdb.contains(m)) continue;
    if (auto ok = im.neighbour(true, ip, m, true); !ok) return std::unexpected(ok.error());
    have.fdb[m] = ip;
    ++c.added;
  }
  for (const auto& [subnet, via] : want.routes) {
    if (have.routes.contains(subnet)) {
      ++c.unchanged;
      continue;
    }
    if (auto ok = im.route(subnet, via, true); !ok) return std::unexpected(ok.error());
    have.routes[subnet] = via;
    ++c.added;
  }
  return c;
}

}  // namespace zonewall::agent
