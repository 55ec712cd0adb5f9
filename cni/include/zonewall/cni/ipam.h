// IPAM: the node's pod subnet(s) and the addresses handed out from them.
//
// The subnet comes from the config (`ipam.subnet`) or from the node subnet file that the agent
// (or a real flanneld) writes in Flannel's subnet.env format. Reservations live in a directory
// per network, one file per address, as the reference host-local plugin keeps them:
//
//   <dataDir>/<network>/lock                 flock'ed for every operation: one writer at a time
//   <dataDir>/<network>/10.244.1.7           {"containerID":…,"ifname":…,"namespace":…,…}
//   <dataDir>/<network>/fd00:1::7
//   <dataDir>/<network>/last_reserved_ip.4   round-robin cursor (so a freed address rests)
//
// Crash safety: a reservation file is written in full under a temporary name and then
// hard-linked to the address name (atomic, fails if taken), so an address file is never empty
// or half-written; the cursor is replaced by rename. A process killed at any point leaves at
// most a temporary file (removed by the next one to take the lock) or a complete reservation
// that DEL or GC releases. The lock dies with its holder.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zonewall/base/fd.h"
#include "zonewall/base/ip.h"
#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

struct NodeSubnets {
  std::vector<zonewall::Cidr> subnets;  ///< at most one per family
  int mtu = 0;                          ///< FLANNEL_MTU, 0 when not given
};

/// Parses subnet.env text: FLANNEL_NETWORK, FLANNEL_SUBNET (e.g. 10.244.1.1/24: the lease
/// with its first usable address), FLANNEL_MTU, FLANNEL_IPMASQ, FLANNEL_IPV6_NETWORK,
/// FLANNEL_IPV6_SUBNET. Errors name `path:line`.
Expected<NodeSubnets> parseSubnetEnv(std::string_view text, std::string_view path);

/// The subnets to allocate from: `ipam.subnet` if given, else the subnet file. A missing
/// subnet file means the node has no lease yet: code 11 (try again later).
Expected<NodeSubnets> resolveSubnets(const NetConf& conf);

/// Who holds an address.
struct Reservation {
  zonewall::Addr address;
  std::string container_id;
  std::string ifname;
  std::string pod_namespace;
  std::string pod_name;
  std::string host_veth;

  bool ownedBy(std::string_view cid, std::string_view ifn) const {
    return container_id == cid && ifname == ifn;
  }
};

/// The reservations of one network, locked for the lifetime of the object.
class AddressPool {
 public:
  /// Creates the directory if needed and takes its lock (blocking).
  static Expected<AddressPool> open(const std::string& data_dir, const std::string& network);

  AddressPool(AddressPool&&) noexcept = default;
  AddressPool& operator=(AddressPool&&) noexcept = default;
  ~AddressPool() = default;  ///< closing the lock descriptor releases the flock

  /// Reserves one address in each subnet for `owner` (its address field is ignored). All or
  /// nothing: if one subnet is full, nothing stays reserved. A full subnet is code 11.
  Expected<std::vector<Reservation>> allocate(const std::vector<zonewall::Cidr>& subnets,
                                              const Reservation& owner);
  /// Every reservation on disk; an unreadable file yields a reservation with no owner.
  std::vector<Reservation> list() const;
  /// The reserved addresses, from the directory listing alone (no file is read).
  std::vector<zonewall::Addr> addresses() const;
  std::vector<Reservation> ownedBy(std::string_view cid, std::string_view ifname) const;
  /// Removes the reservation of `address`; releasing a free address is not an error.
  Expected<void> release(zonewall::Addr address);
  /// Addresses of `subnet` still free (saturates at 2^64 - 1 for huge IPv6 subnets).
  std::uint64_t freeCount(const zonewall::Cidr& subnet) const;

  const std::string& dir() const { return dir_; }

 private:
  AddressPool(std::string dir, UniqueFd lock) : dir_(std::move(dir)), lock_(std::move(lock)) {}
  Expected<Reservation> allocateOne(const zonewall::Cidr& subnet, const Reservation& owner,
                                    const std::vector<zonewall::Addr>& taken);

  std::string dir_;
  UniqueFd lock_;  ///< holds the flock of the pool's directory while the pool lives
};

/// Serializes the commands on one attachment (container id + interface name): ADD, CHECK and DEL
/// of it run one at a time, as the spec requires of runtimes, so that one which does not (or a
/// retried DEL racing a timed-out ADD) cannot leave a veth and its route over an address already
/// released. Striped over kStripes files in the pool directory's attachment-locks/, so that
/// attachments of different containers seldom wait on each other and no file is left per
/// container. Taken before the pool's lock, never after it.
class AttachmentLock {
 public:
  static constexpr unsigned kStripes = 256;

  /// Blocks until no other command holds this attachment's stripe.
  static Expected<AttachmentLock> take(const std::string& data_dir, const std::string& network,
                                       std::string_view container_id, std::string_view ifname);

 private:
  explicit AttachmentLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;  ///< holds the flock while the lock lives
};

/// The first and last address a subnet hands out: IPv4 skips the network and broadcast
/// addresses (below /31), IPv6 the subnet-router anycast address (below /127).
std::pair<zonewall::Addr, zonewall::Addr> allocatableRange(const zonewall::Cidr& subnet);

}  // namespace zonewall::cni
