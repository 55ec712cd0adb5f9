// The routed veth of a pod, through libnl-3 (route), as Calico wires it:
//
//   host netns                                pod netns (CNI_NETNS)
//   +--------------------------------+          +--------------------------------------+
//   | zw<hash>  (no address)         |==veth==  | eth0 (CNI_IFNAME)  IP/32, IP6/128    |
//   |   mac ee:ee:ee:ee:ee:ee        |          |   default via 169.254.1.1 onlink     |
//   |   proxy_arp=1, proxy_delay=0   |          |   ::/0 via fe80::ecee:eeff:feee:eeee |
//   |   forwarding=1, accept_ra=0    |          +--------------------------------------+
//   |   fe80::ecee:eeff:feee:eeee/64 |
//   | route IP/32 dev zw<hash>       |
//   |   scope link,                  |
//   |   IP6/128 dev zw<hash>         |
//   +--------------------------------+
//
// The pod end is created directly inside the pod netns (IFLA_NET_NS_FD on the peer), so no
// half-moved interface can be left behind in the host netns. The host end carries an alias
// naming its attachment ("zonewall <network> <containerID> <ifname>"): DEL and GC remove a host
// veth only when the alias says it is theirs.
#pragma once

#include <string>
#include <vector>

#include "zonewall/base/fd.h"
#include "zonewall/base/ip.h"
#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

/// The next hop pods use: proxy-ARPed (IPv4) and the host veth's fixed link-local (IPv6).
inline constexpr std::string_view kGatewayV4 = "169.254.1.1";
inline constexpr std::string_view kGatewayV6 = "fe80::ecee:eeff:feee:eeee";
inline constexpr std::string_view kHostVethMac = "ee:ee:ee:ee:ee:ee";

/// A network namespace opened by path (`/run/netns/x` or `/proc/<pid>/ns/net`).
class Netns {
 public:
  /// A path that does not exist is code 3 (unknown container); one that is not a network
  /// namespace is code 4 (bad CNI_NETNS).
  static Expected<Netns> open(const std::string& path);
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }

 private:
  Netns(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

struct VethSpec {
  std::string network;
  std::string container_id;
  std::string ifname;     ///< in the pod
  std::string host_veth;  ///< in the host netns
  int mtu = 1500;
  std::vector<zonewall::Addr> addresses;  ///< at most one per family
};

/// What ADD reports.
struct VethInfo {
  std::string host_mac;
  std::string pod_mac;
  /// Families whose default route this interface got (not when another interface has it).
  std::vector<zonewall::Family> default_routes;
};

/// The alias a host veth of this attachment carries.
std::string hostVethAlias(std::string_view network, std::string_view cid, std::string_view ifname);

/// Creates and configures the pair. Fails with code 101 if `ifname` exists in the pod. A host
/// veth of the same name left by an earlier sandbox of the same pod is replaced. On failure
/// everything created is removed again.
Expected<VethInfo> setupVeth(const Netns& pod, const VethSpec& spec);

/// Removes the host veth `name` (and with it the pod end) if its alias is `alias`. Missing
/// links are not an error.
Expected<void> removeVeth(const std::string& name, const std::string& alias);

/// Host veths carrying a zonewall alias of `network`: (name, alias).
Expected<std::vector<std::pair<std::string, std::string>>> listHostVeths(std::string_view network);

/// CHECK: the pod interface, its addresses and routes as in `prev`, and the host veth with its
/// /32 (/128) routes. Errors are code 100 and say what is missing.
Expected<void> checkVeth(const Netns& pod, const VethSpec& spec, const Result& prev);

}  // namespace zonewall::cni
