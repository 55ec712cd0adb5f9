// Endpoint records: what the plugin tells the node agent about each attachment.
//
// One JSON file per attachment in the endpoints directory (default /run/zonewall/endpoints/),
// named "<network>:<containerID>:<ifname>.json" (none of the three may contain ':'), written
// atomically (rename) on ADD and removed on DEL and GC:
//
//   {"network":"zw","containerID":"…","ifname":"eth0","namespace":"bank","pod":"web-0",
//    "netns":"/run/netns/…","hostVeth":"zw1a2b3c4d5e6","ips":["10.244.1.7","fd00:1::7"]}
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zonewall/base/ip.h"
#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

struct EndpointRecord {
  std::string network;
  std::string container_id;
  std::string ifname;
  std::string pod_namespace;
  std::string pod_name;
  std::string netns;
  std::string host_veth;
  std::vector<zonewall::Addr> ips;

  friend bool operator==(const EndpointRecord&, const EndpointRecord&) = default;
};

std::string endpointFileName(std::string_view network, std::string_view cid,
                             std::string_view ifname);
nlohmann::json endpointToJson(const EndpointRecord& r);
/// Fails (naming the field) on a record that is not one.
Expected<EndpointRecord> endpointFromJson(const nlohmann::json& j);

Expected<void> writeEndpoint(const std::string& dir, const EndpointRecord& r);
/// Removing a record that does not exist is not an error.
Expected<void> removeEndpoint(const std::string& dir, std::string_view network,
                              std::string_view cid, std::string_view ifname);
/// Every readable record in `dir` (unreadable files are skipped: a writer may be mid-rename).
std::vector<EndpointRecord> readEndpoints(const std::string& dir);

}  // namespace zonewall::cni
