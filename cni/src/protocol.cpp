#include "zonewall/cni/protocol.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include "zonewall/base/json.h"

namespace zonewall::cni {

using nlohmann::json;

namespace {

const std::string* lookup(const std::map<std::string, std::string>& env, const char* key) {
  auto it = env.find(key);
  return it == env.end() ? nullptr : &it->second;
}

Expected<std::string> required(const std::map<std::string, std::string>& env, const char* key,
                               Command command) {
  const std::string* v = lookup(env, key);
  if (v == nullptr || v->empty()) {
    return fail(ErrorCode::kInvalidEnvironment,
                fmt::format("{} is required for {}", key, commandName(command)));
  }
  return *v;
}

// Go's strconv.ParseBool, which the reference plugins use for IgnoreUnknown.
std::optional<bool> parseGoBool(std::string_view s) {
  for (std::string_view t : {"1", "t", "T", "TRUE", "true", "True"}) {
    if (s == t) return true;
  }
  for (std::string_view f : {"0", "f", "F", "FALSE", "false", "False"}) {
    if (s == f) return false;
  }
  return std::nullopt;
}

Expected<CniArgs> parseCniArgs(std::string_view text) {
  CniArgs args;
  std::vector<std::string> unknown;
  bool ignore_unknown = false;
  size_t pos = 0;
  while (pos <= text.size() && !text.empty()) {
    size_t end = text.find(';', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view pair = text.substr(pos, end - pos);
    pos = end + 1;
    if (pair.empty()) {
      if (end == text.size()) break;
      continue;
    }
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return fail(ErrorCode::kInvalidEnvironment,
                  fmt::format("CNI_ARGS: \"{}\" is not KEY=VALUE", pair));
    }
    std::string_view key = pair.substr(0, eq);
    std::string_view value = pair.substr(eq + 1);
    if (key == "IgnoreUnknown") {
      auto b = parseGoBool(value);
      if (!b) {
        return fail(ErrorCode::kInvalidEnvironment,
                    fmt::format("CNI_ARGS: IgnoreUnknown=\"{}\" is not a boolean", value));
      }
      ignore_unknown = *b;
    } else if (key == "K8S_POD_NAMESPACE") {
      args.pod_namespace = value;
    } else if (key == "K8S_POD_NAME") {
      args.pod_name = value;
    } else if (key == "K8S_POD_UID") {
      args.pod_uid = value;
    } else if (key == "K8S_POD_INFRA_CONTAINER_ID") {
      args.infra_container_id = value;
    } else {
      unknown.emplace_back(key);
    }
    if (end == text.size()) break;
  }
  if (!unknown.empty() && !ignore_unknown) {
    return fail(ErrorCode::kInvalidEnvironment,
                fmt::format("CNI_ARGS: unknown key(s) {} (add IgnoreUnknown=1 to ignore them)",
                            fmt::join(unknown, ", ")));
  }
  return args;
}

bool isSupported(std::string_view v) {
  return std::ranges::find(kSupportedVersions, v) != std::end(kSupportedVersions);
}

// Semantic version order for the three forms we accept ("0.4.0" < "1.0.0" < "1.1.0").
bool versionAtLeast(std::string_view v, std::string_view min) {
  auto parts = [](std::string_view s) {
    std::array<int, 3> out{0, 0, 0};
    size_t i = 0;
    for (char c : s) {
      if (c == '.') {
        if (++i == out.size()) break;
      } else if (c >= '0' && c <= '9') {
        out[i] = out[i] * 10 + (c - '0');
      }
    }
    return out;
  };
  return parts(v) >= parts(min);
}

Expected<std::string> stringField(const json& obj, const char* key, std::string_view where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return fail(ErrorCode::kInvalidConfig,
                fmt::format("{}{}: a non-empty string is required", where, key));
  }
  return it->get<std::string>();
}

Expected<std::vector<zonewall::Cidr>> parseSubnets(const json& j) {
  std::vector<json> items;
  if (j.is_string()) {
    items.push_back(j);
  } else if (j.is_array()) {
    items.assign(j.begin(), j.end());
  } else {
    return fail(ErrorCode::kInvalidConfig, "ipam.subnet: a CIDR or a list of CIDRs is required");
  }
  std::vector<zonewall::Cidr> out;
  for (const json& item : items) {
    if (!item.is_string()) {
      return fail(ErrorCode::kInvalidConfig, "ipam.subnet: each entry must be a CIDR string");
    }
    const auto& text = item.get_ref<const std::string&>();
    auto parsed = zonewall::parseCidr(text);
    if (!parsed) {
      return fail(ErrorCode::kInvalidConfig,
                  fmt::format("ipam.subnet: \"{}\" is not a CIDR", text));
    }
    for (const auto& seen : out) {
      if (seen.family == parsed->cidr.family) {
        return fail(
            ErrorCode::kInvalidConfig,
            fmt::format("ipam.subnet: \"{}\": at most one subnet per address family", text));
      }
    }
    out.push_back(parsed->cidr);
  }
  return out;
}

Expected<std::vector<Attachment>> parseAttachments(const json& j, std::string_view key) {
  std::vector<Attachment> out;
  if (j.is_null()) return out;
  if (!j.is_array()) {
    return fail(ErrorCode::kInvalidConfig, fmt::format("{}: a list is required", key));
  }
  for (size_t i = 0; i < j.size(); ++i) {
    const json& a = j[i];
    std::string where = fmt::format("{}[{}].", key, i);
    if (!a.is_object()) {
      return fail(ErrorCode::kInvalidConfig, fmt::format("{}[{}]: an object is required", key, i));
    }
    auto cid = stringField(a, "containerID", where);
    if (!cid) return std::unexpected(cid.error());
    auto ifname = stringField(a, "ifname", where);
    if (!ifname) return std::unexpected(ifname.error());
    out.push_back({*cid, *ifname});
  }
  std::ranges::sort(out);
  return out;
}

Expected<void> parseIpam(const json& ipam, NetConf& conf) {
  if (!ipam.is_object()) {
    return fail(ErrorCode::kInvalidConfig, "ipam: an object is required");
  }
  for (const auto& [key, value] : ipam.items()) {
    if (key == "type") {
      // IPAM is built in; delegating to another IPAM plugin is not something zonewall does.
      if (!value.is_string() || (value != "zonewall" && value != "zonewall-cni")) {
        return fail(ErrorCode::kUnsupportedField,
                    fmt::format("ipam.type={}: zonewall allocates addresses itself; remove the "
                                "field or set it to \"zonewall\"",
                                value.dump()));
      }
    } else if (key == "subnet") {
      auto subnets = parseSubnets(value);
      if (!subnets) return std::unexpected(subnets.error());
      conf.subnets = std::move(*subnets);
    } else if (key == "subnetFile" || key == "dataDir") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
        return fail(ErrorCode::kInvalidConfig, fmt::format("ipam.{}: a path is required", key));
      }
      (key == "subnetFile" ? conf.subnet_file : conf.data_dir) = value.get<std::string>();
    } else {
      return fail(ErrorCode::kUnsupportedField,
                  fmt::format("ipam.{}={}: unsupported field (zonewall's ipam knows type, "
                              "subnet, subnetFile, dataDir)",
                              key, value.dump()));
    }
  }
  return {};
}

}  // namespace

std::string_view commandName(Command c) {
  switch (c) {
    case Command::kAdd:
      return "ADD";
    case Command::kDel:
      return "DEL";
    case Command::kCheck:
      return "CHECK";
    case Command::kVersion:
      return "VERSION";
    case Command::kGc:
      return "GC";
    case Command::kStatus:
      return "STATUS";
  }
  return "?";
}

bool isValidName(std::string_view s) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (s.empty() || !alnum(s[0])) return false;
  return std::ranges::all_of(s,
                             [&](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool isValidIfname(std::string_view s) {
  // IFNAMSIZ is 16 including the terminating NUL.
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  return std::ranges::none_of(s, [](char c) {
    return c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f' || c == '\0';
  });
}

Expected<Environment> parseEnvironment(const std::map<std::string, std::string>& env) {
  const std::string* cmd = lookup(env, "CNI_COMMAND");
  if (cmd == nullptr || cmd->empty()) {
    return fail(ErrorCode::kInvalidEnvironment, "CNI_COMMAND is not set");
  }
  Environment out;
  static constexpr std::pair<std::string_view, Command> kCommands[] = {
      {"ADD", Command::kAdd},         {"DEL", Command::kDel}, {"CHECK", Command::kCheck},
      {"VERSION", Command::kVersion}, {"GC", Command::kGc},   {"STATUS", Command::kStatus}};
  auto it = std::ranges::find(kCommands, std::string_view(*cmd),
                              &std::pair<std::string_view, Command>::first);
  if (it == std::end(kCommands)) {
    return fail(
        ErrorCode::kInvalidEnvironment,
        fmt::format("CNI_COMMAND=\"{}\" is not one of ADD, DEL, CHECK, VERSION, GC, STATUS", *cmd));
  }
  out.command = it->second;
  // VERSION is called with dummy values for everything else: validate nothing more.
  if (out.command == Command::kVersion) return out;

  // CNI_PATH is required for every command but VERSION, as the reference plugins' skel
  // requires it, though zonewall execs no other plugin.
  auto path = required(env, "CNI_PATH", out.command);
  if (out.command == Command::kGc || out.command == Command::kStatus) {
    if (!path) return std::unexpected(path.error());
    out.path = *path;
    return out;
  }

  auto cid = required(env, "CNI_CONTAINERID", out.command);
  if (!cid) return std::unexpected(cid.error());
  if (!isValidName(*cid)) {
    return fail(
        ErrorCode::kInvalidEnvironment,
        fmt::format("CNI_CONTAINERID=\"{}\" must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", *cid));
  }
  out.container_id = *cid;

  auto ifname = required(env, "CNI_IFNAME", out.command);
  if (!ifname) return std::unexpected(ifname.error());
  if (!isValidIfname(*ifname)) {
    return fail(ErrorCode::kInvalidEnvironment,
                fmt::format("CNI_IFNAME=\"{}\" is not a valid interface name (1-15 bytes, no "
                            "'/', ':' or whitespace, not . or ..)",
                            *ifname));
  }
  out.ifname = *ifname;

  if (out.command == Command::kDel) {
    if (const std::string* ns = lookup(env, "CNI_NETNS")) out.netns = *ns;
  } else {
    auto ns = required(env, "CNI_NETNS", out.command);
    if (!ns) return std::unexpected(ns.error());
    out.netns = *ns;
  }
  if (!out.netns.empty() && out.netns.front() != '/') {
    return fail(ErrorCode::kInvalidEnvironment,
                fmt::format("CNI_NETNS=\"{}\" must be an absolute path", out.netns));
  }
  if (!path) return std::unexpected(path.error());
  out.path = *path;

  if (const std::string* a = lookup(env, "CNI_ARGS")) {
    auto args = parseCniArgs(*a);
    if (!args) return std::unexpected(args.error());
    out.args = std::move(*args);
  }
  if (out.args.pod_name.empty() != out.args.pod_namespace.empty() &&
      !out.args.pod_namespace.empty()) {
    return fail(ErrorCode::kInvalidEnvironment,
                "CNI_ARGS: K8S_POD_NAMESPACE is set but K8S_POD_NAME is not");
  }
  return out;
}

std::string versionForReply(std::string_view stdin_bytes) {
  json j = json::parse(stdin_bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_object()) {
    auto it = j.find("cniVersion");
    if (it != j.end() && it->is_string() && isSupported(it->get_ref<const std::string&>())) {
      return it->get<std::string>();
    }
  }
  return std::string(kLatestVersion);
}

Expected<NetConf> parseNetConf(std::string_view stdin_bytes, Command command) {
  auto parsed = parseJson(stdin_bytes);
  if (!parsed) {
    const zonewall::Error& e = parsed.error();
    return fail(ErrorCode::kDecode, "stdin: the network configuration is not valid JSON",
                e.loc.known()
                    ? fmt::format("line {}, column {}: {}", e.loc.line, e.loc.col, e.message)
                    : e.message);
  }
  const json& j = *parsed;
  if (!j.is_object()) {
    return fail(ErrorCode::kInvalidConfig,
                "stdin: the network configuration must be a JSON object");
  }
  NetConf conf;
  auto version = stringField(j, "cniVersion", "");
  if (!version) return std::unexpected(version.error());
  if (!isSupported(*version)) {
    return fail(ErrorCode::kIncompatibleVersion,
                fmt::format("cniVersion \"{}\" is not supported (supported: {})", *version,
                            fmt::join(kSupportedVersions, ", ")));
  }
  if ((command == Command::kGc || command == Command::kStatus) &&
      !versionAtLeast(*version, "1.1.0")) {
    return fail(ErrorCode::kIncompatibleVersion,
                fmt::format("{} needs cniVersion 1.1.0 or later, the configuration says \"{}\"",
                            commandName(command), *version));
  }
  conf.cni_version = *version;

  auto name = stringField(j, "name", "");
  if (!name) return std::unexpected(name.error());
  if (!isValidName(*name)) {
    return fail(ErrorCode::kInvalidConfig,
                fmt::format("name \"{}\" must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$", *name));
  }
  conf.name = *name;
  if (auto type = stringField(j, "type", ""); !type) return std::unexpected(type.error());

  if (auto it = j.find("mtu"); it != j.end()) {
    if (!it->is_number_integer() || *it < 68 || *it > 65535) {
      return fail(ErrorCode::kInvalidConfig,
                  fmt::format("mtu={}: an integer between 68 and 65535 is required", it->dump()));
    }
    conf.mtu = it->get<int>();
  }
  if (auto it = j.find("ipam"); it != j.end()) {
    if (auto ok = parseIpam(*it, conf); !ok) return std::unexpected(ok.error());
  }
  if (auto it = j.find("endpointsDir"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return fail(ErrorCode::kInvalidConfig, "endpointsDir: a path is required");
    }
    conf.endpoints_dir = it->get<std::string>();
  }
  if (auto it = j.find("policySetupTimeout"); it != j.end()) {
    if (!it->is_number() || *it < 0 || *it > 600) {
      return fail(
          ErrorCode::kInvalidConfig,
          fmt::format("policySetupTimeout={}: seconds between 0 and 600 are required", it->dump()));
    }
    conf.policy_setup_timeout = it->get<double>();
  }
  if (auto it = j.find("policyWaitSocket"); it != j.end()) {
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return fail(ErrorCode::kInvalidConfig, "policyWaitSocket: a path is required");
    }
    conf.policy_wait_socket = it->get<std::string>();
  }
  if (auto it = j.find("dns"); it != j.end()) {
    if (!it->is_object()) return fail(ErrorCode::kInvalidConfig, "dns: an object is required");
    conf.dns = *it;
  }
  if (auto it = j.find("disableCheck"); it != j.end()) {
    if (!it->is_boolean())
      return fail(ErrorCode::kInvalidConfig, "disableCheck: a boolean is required");
    conf.disable_check = it->get<bool>();
  }
  if (auto it = j.find("prevResult"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      return fail(ErrorCode::kInvalidConfig, "prevResult: an object is required");
    // ADD merges into it and CHECK compares with it: a malformed one is refused before anything
    // is touched. DEL reads only interface names from it and must not fail on it (a pod whose
    // DEL always fails would keep its address forever).
    if (command == Command::kAdd || command == Command::kCheck) {
      if (auto prev = resultFromJson(*it); !prev) return std::unexpected(prev.error());
    }
    conf.prev_result = *it;
  }
  if (command == Command::kGc) {
    // libcni sends both spellings; either is the list of attachments still in use.
    for (const char* key : {"cni.dev/attachments", "cni.dev/valid-attachments"}) {
      auto it = j.find(key);
      if (it == j.end()) continue;
      auto list = parseAttachments(*it, key);
      if (!list) return std::unexpected(list.error());
      conf.attachments = std::move(*list);
      break;
    }
    if (!conf.attachments) {
      // Without the list every reservation would look stale: refuse rather than free them all.
      return fail(ErrorCode::kInvalidConfig,
                  "GC needs cni.dev/attachments (the attachments still in use)");
    }
  }
  return conf;
}

json resultToJson(const Result& r, std::string_view version) {
  bool v04 = !versionAtLeast(version, "1.0.0");
  bool v11 = versionAtLeast(version, "1.1.0");
  json out = {{"cniVersion", version}};
  json ifaces = json::array();
  for (const Interface& i : r.interfaces) {
    json o = {{"name", i.name}};
    if (!i.mac.empty()) o["mac"] = i.mac;
    if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
    if (v11 && i.mtu > 0) o["mtu"] = i.mtu;
    ifaces.push_back(std::move(o));
  }
  json ips = json::array();
  for (const IpConfig& ip : r.ips) {
    json o = {{"address", fmt::format("{}/{}", zonewall::formatAddr(ip.address), ip.prefix)}};
    if (v04) o["version"] = ip.address.family() == zonewall::Family::kV4 ? "4" : "6";
    if (ip.interface >= 0) o["interface"] = ip.interface;
    ips.push_back(std::move(o));
  }
  json routes = json::array();
  for (const Route& rt : r.routes) {
    json o = {{"dst", rt.dst}};
    if (!rt.gw.empty()) o["gw"] = rt.gw;
    routes.push_back(std::move(o));
  }
  out["interfaces"] = std::move(ifaces);
  out["ips"] = std::move(ips);
  out["routes"] = std::move(routes);
  out["dns"] = r.dns.is_object() ? r.dns : json::object();
  return out;
}

Expected<Result> resultFromJson(const json& j) {
  Result r;
  if (!j.is_object()) return fail(ErrorCode::kInvalidConfig, "prevResult: an object is required");
  // A list field that is there is a list (null reads as absent, as in Go).
  auto list = [&](const char* key) -> Expected<const json*> {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    if (!it->is_array()) {
      return fail(ErrorCode::kInvalidConfig, fmt::format("prevResult.{}: a list is required", key));
    }
    return &*it;
  };
  // An optional string member of a list item.
  auto optional = [](const json& o, const char* key, const std::string& where,
                     std::string& to) -> Expected<void> {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return {};
    if (!it->is_string()) {
      return fail(ErrorCode::kInvalidConfig, fmt::format("{}{}: a string is required", where, key));
    }
    to = it->get<std::string>();
    return {};
  };
  auto interfaces = list("interfaces");
  if (!interfaces) return std::unexpected(interfaces.error());
  for (size_t i = 0; *interfaces != nullptr && i < (*interfaces)->size(); ++i) {
    const json& o = (**interfaces)[i];
    std::string where = fmt::format("prevResult.interfaces[{}].", i);
    auto name = o.is_object() ? stringField(o, "name", where)
                              : fail(ErrorCode::kInvalidConfig,
                                     "prevResult.interfaces: objects are required");
    if (!name) return std::unexpected(name.error());
    Interface iface{.name = *name};
    if (auto ok = optional(o, "mac", where, iface.mac); !ok) return std::unexpected(ok.error());
    if (auto ok = optional(o, "sandbox", where, iface.sandbox); !ok) {
      return std::unexpected(ok.error());
    }
    r.interfaces.push_back(std::move(iface));
  }
  auto ips = list("ips");
  if (!ips) return std::unexpected(ips.error());
  for (size_t i = 0; *ips != nullptr && i < (*ips)->size(); ++i) {
    const json& o = (**ips)[i];
    std::string where = fmt::format("prevResult.ips[{}].", i);
    auto text = o.is_object()
                    ? stringField(o, "address", where)
                    : fail(ErrorCode::kInvalidConfig, "prevResult.ips: objects are required");
    if (!text) return std::unexpected(text.error());
    size_t slash = text->find('/');
    auto addr = zonewall::parseAddr(std::string_view(*text).substr(0, slash));
    auto cidr = zonewall::parseCidr(*text);
    if (!addr || !cidr || slash == std::string::npos) {
      return fail(ErrorCode::kInvalidConfig,
                  fmt::format("{}address \"{}\" is not an address/prefix", where, *text));
    }
    IpConfig ip{.address = *addr, .prefix = cidr->cidr.prefix};
    if (auto idx = o.find("interface"); idx != o.end() && !idx->is_null()) {
      if (!idx->is_number_integer() || *idx < 0 || *idx >= static_cast<int>(r.interfaces.size())) {
        return fail(
            ErrorCode::kInvalidConfig,
            fmt::format("{}interface {} is not an index of interfaces", where, idx->dump()));
      }
      ip.interface = idx->get<int>();
    }
    r.ips.push_back(ip);
  }
  auto routes = list("routes");
  if (!routes) return std::unexpected(routes.error());
  for (size_t i = 0; *routes != nullptr && i < (*routes)->size(); ++i) {
    const json& o = (**routes)[i];
    std::string where = fmt::format("prevResult.routes[{}].", i);
    auto dst = o.is_object()
                   ? stringField(o, "dst", where)
                   : fail(ErrorCode::kInvalidConfig, "prevResult.routes: objects are required");
    if (!dst) return std::unexpected(dst.error());
    Route route{.dst = *dst};
    if (auto ok = optional(o, "gw", where, route.gw); !ok) return std::unexpected(ok.error());
    r.routes.push_back(std::move(route));
  }
  if (auto it = j.find("dns"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) {
      return fail(ErrorCode::kInvalidConfig, "prevResult.dns: an object is required");
    }
    r.dns = *it;
  }
  return r;
}

json mergeResultJson(const json& prev, json ours) {
  json out = prev;
  json& ifaces = out["interfaces"];
  if (!ifaces.is_array()) ifaces = json::array();
  auto shift = static_cast<int>(ifaces.size());
  for (json& i : ours["interfaces"]) ifaces.push_back(std::move(i));
  json& ips = out["ips"];
  if (!ips.is_array()) ips = json::array();
  for (json& ip : ours["ips"]) {
    if (ip.contains("interface")) ip["interface"] = ip["interface"].get<int>() + shift;
    ips.push_back(std::move(ip));
  }
  json& routes = out["routes"];
  if (!routes.is_array()) routes = json::array();
  for (json& rt : ours["routes"]) routes.push_back(std::move(rt));
  if (!out.contains("dns") || out["dns"].empty()) out["dns"] = ours["dns"];
  out["cniVersion"] = ours["cniVersion"];
  return out;
}

std::string jsonText(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

json errorToJson(const Error& e, std::string_view version) {
  json out = {{"cniVersion", version}, {"code", static_cast<int>(e.code)}, {"msg", e.msg}};
  if (!e.details.empty()) out["details"] = e.details;
  return out;
}

json versionReply(std::string_view version) {
  json versions = json::array();
  for (std::string_view v : kSupportedVersions) versions.push_back(v);
  return {{"cniVersion", version}, {"supportedVersions", versions}};
}

}  // namespace zonewall::cni
