// The handshake that makes a new pod's first packet pass: the CNI plugin's ADD does not
// return before the agent has committed the pod's entries (bounded by the plugin's
// policySetupTimeout, as Calico's policy_setup_timeout_seconds bounds its wait).
//
//   zonewall-cni ADD: veth up, endpoint record written ─▶ connect(agent.sock)
//                     send  {"hostVeth":"zw…","ips":["10.244.1.7"]}\n
//   agent:            (record seen, compiled, committed: the veth and its addresses are in
//                     the anti-spoofing set, its classes in the maps)
//                     reply {"programmed":true}\n ─▶ ADD returns the result
//
// No agent listening (the plugin used alone, or the agent down): the plugin does not wait.
#pragma once

#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "zonewall/agent/metrics.h"
#include "zonewall/base/error.h"
#include "zonewall/base/fd.h"
#include "zonewall/compiler/table.h"

namespace zonewall::agent {

class PolicyWaitServer {
 public:
  /// Listens on the unix socket `path` (a stale socket file is replaced).
  static std::expected<std::unique_ptr<PolicyWaitServer>, Error> start(const std::string& path,
                                                                       Metrics& metrics);
  ~PolicyWaitServer();
  PolicyWaitServer(const PolicyWaitServer&) = delete;
  PolicyWaitServer& operator=(const PolicyWaitServer&) = delete;

  /// The loop, after each commit: the local endpoints the kernel now holds.
  void committed(const std::vector<compiler::LocalEndpoint>& endpoints);

 private:
  PolicyWaitServer(std::string path, Metrics& metrics)
      : path_(std::move(path)), metrics_(metrics) {}
  void run();
  bool programmed(const std::string& iface, const std::vector<Addr>& ips) const;

  struct Waiter {
    UniqueFd fd;
    std::string buffer;  ///< the request, until its newline
    bool asked = false;
    std::string iface;
    std::vector<Addr> ips;
  };

  const std::string path_;
  Metrics& metrics_;
  UniqueFd listen_;
  UniqueFd wake_;  ///< eventfd: a commit happened, or stop
  bool stopping_ = false;
  mutable std::mutex mu_;
  std::map<std::string, std::set<Addr>> committed_;  ///< host veth → addresses
  std::thread thread_;
};

}  // namespace zonewall::agent
