#include "zonewall/cni/endpoint.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "files.h"

namespace zonewall::cni {

using nlohmann::json;

std::string endpointFileName(std::string_view network, std::string_view cid,
                             std::string_view ifname) {
  return fmt::format("{}:{}:{}.json", network, cid, ifname);
}

json endpointToJson(const EndpointRecord& r) {
  json ips = json::array();
  for (zonewall::Addr a : r.ips) ips.push_back(zonewall::formatAddr(a));
  return {{"network", r.network},    {"containerID", r.container_id},
          {"ifname", r.ifname},      {"namespace", r.pod_namespace},
          {"pod", r.pod_name},       {"netns", r.netns},
          {"hostVeth", r.host_veth}, {"ips", std::move(ips)}};
}

Expected<EndpointRecord> endpointFromJson(const json& j) {
  if (!j.is_object()) return fail(ErrorCode::kDecode, "endpoint record: an object is required");
  EndpointRecord r;
  std::pair<const char*, std::string*> fields[] = {
      {"network", &r.network},   {"containerID", &r.container_id},
      {"ifname", &r.ifname},     {"namespace", &r.pod_namespace},
      {"pod", &r.pod_name},      {"netns", &r.netns},
      {"hostVeth", &r.host_veth}};
  for (auto [key, out] : fields) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return fail(ErrorCode::kDecode, fmt::format("endpoint record: {} must be a string", key));
    }
    *out = it->get<std::string>();
  }
  auto ips = j.find("ips");
  if (ips == j.end() || !ips->is_array())
    return fail(ErrorCode::kDecode, "endpoint record: ips must be a list");
  for (const json& ip : *ips) {
    auto a = ip.is_string() ? zonewall::parseAddr(ip.get_ref<const std::string&>()) : std::nullopt;
    if (!a)
      return fail(ErrorCode::kDecode,
                  fmt::format("endpoint record: {} is not an address", ip.dump()));
    r.ips.push_back(*a);
  }
  return r;
}

Expected<void> writeEndpoint(const std::string& dir, const EndpointRecord& r) {
  if (auto ok = makeDirs(dir); !ok) return ok;
  return writeFileAtomic(dir, endpointFileName(r.network, r.container_id, r.ifname),
                         jsonText(endpointToJson(r)) + "\n");
}

Expected<void> removeEndpoint(const std::string& dir, std::string_view network,
                              std::string_view cid, std::string_view ifname) {
  std::string path = fmt::format("{}/{}", dir, endpointFileName(network, cid, ifname));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::kIo, fmt::format("unlink {}: {}", path, std::strerror(errno)));
  }
  return {};
}

std::vector<EndpointRecord> readEndpoints(const std::string& dir) {
  std::vector<EndpointRecord> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    auto text = readFile(entry.path());
    if (!text) continue;
    auto r = endpointFromJson(json::parse(*text, nullptr, /*allow_exceptions=*/false));
    if (r) out.push_back(std::move(*r));
  }
  std::ranges::sort(out, {}, [](const EndpointRecord& r) {
    return std::tie(r.network, r.container_id, r.ifname);
  });
  return out;
}

}  // namespace zonewall::cni
