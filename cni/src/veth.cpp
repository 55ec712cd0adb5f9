#include "zonewall/cni/veth.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/if.h>
#include <linux/nsfs.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "zonewall/base/c_handle.h"
#include "zonewall/base/netns.h"

namespace zonewall::cni {

using zonewall::Addr;
using zonewall::Family;

namespace {

using NlSockPtr = CHandle<nl_sock, nl_socket_free>;
using NlAddrPtr = CHandle<nl_addr, nl_addr_put>;
using NlCachePtr = CHandle<nl_cache, nl_cache_free>;
using RtnlLinkPtr = CHandle<rtnl_link, rtnl_link_put>;
using RtnlAddrPtr = CHandle<rtnl_addr, rtnl_addr_put>;
using RtnlRoutePtr = CHandle<rtnl_route, rtnl_route_put>;

constexpr std::string_view kAliasPrefix = "zonewall ";

std::unexpected<Error> kernelError(std::string what, int nl_err) {
  return fail(ErrorCode::kKernel,
              fmt::format("{}: {}", what, nl_geterror(nl_err < 0 ? -nl_err : nl_err)));
}

// A rtnetlink socket bound to `netns_fd`'s namespace (-1: the current one). A socket stays in
// the namespace it was created in, so only its creation needs the thread inside the pod.
Expected<NlSockPtr> routeSocket(int netns_fd) {
  std::optional<NetnsGuard> inside;  // leaves the pod's namespace (or aborts) when it goes
  if (netns_fd >= 0) {
    auto entered = NetnsGuard::enter(netns_fd);
    if (!entered) {
      return fail(ErrorCode::kIo, "the pod netns: " + entered.error().str());
    }
    inside.emplace(std::move(*entered));
  }
  NlSockPtr sock(nl_socket_alloc());
  int rc = sock ? nl_connect(sock.get(), NETLINK_ROUTE) : -NLE_NOMEM;
  inside.reset();
  if (rc < 0) return kernelError("netlink socket", rc);
  return sock;
}

NlAddrPtr nlAddr(Addr a, int prefix) {
  const AddrBytes b = addrBytes(a, a.family());
  NlAddrPtr out(nl_addr_build(a.family() == Family::kV4 ? AF_INET : AF_INET6, b.data(), b.size));
  nl_addr_set_prefixlen(out.get(), prefix);
  return out;
}

std::optional<Addr> fromNlAddr(nl_addr* a) {
  if (a == nullptr) return std::nullopt;
  const auto* p = static_cast<const unsigned char*>(nl_addr_get_binary_addr(a));
  unsigned len = nl_addr_get_len(a);
  if (nl_addr_get_family(a) == AF_INET && len == 4) {
    return addrFromBytes(p, Family::kV4);
  }
  if (nl_addr_get_family(a) == AF_INET6 && len == 16) {
    return addrFromBytes(p, Family::kV6);
  }
  if (len == 0) {  // a default route's dst
    return nl_addr_get_family(a) == AF_INET ? Addr::fromV4(0) : Addr{};
  }
  return std::nullopt;
}

// The link named `name`, or null when it does not exist.
Expected<RtnlLinkPtr> getLink(nl_sock* sock, const std::string& name) {
  rtnl_link* link = nullptr;
  int rc = rtnl_link_get_kernel(sock, 0, name.c_str(), &link);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return RtnlLinkPtr{};
  if (rc < 0) return kernelError(fmt::format("RTM_GETLINK {}", name), rc);
  return RtnlLinkPtr(link);
}

std::string linkMac(rtnl_link* link) {
  std::array<char, 64> buf{};
  nl_addr* a = rtnl_link_get_addr(link);
  return a ? nl_addr2str(a, buf.data(), buf.size()) : "";
}

Expected<void> deleteLink(nl_sock* sock, const std::string& name) {
  RtnlLinkPtr link(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), name.c_str());
  int rc = rtnl_link_delete(sock, link.get());
  if (rc < 0 && rc != -NLE_OBJ_NOTFOUND && rc != -NLE_NODEV) {
    return kernelError(fmt::format("RTM_DELLINK {}", name), rc);
  }
  return {};
}

Expected<void> writeSysctl(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) {
    return fail(ErrorCode::kIo, fmt::format("open {}: {}", path, std::strerror(errno)));
  }
  ssize_t n = ::write(fd.get(), value.data(), value.size());
  int err = errno;
  if (n != static_cast<ssize_t>(value.size())) {
    return fail(ErrorCode::kIo, fmt::format("write {} to {}: {}", value, path, std::strerror(err)));
  }
  return {};
}

// Global switches are read first: rewriting ip_forward resets every interface's forwarding.
Expected<void> enableSysctl(const std::string& path) {
  std::array<char, 8> buf{};
  if (UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)); fd) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size() - 1);
    if (n > 0 && buf[0] == '1') {
      return {};
    }
  }
  return writeSysctl(path, "1");
}

Expected<void> setLinkUp(nl_sock* sock, int ifindex, const char* alias) {
  RtnlLinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), ifindex);
  RtnlLinkPtr change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (alias != nullptr) rtnl_link_set_ifalias(change.get(), alias);
  int rc = rtnl_link_change(sock, orig.get(), change.get(), 0);
  if (rc < 0) return kernelError(fmt::format("RTM_NEWLINK up ifindex {}", ifindex), rc);
  return {};
}

Expected<void> addAddress(nl_sock* sock, int ifindex, Addr a, int prefix, std::string_view ifname) {
  RtnlAddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  NlAddrPtr local = nlAddr(a, prefix);
  rtnl_addr_set_local(addr.get(), local.get());  // takes its own reference
  // Routed pods need no duplicate address detection: the address is unique by IPAM, and DAD
  // would keep it unusable for a second after ADD returns.
  if (a.family() == Family::kV6) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  int rc = rtnl_addr_add(sock, addr.get(), 0);
  if (rc < 0 && !(rc == -NLE_EXIST && a.family() == Family::kV6 && prefix == 64)) {
    return kernelError(
        fmt::format("RTM_NEWADDR {}/{} dev {}", zonewall::formatAddr(a), prefix, ifname), rc);
  }
  return {};
}

// dst/prefix dev ifindex [via gw onlink]; `replace` overwrites a route left by a dead pod.
// `exists`, if given, is set instead of failing when the route is already there.
Expected<void> addRoute(nl_sock* sock, int ifindex, Addr dst, int prefix, std::optional<Addr> gw,
                        bool replace, std::string_view ifname, bool* exists = nullptr) {
  RtnlRoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), dst.family() == Family::kV4 ? AF_INET : AF_INET6);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_scope(route.get(), gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  NlAddrPtr d = nlAddr(dst, prefix);
  rtnl_route_set_dst(route.get(), d.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  rtnl_route_nh_set_ifindex(nh, ifindex);
  NlAddrPtr g;
  if (gw) {
    g = nlAddr(*gw, familyBits(gw->family()));
    rtnl_route_nh_set_gateway(nh, g.get());
    rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
  }
  rtnl_route_add_nexthop(route.get(), nh);  // route owns nh now
  int rc = rtnl_route_add(sock, route.get(), NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL));
  if (exists != nullptr) *exists = rc == -NLE_EXIST;
  if (rc < 0 && !(exists != nullptr && *exists)) {
    return kernelError(fmt::format("RTM_NEWROUTE {}/{}{} dev {}", zonewall::formatAddr(dst), prefix,
                                   gw ? " via " + zonewall::formatAddr(*gw) : "", ifname),
                       rc);
  }
  return {};
}

Addr gatewayFor(Family f) {
  return *zonewall::parseAddr(f == Family::kV4 ? kGatewayV4 : kGatewayV6);
}

Expected<void> configureHost(nl_sock* host, int ifindex, const VethSpec& spec) {
  const std::string& h = spec.host_veth;
  bool v4 = false;
  bool v6 = false;
  for (Addr a : spec.addresses) (a.family() == Family::kV4 ? v4 : v6) = true;
  std::vector<std::pair<std::string, std::string_view>> sysctls;
  if (v4) {
    sysctls.push_back({"/proc/sys/net/ipv4/conf/" + h + "/proxy_arp", "1"});
    // Answer ARP at once: the default holds proxy replies back up to 0.8 s.
    sysctls.push_back({"/proc/sys/net/ipv4/neigh/" + h + "/proxy_delay", "0"});
    sysctls.push_back({"/proc/sys/net/ipv4/conf/" + h + "/forwarding", "1"});
  }
  if (v6) {
    sysctls.push_back({"/proc/sys/net/ipv6/conf/" + h + "/accept_ra", "0"});
    // The link-local next hop is added by us, fixed and without DAD; no generated one.
    sysctls.push_back({"/proc/sys/net/ipv6/conf/" + h + "/addr_gen_mode", "1"});
    sysctls.push_back({"/proc/sys/net/ipv6/conf/" + h + "/accept_dad", "0"});
    sysctls.push_back({"/proc/sys/net/ipv6/conf/" + h + "/proxy_ndp", "1"});
    sysctls.push_back({"/proc/sys/net/ipv6/conf/" + h + "/forwarding", "1"});
  }
  for (const auto& [path, value] : sysctls) {
    if (auto ok = writeSysctl(path, value); !ok) return ok;
  }
  if (v4) {
    if (auto ok = enableSysctl("/proc/sys/net/ipv4/ip_forward"); !ok) return ok;
  }
  if (v6) {
    if (auto ok = enableSysctl("/proc/sys/net/ipv6/conf/all/forwarding"); !ok) return ok;
  }
  std::string alias = hostVethAlias(spec.network, spec.container_id, spec.ifname);
  if (auto ok = setLinkUp(host, ifindex, alias.c_str()); !ok) return ok;
  if (v6) {
    if (auto ok = addAddress(host, ifindex, gatewayFor(Family::kV6), 64, h); !ok) return ok;
  }
  for (Addr a : spec.addresses) {
    if (auto ok =
            addRoute(host, ifindex, a, familyBits(a.family()), std::nullopt, /*replace=*/true, h);
        !ok)
      return ok;
  }
  return {};
}

// Returns the families whose default route now leads through this interface: a second
// interface of a pod whose first one already owns the default route adds only its address.
Expected<std::vector<Family>> configurePod(nl_sock* pod, int ifindex, const VethSpec& spec) {
  for (Addr a : spec.addresses) {
    if (auto ok = addAddress(pod, ifindex, a, familyBits(a.family()), spec.ifname); !ok)
      return std::unexpected(ok.error());
  }
  if (auto ok = setLinkUp(pod, ifindex, nullptr); !ok) return std::unexpected(ok.error());
  std::vector<Family> routed;
  for (Addr a : spec.addresses) {
    Addr any = a.family() == Family::kV4 ? Addr::fromV4(0) : Addr{};
    bool exists = false;
    auto ok = addRoute(pod, ifindex, any, 0, gatewayFor(a.family()), /*replace=*/false, spec.ifname,
                       &exists);
    if (!ok) return std::unexpected(ok.error());
    if (!exists) routed.push_back(a.family());
  }
  return routed;
}

template <class Fn>
void forEachObject(nl_cache* cache, Fn fn) {
  for (nl_object* o = nl_cache_get_first(cache); o != nullptr; o = nl_cache_get_next(o)) fn(o);
}

}  // namespace

Expected<Netns> Netns::open(const std::string& path) {
  // O_NONBLOCK: a FIFO given as the netns must not block the plugin until a writer comes.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    int err = errno;
    return fail(err == ENOENT ? ErrorCode::kUnknownContainer : ErrorCode::kInvalidEnvironment,
                fmt::format("CNI_NETNS={}: {}", path, std::strerror(err)));
  }
  if (::ioctl(fd.get(), NS_GET_NSTYPE) != CLONE_NEWNET) {
    return fail(ErrorCode::kInvalidEnvironment,
                fmt::format("CNI_NETNS={} is not a network namespace", path));
  }
  return Netns(std::move(fd), path);
}

std::string hostVethAlias(std::string_view network, std::string_view cid, std::string_view ifname) {
  return fmt::format("{}{} {} {}", kAliasPrefix, network, cid, ifname);
}

Expected<VethInfo> setupVeth(const Netns& pod_ns, const VethSpec& spec) {
  auto host = routeSocket(-1);
  if (!host) return std::unexpected(host.error());
  auto pod = routeSocket(pod_ns.fd());
  if (!pod) return std::unexpected(pod.error());

  RtnlLinkPtr veth(rtnl_link_veth_alloc());
  rtnl_link_set_name(veth.get(), spec.host_veth.c_str());
  rtnl_link_set_mtu(veth.get(), static_cast<unsigned>(spec.mtu));
  NlAddrPtr mac;
  {
    nl_addr* parsed = nullptr;
    if (nl_addr_parse(std::string(kHostVethMac).c_str(), AF_LLC, &parsed) == 0) mac.reset(parsed);
  }
  rtnl_link_set_addr(veth.get(), mac.get());
  // get_peer hands out a new reference to the peer that veth owns: ours to put.
  RtnlLinkPtr peer(rtnl_link_veth_get_peer(veth.get()));
  rtnl_link_set_name(peer.get(), spec.ifname.c_str());
  rtnl_link_set_mtu(peer.get(), static_cast<unsigned>(spec.mtu));
  rtnl_link_set_ns_fd(peer.get(), pod_ns.fd());

  // Create first, ask questions only if a name is taken: one round trip on the common path.
  int rc = rtnl_link_add(host->get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (rc == -NLE_EXIST) {
    auto existing = getLink(pod->get(), spec.ifname);
    if (!existing) return std::unexpected(existing.error());
    if (*existing) {
      return fail(ErrorCode::kInterfaceExists,
                  fmt::format("{} already exists in netns {}", spec.ifname, pod_ns.path()));
    }
    auto stale = getLink(host->get(), spec.host_veth);
    if (!stale) return std::unexpected(stale.error());
    if (*stale) {
      // The same pod's previous sandbox (same name, so same host veth) is gone or going: its
      // interface must not keep the name, or the new pod could never be wired.
      const char* alias = rtnl_link_get_ifalias(stale->get());
      std::fprintf(stderr, "zonewall-cni: replacing host veth %s left by \"%s\"\n",
                   spec.host_veth.c_str(), alias ? alias : "?");
      if (auto ok = deleteLink(host->get(), spec.host_veth); !ok)
        return std::unexpected(ok.error());
    }
    rc = rtnl_link_add(host->get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
  }
  if (rc < 0) {
    return kernelError(
        fmt::format("RTM_NEWLINK {} peer {} in {}", spec.host_veth, spec.ifname, pod_ns.path()),
        rc);
  }

  auto configure = [&]() -> Expected<VethInfo> {
    auto host_link = getLink(host->get(), spec.host_veth);
    if (!host_link) return std::unexpected(host_link.error());
    auto pod_link = getLink(pod->get(), spec.ifname);
    if (!pod_link) return std::unexpected(pod_link.error());
    if (!*host_link || !*pod_link) {
      return fail(ErrorCode::kKernel, fmt::format("veth {} / {} vanished right after creation",
                                                  spec.host_veth, spec.ifname));
    }
    if (auto ok = configureHost(host->get(), rtnl_link_get_ifindex(host_link->get()), spec); !ok) {
      return std::unexpected(ok.error());
    }
    auto routed = configurePod(pod->get(), rtnl_link_get_ifindex(pod_link->get()), spec);
    if (!routed) return std::unexpected(routed.error());
    return VethInfo{.host_mac = linkMac(host_link->get()),
                    .pod_mac = linkMac(pod_link->get()),
                    .default_routes = std::move(*routed)};
  };
  auto info = configure();
  if (!info) (void)deleteLink(host->get(), spec.host_veth);  // takes the pod end with it
  return info;
}

Expected<void> removeVeth(const std::string& name, const std::string& alias) {
  auto host = routeSocket(-1);
  if (!host) return std::unexpected(host.error());
  auto link = getLink(host->get(), name);
  if (!link) return std::unexpected(link.error());
  if (!*link) return {};
  const char* have = rtnl_link_get_ifalias(link->get());
  if (have == nullptr || alias != have) return {};  // another attachment's interface now
  return deleteLink(host->get(), name);
}

Expected<std::vector<std::pair<std::string, std::string>>> listHostVeths(std::string_view network) {
  auto host = routeSocket(-1);
  if (!host) return std::unexpected(host.error());
  nl_cache* raw = nullptr;
  int rc = rtnl_link_alloc_cache(host->get(), AF_UNSPEC, &raw);
  if (rc < 0) return kernelError("RTM_GETLINK dump", rc);
  NlCachePtr cache(raw);
  std::string prefix = fmt::format("{}{} ", kAliasPrefix, network);
  std::vector<std::pair<std::string, std::string>> out;
  forEachObject(cache.get(), [&](nl_object* o) {
    auto* link = reinterpret_cast<rtnl_link*>(o);
    const char* alias = rtnl_link_get_ifalias(link);
    if (alias != nullptr && std::string_view(alias).starts_with(prefix)) {
      out.emplace_back(rtnl_link_get_name(link), alias);
    }
  });
  return out;
}

Expected<void> checkVeth(const Netns& pod_ns, const VethSpec& spec, const Result& prev) {
  auto host = routeSocket(-1);
  if (!host) return std::unexpected(host.error());
  auto pod = routeSocket(pod_ns.fd());
  if (!pod) return std::unexpected(pod.error());
  auto checkFailed = [](std::string msg) { return fail(ErrorCode::kCheckFailed, std::move(msg)); };

  auto pod_link = getLink(pod->get(), spec.ifname);
  if (!pod_link) return std::unexpected(pod_link.error());
  if (!*pod_link)
    return checkFailed(fmt::format("{} is missing from netns {}", spec.ifname, pod_ns.path()));
  int pod_index = rtnl_link_get_ifindex(pod_link->get());
  if ((rtnl_link_get_flags(pod_link->get()) & IFF_UP) == 0) {
    return checkFailed(fmt::format("{} in netns {} is down", spec.ifname, pod_ns.path()));
  }

  nl_cache* raw = nullptr;
  if (int rc = rtnl_addr_alloc_cache(pod->get(), &raw); rc < 0)
    return kernelError("RTM_GETADDR dump", rc);
  NlCachePtr addrs(raw);
  for (Addr want : spec.addresses) {
    bool found = false;
    forEachObject(addrs.get(), [&](nl_object* o) {
      auto* a = reinterpret_cast<rtnl_addr*>(o);
      auto have = fromNlAddr(rtnl_addr_get_local(a));
      found = found || (rtnl_addr_get_ifindex(a) == pod_index && have && *have == want);
    });
    if (!found) {
      return checkFailed(
          fmt::format("{} does not carry {}", spec.ifname, zonewall::formatAddr(want)));
    }
  }

  if (int rc = rtnl_route_alloc_cache(pod->get(), AF_UNSPEC, 0, &raw); rc < 0)
    return kernelError("RTM_GETROUTE dump", rc);
  NlCachePtr pod_routes(raw);
  for (const Route& want : prev.routes) {
    auto dst = zonewall::parseCidr(want.dst);
    auto gw = want.gw.empty() ? std::nullopt : zonewall::parseAddr(want.gw);
    if (!dst || (!want.gw.empty() && !gw))
      return checkFailed(fmt::format("prevResult route {} is malformed", want.dst));
    bool found = false;
    forEachObject(pod_routes.get(), [&](nl_object* o) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      if (rtnl_route_get_table(r) != RT_TABLE_MAIN) return;
      nl_addr* d = rtnl_route_get_dst(r);
      auto have = fromNlAddr(d);
      if (!have || *have != dst->cidr.base ||
          static_cast<int>(nl_addr_get_prefixlen(d)) != dst->cidr.prefix)
        return;
      for (int i = 0; i < rtnl_route_get_nnexthops(r); ++i) {
        rtnl_nexthop* nh = rtnl_route_nexthop_n(r, i);
        auto via = fromNlAddr(rtnl_route_nh_get_gateway(nh));
        if (!gw || (via && *via == *gw)) found = true;
      }
    });
    if (!found) {
      return checkFailed(fmt::format("route {}{} is missing from netns {}", want.dst,
                                     want.gw.empty() ? "" : " via " + want.gw, pod_ns.path()));
    }
  }

  auto host_link = getLink(host->get(), spec.host_veth);
  if (!host_link) return std::unexpected(host_link.error());
  if (!*host_link) return checkFailed(fmt::format("host veth {} is missing", spec.host_veth));
  const char* alias = rtnl_link_get_ifalias(host_link->get());
  if (alias == nullptr || hostVethAlias(spec.network, spec.container_id, spec.ifname) != alias) {
    return checkFailed(fmt::format("host veth {} belongs to another attachment (\"{}\")",
                                   spec.host_veth, alias ? alias : ""));
  }
  if ((rtnl_link_get_flags(host_link->get()) & IFF_UP) == 0) {
    return checkFailed(fmt::format("host veth {} is down", spec.host_veth));
  }
  int host_index = rtnl_link_get_ifindex(host_link->get());
  if (int rc = rtnl_route_alloc_cache(host->get(), AF_UNSPEC, 0, &raw); rc < 0)
    return kernelError("RTM_GETROUTE dump", rc);
  NlCachePtr host_routes(raw);
  for (Addr want : spec.addresses) {
    bool found = false;
    forEachObject(host_routes.get(), [&](nl_object* o) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      nl_addr* d = rtnl_route_get_dst(r);
      auto have = fromNlAddr(d);
      if (rtnl_route_get_table(r) != RT_TABLE_MAIN || !have || *have != want ||
          static_cast<int>(nl_addr_get_prefixlen(d)) != familyBits(want.family())) {
        return;
      }
      for (int i = 0; i < rtnl_route_get_nnexthops(r); ++i) {
        found = found || rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(r, i)) == host_index;
      }
    });
    if (!found) {
      return checkFailed(fmt::format("route {}/{} dev {} is missing from the host",
                                     zonewall::formatAddr(want), familyBits(want.family()),
                                     spec.host_veth));
    }
  }
  return {};
}

}  // namespace zonewall::cni
