// nfnetlink_log, spoken through libmnl:
//
//   agent ── NFULNL_MSG_CONFIG {CMD BIND, MODE copy packet 128 B, QTHRESH 1} ──▶ kernel
//   kernel ── NFULNL_MSG_PACKET {PREFIX "zw log-81 0: ", IFINDEX_INDEV, PAYLOAD <IP packet>} ──▶
//
// A queue threshold of 1 hands each packet over at once (the default batches up to 100 for a
// second); the copy range keeps the IP and transport headers, no more.
#include "zonewall/agent/packet_log.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <net/if.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "zonewall/base/ip.h"
#include "zonewall/policy/model.h"

namespace zonewall::agent {

namespace {

constexpr std::uint32_t kCopyRange = 128;  // IPv6 header (40) + transport ports, with room

std::string hostPort(const std::string& addr, bool v6, int port) {
  if (port < 0) return addr;
  return v6 ? fmt::format("[{}]:{}", addr, port) : fmt::format("{}:{}", addr, port);
}

// One config message to the kernel, acknowledged.
std::expected<void, Error> configure(int fd, std::uint16_t group, std::uint32_t seq,
                                     const std::function<void(nlmsghdr*)>& attrs) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(group);
  attrs(nlh);
  if (::send(fd, nlh, nlh->nlmsg_len, 0) < 0) {
    return fail(Error::Code::kKernel, "nflog config", errno);
  }
  ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  if (n < 0) {
    return fail(Error::Code::kKernel, "nflog config reply", errno);
  }
  auto* reply = reinterpret_cast<nlmsghdr*>(buf.data());
  if (reply->nlmsg_type == NLMSG_ERROR) {
    auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(reply));
    if (err->error != 0) {
      return fail(Error::Code::kKernel, fmt::format("nflog group {}", group), -err->error);
    }
  }
  return {};
}

}  // namespace

std::string LoggedPacket::str() const {
  return fmt::format("policy {} rule {}: {} {} -> {}{}", policy, rule, protocol, src, dst,
                     in.empty() ? "" : " in " + in);
}

bool decodeLogged(std::string_view prefix, std::string_view payload, LoggedPacket& out) {
  // "zw <policy> <rule>: "
  if (!prefix.starts_with("zw ")) return false;
  std::string_view rest = prefix.substr(3);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == ':' || rest.back() == '\0')) {
    rest.remove_suffix(1);
  }
  size_t sp = rest.rfind(' ');
  if (sp == std::string_view::npos) return false;
  out.policy = std::string(rest.substr(0, sp));
  out.rule = std::atoi(std::string(rest.substr(sp + 1)).c_str());
  if (payload.empty()) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(payload.data());
  int version = p[0] >> 4;
  size_t l4 = 0;
  int proto = 0;
  std::string src, dst;
  bool v6 = version == 6;
  if (version == 4 && payload.size() >= 20) {
    l4 = (p[0] & 0x0f) * 4u;
    proto = p[9];
    src = formatAddr(addrFromBytes(p + 12, Family::kV4));
    dst = formatAddr(addrFromBytes(p + 16, Family::kV4));
  } else if (v6 && payload.size() >= 40) {
    l4 = 40;  // extension headers are not followed: the ports are then left out
    proto = p[6];
    src = formatAddr(addrFromBytes(p + 8, Family::kV6));
    dst = formatAddr(addrFromBytes(p + 24, Family::kV6));
  } else {
    return false;
  }
  out.protocol = policy::protocolName(static_cast<policy::Protocol>(proto));
  int sport = -1, dport = -1;
  if (policy::hasPorts(static_cast<policy::Protocol>(proto)) && payload.size() >= l4 + 4) {
    sport = p[l4] << 8 | p[l4 + 1];
    dport = p[l4 + 2] << 8 | p[l4 + 3];
  } else if (policy::isIcmp(static_cast<policy::Protocol>(proto)) && payload.size() >= l4 + 2) {
    out.protocol += fmt::format(" type {} code {}", p[l4], p[l4 + 1]);
  }
  out.src = hostPort(src, v6, sport);
  out.dst = hostPort(dst, v6, dport);
  return true;
}

std::expected<std::unique_ptr<PacketLog>, Error> PacketLog::start(std::uint16_t group,
                                                                  Metrics& metrics,
                                                                  int per_second) {
  std::unique_ptr<PacketLog> log(new PacketLog(metrics, per_second));
  log->sock_.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!log->sock_) {
    return fail(Error::Code::kKernel, "socket(NETLINK_NETFILTER)", errno);
  }
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(log->sock_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    return fail(Error::Code::kKernel, "bind netlink", errno);
  }
  int fd = log->sock_.get();
  auto cmd = [](std::uint8_t c) {
    return [c](nlmsghdr* nlh) {
      nfulnl_msg_config_cmd command{c};
      mnl_attr_put(nlh, NFULA_CFG_CMD, sizeof command, &command);
    };
  };
  if (auto ok = configure(fd, group, 1, cmd(NFULNL_CFG_CMD_BIND)); !ok) {
    return std::unexpected(ok.error());
  }
  auto mode = [](nlmsghdr* nlh) {
    nfulnl_msg_config_mode m{};
    m.copy_range = htonl(kCopyRange);
    m.copy_mode = NFULNL_COPY_PACKET;
    mnl_attr_put(nlh, NFULA_CFG_MODE, sizeof m, &m);
    mnl_attr_put_u32(nlh, NFULA_CFG_QTHRESH, htonl(1));
  };
  if (auto ok = configure(fd, group, 2, mode); !ok) {
    return std::unexpected(ok.error());
  }
  log->stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!log->stop_) {
    return fail(Error::Code::kIo, "eventfd", errno);
  }
  log->thread_ = std::thread([raw = log.get()] { raw->run(); });
  return log;
}

PacketLog::~PacketLog() {
  if (thread_.joinable()) {
    std::uint64_t one = 1;
    (void)!::write(stop_.get(), &one, sizeof one);
    thread_.join();
  }
}

void PacketLog::run() {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  auto window = std::chrono::steady_clock::now();
  int logged = 0;
  long suppressed = 0;
  auto& counter = metrics_.logged_packets;
  for (;;) {
    pollfd fds[2] = {{sock_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    ssize_t n = ::recv(sock_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && errno == ENOBUFS) {
        spdlog::warn("packet log: the kernel dropped logged packets (socket buffer full)");
      }
      continue;
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if ((nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET) continue;
      std::string_view prefix, payload;
      std::string in;
      auto* tail = static_cast<char*>(mnl_nlmsg_get_payload_tail(nlh));
      for (auto* a = static_cast<nlattr*>(mnl_nlmsg_get_payload_offset(nlh, sizeof(nfgenmsg)));
           mnl_attr_ok(a, static_cast<int>(tail - reinterpret_cast<char*>(a)));
           a = mnl_attr_next(a)) {
        switch (mnl_attr_get_type(a)) {
          case NFULA_PREFIX:
            prefix = std::string_view(static_cast<const char*>(mnl_attr_get_payload(a)),
                                      mnl_attr_get_payload_len(a));
            break;
          case NFULA_PAYLOAD:
            payload = std::string_view(static_cast<const char*>(mnl_attr_get_payload(a)),
                                       mnl_attr_get_payload_len(a));
            break;
          case NFULA_IFINDEX_INDEV: {
            char name[IF_NAMESIZE] = {};
            if (if_indextoname(ntohl(mnl_attr_get_u32(a)), name) != nullptr) in = name;
            break;
          }
          default:
            break;
        }
      }
      LoggedPacket p;
      if (!decodeLogged(prefix, payload, p)) continue;
      p.in = in;
      counter.Increment();
      auto now = std::chrono::steady_clock::now();
      if (now - window >= std::chrono::seconds(1)) {
        if (suppressed > 0) {
          spdlog::info("packet log: {} more logged packets in the last second (rate limit {}/s)",
                       suppressed, per_second_);
        }
        window = now;
        logged = 0;
        suppressed = 0;
      }
      if (logged < per_second_) {
        ++logged;
        spdlog::info("packet log: {}", p.str());
      } else {
        ++suppressed;
      }
    }
  }
}

}  // namespace zonewall::agent
