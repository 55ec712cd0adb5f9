// What the agent reads from etcd's JSON gateway when it holds a subnet lease as Flannel does:
// every reply kind, a watch stream's messages, and what the values hold (Flannel's network
// config, a lease's attributes, a subnet key). Nothing throws, nothing crashes.
//
// Input: byte 0 picks what the rest is read as.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "zonewall/agent/decode.h"
#include "zonewall/agent/leases.h"

namespace agent = zonewall::agent;
namespace reply = zonewall::agent::etcd_reply;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 9) {
    case 0:
      if (auto l = reply::grant(body); l && l->id == 0) std::abort();
      break;
    case 1:
      if (auto ttl = reply::keepAlive(body); ttl && *ttl < 0) std::abort();
      break;
    case 2:
      if (auto ttl = reply::timeToLive(body); ttl && *ttl < 0) std::abort();
      break;
    case 3: {
      reply::KeyValue current;
      (void)reply::txn(body, &current);
      break;
    }
    case 4:
      (void)reply::range(body);
      break;
    case 5: {
      agent::LineSplitter lines;
      (void)lines.feed(body, [](std::string_view line) {
        if (auto m = reply::watchMessage(line); m && m->canceled && !m->events.empty()) {
          std::abort();
        }
        return true;
      });
      break;
    }
    case 6:
      (void)agent::parseNetworkConfig(std::string(body));
      break;
    case 7:
      if (auto a = agent::LeaseAttrs::fromJson(std::string(body))) {
        auto back = agent::LeaseAttrs::fromJson(a->toJson());
        if (!back || !(*back == *a)) std::abort();
      }
      break;
    case 8: {
      std::optional<zonewall::Cidr> v4, v6;
      if (agent::parseSubnetKey(std::string(body), v4, v6)) {
        std::optional<zonewall::Cidr> v4b, v6b;
        if (!agent::parseSubnetKey(agent::subnetKey(v4, v6), v4b, v6b) || v4 != v4b || v6 != v6b) {
          std::abort();
        }
      }
      break;
    }
  }
  return 0;
}
