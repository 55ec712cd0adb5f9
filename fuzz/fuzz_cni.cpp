// What the container runtime hands the CNI plugin: the environment (CNI_ARGS included) and the
// network configuration on stdin with its prevResult, for every command; and the endpoint
// record the plugin leaves for the agent. Each parse succeeds or fails with a spec error code
// and a message; what succeeds renders (result merged into the prevResult, error replies)
// without throwing.
//
// Input: environment lines "KEY=VALUE" up to the first NUL byte, the config after it (no NUL:
// the whole input is the config, under a valid environment).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "zonewall/cni/endpoint.h"
#include "zonewall/cni/protocol.h"

namespace cni = zonewall::cni;

namespace {

std::map<std::string, std::string> envOf(std::string_view text) {
  std::map<std::string, std::string> env;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (size_t eq = line.find('='); eq != std::string_view::npos) {
      env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return env;
}

// The error the plugin would print: a code the spec reserves, a message, and the reply in the
// version the configuration asked for.
void checkError(const cni::Error& e, const std::string& version) {
  int code = static_cast<int>(e.code);
  if (e.msg.empty() || code < 1 || (code > 11 && code < 50) || (code > 51 && code < 100)) {
    std::abort();
  }
  (void)cni::jsonText(cni::errorToJson(e, version));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> env = {
      {"CNI_COMMAND", "ADD"},        {"CNI_CONTAINERID", "c1"},
      {"CNI_NETNS", "/run/netns/x"}, {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", "/opt/cni/bin"},  {"CNI_ARGS", "K8S_POD_NAMESPACE=a;K8S_POD_NAME=b"}};
  std::string_view config = input;
  if (size_t nul = input.find('\0'); nul != std::string_view::npos) {
    env = envOf(input.substr(0, nul));
    config = input.substr(nul + 1);
  }
  const std::string version = cni::versionForReply(config);
  if (auto e = cni::parseEnvironment(env); !e) {
    checkError(e.error(), version);
  } else {
    (void)cni::isValidName(e->container_id);
    (void)cni::isValidIfname(e->ifname);
  }
  for (cni::Command c : {cni::Command::kAdd, cni::Command::kDel, cni::Command::kCheck,
                         cni::Command::kGc, cni::Command::kStatus}) {
    auto conf = cni::parseNetConf(config, c);
    if (!conf) {
      checkError(conf.error(), version);
      continue;
    }
    if (!conf->prev_result) continue;
    auto prev = cni::resultFromJson(*conf->prev_result);
    if (!prev) {
      checkError(prev.error(), version);
      continue;
    }
    cni::Result ours;
    ours.interfaces.push_back({"zw0", "02:00:00:00:00:01", "", 1500});
    ours.ips.push_back({0, *zonewall::parseAddr("10.0.0.1"), 32});
    (void)cni::jsonText(
        cni::mergeResultJson(*conf->prev_result, cni::resultToJson(ours, conf->cni_version)));
  }
  // The same bytes as an endpoint record the agent reads.
  auto j = nlohmann::json::parse(config, nullptr, false);
  if (!j.is_discarded()) {
    if (auto r = cni::endpointFromJson(j); r) {
      auto back = cni::endpointFromJson(cni::endpointToJson(*r));
      if (!back || !(*back == *r)) std::abort();
    }
  }
  return 0;
}
