// The packets Calico's Log action sends to nflog (the table's Log chains: group 0, prefix
// "zw <policy> <rule index>: "), read by the agent and logged with policy, rule and 5-tuple,
// at most `per_second` lines a second (the rest counted and summarized, never queued).
#pragma once

#include <atomic>
#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <thread>

#include "zonewall/agent/metrics.h"
#include "zonewall/base/error.h"
#include "zonewall/base/fd.h"

namespace zonewall::agent {

/// One logged packet, decoded.
struct LoggedPacket {
  std::string policy;  ///< "log-81", "bank/allow-web"
  int rule = -1;       ///< the rule's index in its policy's direction
  std::string protocol;
  std::string src;  ///< "10.244.0.5:43210" ([v6]:port; no port for ICMP)
  std::string dst;
  std::string in;  ///< the interface it came in on, if known

  std::string str() const;
};

/// Decodes an nflog prefix ("zw <policy> <rule>: ") and an IP packet; false if neither.
bool decodeLogged(std::string_view prefix, std::string_view payload, LoggedPacket& out);

class PacketLog {
 public:
  /// Binds nflog group `group` in the current network namespace (one listener per group:
  /// fails if another process, e.g. ulogd, holds it).
  static std::expected<std::unique_ptr<PacketLog>, Error> start(std::uint16_t group,
                                                                Metrics& metrics, int per_second);
  ~PacketLog();
  PacketLog(const PacketLog&) = delete;
  PacketLog& operator=(const PacketLog&) = delete;

 private:
  PacketLog(Metrics& metrics, int per_second) : metrics_(metrics), per_second_(per_second) {}
  void run();

  Metrics& metrics_;
  const int per_second_;
  UniqueFd sock_;
  UniqueFd stop_;
  std::thread thread_;
};

}  // namespace zonewall::agent
