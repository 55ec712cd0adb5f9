// YAML for the objects tests build worlds from (no test framework: the fuzz targets use them
// too).
#pragma once

#include <string>

namespace zonewall::compiler {

/// YAML for a pod: "ns/name" with labels (k=v,...), IPs and named ports.
inline std::string pod(const std::string& key, const std::string& labels, const std::string& ips,
                       const std::string& node = "n1", const std::string& ports = "") {
  auto slash = key.find('/');
  std::string ip_list;
  size_t start = 0;
  while (start <= ips.size()) {
    size_t comma = ips.find(',', start);
    if (comma == std::string::npos) comma = ips.size();
    ip_list += "{ip: \"" + ips.substr(start, comma - start) + "\"},";
    start = comma + 1;
  }
  return "---\napiVersion: v1\nkind: Pod\nmetadata: {name: " + key.substr(slash + 1) +
         ", namespace: " + key.substr(0, slash) + ", labels: {" + labels +
         "}}\nspec: {nodeName: " + node + ", containers: [{name: c, ports: [" + ports +
         "]}]}\nstatus: {podIPs: [" + ip_list + "]}\n";
}

inline std::string ns(const std::string& name, const std::string& labels = "") {
  return "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: " + name + ", labels: {" + labels +
         "}}\n";
}

}  // namespace zonewall::compiler
