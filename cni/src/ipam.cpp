#include "zonewall/cni/ipam.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "files.h"
#include "zonewall/base/hash.h"

namespace zonewall::cni {

using nlohmann::json;
using zonewall::Addr;
using zonewall::Cidr;
using zonewall::Family;
using zonewall::U128;

namespace {

constexpr std::string_view kLockFile = "lock";
constexpr std::string_view kCursorPrefix = "last_reserved_ip.";

std::string cursorName(Family f) {
  return fmt::format("{}{}", kCursorPrefix, f == Family::kV4 ? 4 : 6);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

std::string encodeReservation(const Reservation& r) {
  json j = {{"containerID", r.container_id}, {"ifname", r.ifname}};
  if (!r.pod_namespace.empty()) j["namespace"] = r.pod_namespace;
  if (!r.pod_name.empty()) j["pod"] = r.pod_name;
  if (!r.host_veth.empty()) j["hostVeth"] = r.host_veth;
  return jsonText(j) + "\n";
}

}  // namespace

Expected<NodeSubnets> parseSubnetEnv(std::string_view text, std::string_view path) {
  NodeSubnets out;
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return fail(ErrorCode::kInvalidConfig,
                  fmt::format("{}:{}: \"{}\" is not KEY=VALUE", path, line_no, line));
    }
    std::string_view key = trim(line.substr(0, eq));
    std::string_view value = trim(line.substr(eq + 1));
    if (key == "FLANNEL_SUBNET" || key == "FLANNEL_IPV6_SUBNET") {
      // Flannel writes the lease with its first usable address ("10.244.1.1/24"): mask it.
      auto parsed = zonewall::parseCidr(value);
      Family want = key == "FLANNEL_SUBNET" ? Family::kV4 : Family::kV6;
      if (!parsed || parsed->cidr.family != want) {
        return fail(ErrorCode::kInvalidConfig,
                    fmt::format("{}:{}: {}=\"{}\" is not an IPv{} CIDR", path, line_no, key, value,
                                want == Family::kV4 ? 4 : 6));
      }
      std::erase_if(out.subnets, [&](const Cidr& c) { return c.family == want; });
      out.subnets.push_back(parsed->cidr);
    } else if (key == "FLANNEL_MTU") {
      int mtu = 0;
      auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), mtu);
      if (ec != std::errc() || ptr != value.data() + value.size() || mtu < 68 || mtu > 65535) {
        return fail(ErrorCode::kInvalidConfig,
                    fmt::format("{}:{}: FLANNEL_MTU=\"{}\" is not an MTU (68-65535)", path, line_no,
                                value));
      }
      out.mtu = mtu;
    } else if (key == "FLANNEL_NETWORK" || key == "FLANNEL_IPV6_NETWORK") {
      if (!zonewall::parseCidr(value)) {
        return fail(ErrorCode::kInvalidConfig,
                    fmt::format("{}:{}: {}=\"{}\" is not a CIDR", path, line_no, key, value));
      }
    }
    // FLANNEL_IPMASQ and keys of newer flannels: nothing the plugin needs.
  }
  if (out.subnets.empty()) {
    return fail(ErrorCode::kInvalidConfig,
                fmt::format("{}: neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET is set", path));
  }
  std::ranges::sort(out.subnets, {}, &Cidr::family);
  return out;
}

Expected<NodeSubnets> resolveSubnets(const NetConf& conf) {
  if (!conf.subnets.empty()) return NodeSubnets{.subnets = conf.subnets};
  auto text = readFile(conf.subnet_file);
  if (!text) {
    return fail(
        ErrorCode::kTryAgainLater,
        fmt::format("the node has no pod subnet yet: {} is missing and ipam.subnet is not set",
                    conf.subnet_file));
  }
  return parseSubnetEnv(*text, conf.subnet_file);
}

std::pair<Addr, Addr> allocatableRange(const Cidr& subnet) {
  int host_bits = familyBits(subnet.family) - subnet.prefix;
  U128 size_minus_one = host_bits >= 128 ? ~U128{0} : (U128{1} << host_bits) - 1;
  U128 first = subnet.base.v;
  U128 last = first + size_minus_one;
  if (subnet.family == Family::kV4 && subnet.prefix <= 30) {
    ++first;  // network address
    --last;   // broadcast
  } else if (subnet.family == Family::kV6 && subnet.prefix <= 126) {
    ++first;  // subnet-router anycast (RFC 4291 2.6.1)
  }
  return {Addr{first}, Addr{last}};
}

// `path` opened (created if need be) and flock'ed exclusively, blocking.
Expected<UniqueFd> lockFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return fail(ErrorCode::kIo, fmt::format("open {}: {}", path, std::strerror(errno)));
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) {
      return fail(ErrorCode::kIo, fmt::format("flock {}: {}", path, std::strerror(errno)));
    }
  }
  return fd;
}

Expected<AddressPool> AddressPool::open(const std::string& data_dir, const std::string& network) {
  std::string dir = fmt::format("{}/{}", data_dir, network);
  if (auto ok = makeDirs(dir); !ok) return std::unexpected(ok.error());
  auto lock = lockFile(fmt::format("{}/{}", dir, kLockFile));
  if (!lock) return std::unexpected(lock.error());
  // Any temporary file here belongs to a writer that died holding the lock.
  removeStaleTemporaries(dir);
  return AddressPool(std::move(dir), std::move(*lock));
}

Expected<AttachmentLock> AttachmentLock::take(const std::string& data_dir,
                                              const std::string& network,
                                              std::string_view container_id,
                                              std::string_view ifname) {
  std::string dir = fmt::format("{}/{}/attachment-locks", data_dir, network);
  if (auto ok = makeDirs(dir); !ok) return std::unexpected(ok.error());
  std::uint64_t h = zonewall::fnv1a(
      ifname, zonewall::fnv1a(std::string_view("\0", 1), zonewall::fnv1a(container_id)));
  auto fd = lockFile(fmt::format("{}/{:02x}", dir, h % kStripes));
  if (!fd) return std::unexpected(fd.error());
  return AttachmentLock(std::move(*fd));
}

std::vector<Addr> AddressPool::addresses() const {
  std::vector<Addr> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    if (auto addr = zonewall::parseAddr(entry.path().filename().string())) out.push_back(*addr);
  }
  std::ranges::sort(out);
  return out;  // lock, cursors and temporaries do not parse as addresses
}

std::vector<Reservation> AddressPool::list() const {
  std::vector<Reservation> out;
  for (Addr addr : addresses()) {
    Reservation r{.address = addr};
    if (auto text = readFile(fmt::format("{}/{}", dir_, zonewall::formatAddr(addr)))) {
      json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
      if (j.is_object()) {
        r.container_id = j.value("containerID", "");
        r.ifname = j.value("ifname", "");
        r.pod_namespace = j.value("namespace", "");
        r.pod_name = j.value("pod", "");
        r.host_veth = j.value("hostVeth", "");
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Reservation> AddressPool::ownedBy(std::string_view cid, std::string_view ifname) const {
  std::vector<Reservation> all = list();
  std::erase_if(all, [&](const Reservation& r) { return !r.ownedBy(cid, ifname); });
  return all;
}

Expected<void> AddressPool::release(Addr address) {
  std::string path = fmt::format("{}/{}", dir_, zonewall::formatAddr(address));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::kIo, fmt::format("unlink {}: {}", path, std::strerror(errno)));
  }
  return {};
}

std::uint64_t AddressPool::freeCount(const Cidr& subnet) const {
  auto [first, last] = allocatableRange(subnet);
  U128 size = last.v - first.v + 1;
  U128 taken = 0;
  for (Addr a : addresses()) {
    if (a >= first && a <= last) ++taken;
  }
  U128 free = size - taken;
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  return free > kMax ? kMax : static_cast<std::uint64_t>(free);
}

Expected<Reservation> AddressPool::allocateOne(const Cidr& subnet, const Reservation& owner,
                                               const std::vector<Addr>& taken) {
  auto [first, last] = allocatableRange(subnet);
  std::set<U128> used;
  for (Addr a : taken) {
    if (a >= first && a <= last) used.insert(a.v);
  }
  U128 size = last.v - first.v + 1;
  if (size <= used.size()) {
    return fail(ErrorCode::kTryAgainLater, fmt::format("no address left in {}: all {} are reserved",
                                                       subnet.str(), used.size()));
  }
  // Round-robin from the address after the last one handed out, so a released address is not
  // reused at once (a peer may still hold conntrack or ARP state for it).
  U128 start = first.v;
  std::string cursor_name = cursorName(subnet.family);
  if (auto text = readFile(fmt::format("{}/{}", dir_, cursor_name))) {
    auto last_addr = zonewall::parseAddr(trim(*text));
    if (last_addr && *last_addr >= first && *last_addr < last) start = last_addr->v + 1;
  }
  // Among used.size() + 1 consecutive candidates at least one is free.
  U128 candidate = start;
  for (size_t step = 0; step <= used.size(); ++step) {
    if (!used.contains(candidate)) {
      Reservation r = owner;
      r.address = Addr{candidate};
      std::string name = zonewall::formatAddr(r.address);
      auto created = createFileExclusive(dir_, name, encodeReservation(r));
      if (!created) return std::unexpected(created.error());
      if (*created) {
        if (auto ok = writeFileAtomic(dir_, cursor_name, name); !ok) {
          (void)release(r.address);
          return std::unexpected(ok.error());
        }
        return r;
      }
    }
    candidate = candidate == last.v ? first.v : candidate + 1;
  }
  return fail(ErrorCode::kTryAgainLater, fmt::format("no address left in {}", subnet.str()));
}

Expected<std::vector<Reservation>> AddressPool::allocate(const std::vector<Cidr>& subnets,
                                                         const Reservation& owner) {
  std::vector<Addr> taken = addresses();
  std::vector<Reservation> out;
  for (const Cidr& subnet : subnets) {
    auto r = allocateOne(subnet, owner, taken);
    if (!r) {
      for (const Reservation& done : out) (void)release(done.address);
      return std::unexpected(r.error());
    }
    out.push_back(std::move(*r));
  }
  return out;
}

}  // namespace zonewall::cni
