// The CNI protocol as the plugin sees it (CNI spec 1.0.0 / 1.1.0): the environment, the
// network configuration on stdin, the result and error JSON on stdout.
//
//   runtime ── env (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH)
//           ── stdin: network config (+ prevResult, runtimeConfig, cni.dev/attachments)
//   plugin  ── stdout: result JSON (exit 0) or error JSON {cniVersion, code, msg, details}
//
// Everything here is pure: parsing takes the environment as a map and the config as bytes.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zonewall/base/ip.h"

namespace zonewall::cni {

/// Error codes of the CNI spec (1-11, 50-51) and zonewall's own (>= 100, allowed by the spec).
enum class ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIo = 5,
  kDecode = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kNotAvailable = 50,          ///< STATUS: ADD cannot be served
  kNotAvailableAffected = 51,  ///< STATUS: and existing pods may be affected
  kCheckFailed = 100,          ///< CHECK found the attachment not as ADD left it
  kInterfaceExists = 101,      ///< ADD: CNI_IFNAME already exists in the netns
  kKernel = 102,               ///< the kernel refused a netlink request
};

struct Error {
  ErrorCode code = ErrorCode::kIo;
  std::string msg;
  std::string details;
};

template <class T>
using Expected = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorCode code, std::string msg, std::string details = {}) {
  return std::unexpected(Error{code, std::move(msg), std::move(details)});
}

/// The versions this plugin speaks, oldest first (what VERSION advertises).
inline constexpr std::string_view kSupportedVersions[] = {"0.4.0", "1.0.0", "1.1.0"};
inline constexpr std::string_view kLatestVersion = "1.1.0";

enum class Command : std::uint8_t { kAdd, kDel, kCheck, kVersion, kGc, kStatus };
std::string_view commandName(Command c);

/// CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;...".
struct CniArgs {
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::string infra_container_id;
};

struct Environment {
  Command command = Command::kVersion;
  std::string container_id;
  std::string netns;  ///< may be empty for DEL
  std::string ifname;
  std::string path;
  CniArgs args;
};

/// Validates the variables `command` requires (spec section "Parameters"); VERSION needs only
/// CNI_COMMAND and ignores the rest, which runtimes fill with dummies. Errors are code 4 and
/// name the variable.
Expected<Environment> parseEnvironment(const std::map<std::string, std::string>& env);

/// A `{containerID, ifname}` the runtime still considers valid (GC).
struct Attachment {
  std::string container_id;
  std::string ifname;
  friend auto operator<=>(const Attachment&, const Attachment&) = default;
};

/// The `"type": "zonewall"` network configuration.
struct NetConf {
  std::string cni_version;
  std::string name;
  int mtu = 0;  ///< 0: FLANNEL_MTU from the subnet file, else 1500
  /// `ipam.subnet` (a CIDR or a list of them, at most one per family); empty: the subnet file.
  std::vector<zonewall::Cidr> subnets;
  std::string subnet_file = "/run/zonewall/subnet.env";
  std::string data_dir = "/var/lib/cni/zonewall";
  std::string endpoints_dir = "/run/zonewall/endpoints";
  /// ADD waits until the node agent has committed the pod's rules (agent/policy_wait.h),
  /// at most this long, then goes on (as Calico's policy_setup_timeout_seconds); 0: no wait.
  double policy_setup_timeout = 10;
  std::string policy_wait_socket = "/run/zonewall/agent.sock";
  nlohmann::json dns;                         ///< passed into the result as given
  std::optional<nlohmann::json> prev_result;  ///< chained ADD/DEL/CHECK
  bool disable_check = false;
  std::optional<std::vector<Attachment>> attachments;  ///< GC: cni.dev/attachments
};

/// Parses stdin for `command`: JSON errors are code 6, missing or wrong fields 7, an
/// unsupported cniVersion 1, fields zonewall cannot honour 2 (naming key and value). Unknown
/// top-level keys are ignored, as the spec requires; unknown keys inside `ipam` (zonewall's
/// own section) are refused, so a typo never silently changes the pool.
Expected<NetConf> parseNetConf(std::string_view stdin_bytes, Command command);

/// The cniVersion of a config for error replies, even one that does not parse as a NetConf.
std::string versionForReply(std::string_view stdin_bytes);

/// CNI names used in file names: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (libcni's rule).
bool isValidName(std::string_view s);
/// An interface name the kernel accepts: 1-15 bytes, not "." or "..", no '/', ':' or space.
bool isValidIfname(std::string_view s);

/// Result types (spec "Success"): interfaces, ips, routes, dns.
struct Interface {
  std::string name;
  std::string mac;
  std::string sandbox;  ///< empty for host-side interfaces
  int mtu = 0;          ///< reported from 1.1.0 on
};
struct IpConfig {
  int interface = -1;  ///< index into interfaces, -1 when absent
  zonewall::Addr address;
  int prefix = 0;  ///< as configured on the interface: 32 / 128 for routed pods
};
struct Route {
  std::string dst;
  std::string gw;
};
struct Result {
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  nlohmann::json dns = nlohmann::json::object();
};

/// Renders `r` in the result format of `version` (0.4.0 adds "version" to each ip).
nlohmann::json resultToJson(const Result& r, std::string_view version);
/// Reads a prevResult; unknown keys are ignored. Errors are code 7 (naming the field).
Expected<Result> resultFromJson(const nlohmann::json& j);
/// Appends `ours` (rendered) to a chained prevResult, shifting our interface indices and
/// keeping every field of the prevResult, known or not.
nlohmann::json mergeResultJson(const nlohmann::json& prev, nlohmann::json ours);

nlohmann::json errorToJson(const Error& e, std::string_view version);
/// `j` as text, as Go's encoding/json writes it: invalid UTF-8 (a message or name echoing what
/// the runtime passed) becomes U+FFFD instead of an exception.
std::string jsonText(const nlohmann::json& j);
nlohmann::json versionReply(std::string_view version);

}  // namespace zonewall::cni
