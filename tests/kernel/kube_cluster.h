// A real kube-apiserver + etcd (scripts/kube/start.sh) inside a network namespace of the
// test's own, reachable from node namespaces over an underlay bridge, as a control plane is
// from its nodes:
//
//   netns zwt<pid>k: lo, bridge zwbr 10.99.0.1/24 ── etcd (loopback) + kube-apiserver (10.99.0.1)
//        │ ul<i> (bridge port) ══ veth ══ ul0 in node netns <i>: 10.99.0.(10+i)/24
//
// (No "zw" in these names: the dataplane takes every "zw*" interface for a pod's host veth.)
//
// The test talks to the API from a worker thread that lives in that namespace. Everything is
// stopped and removed by the destructor.
#pragma once

#include <signal.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <string>
#include <thread>

#include "test_support.h"
#include "zonewall/agent/kube.h"
#include "zonewall/base/netns.h"

namespace zonewall::testing {

/// Where scripts/kube/build.sh put kube-apiserver and etcd (ZONEWALL_KUBE_BIN_DIR overrides).
inline std::string kubeBinDir() {
  if (const char* d = std::getenv("ZONEWALL_KUBE_BIN_DIR"); d != nullptr && *d != '\0') return d;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") + "/.cache/zonewall/kube/v1.34.4/bin";
}
inline bool haveKube() {
  return std::filesystem::exists(kubeBinDir() + "/kube-apiserver") &&
         std::filesystem::exists(kubeBinDir() + "/etcd");
}

/// Skips outside CI when the binaries are not built; fails under CI (make test builds them).
#define ZONEWALL_REQUIRE_KUBE()                                                    \
  do {                                                                             \
    if (!::zonewall::testing::haveKube()) {                                        \
      if (::zonewall::testing::inCi())                                             \
        FAIL() << "no kube-apiserver in " << ::zonewall::testing::kubeBinDir()     \
               << " (scripts/kube/build.sh, run by make test)";                    \
      GTEST_SKIP() << "no kube-apiserver in " << ::zonewall::testing::kubeBinDir() \
                   << ": run scripts/kube/build.sh ~/.cache/zonewall/kube";        \
    }                                                                              \
  } while (0)

/// YAML (a manifest) as the JSON the API server takes: plain scalars that read as numbers or
/// booleans become them, quoted ones stay strings.
inline nlohmann::json yamlToJson(const YAML::Node& n) {
  using nlohmann::json;
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = yamlToJson(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : n) a.push_back(yamlToJson(item));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted
      if (s == "true" || s == "false") return s == "true";
      if (!s.empty() && s.find_first_not_of("-0123456789") == std::string::npos && s != "-") {
        return std::stoll(s);
      }
      return s;
    }
    default:
      return nullptr;
  }
}

class KubeCluster {
 public:
  using json = nlohmann::json;

  KubeCluster() {
    reapStale();
    ns_ = "zwt" + std::to_string(getpid()) + "k";
    dir_ = tmp_.path() / "kube";
    ok_ = sh("ip netns add " + ns_);
    if (!ok_) return;
    ok_ = sh("ip -n " + ns_ + " link set lo up") &&
          sh("ip -n " + ns_ + " link add zwbr type bridge") &&
          sh("ip -n " + ns_ + " addr add 10.99.0.1/24 dev zwbr") &&
          sh("ip -n " + ns_ + " link set zwbr up");
    if (!ok_) return;
    // The watch cache off: a watch from a compacted resourceVersion then gets 410, as it
    // does from any apiserver whose cache window has passed it.
    RunResult r =
        run("ip netns exec " + ns_ + " env API_ADDRESS=10.99.0.1 KUBE_BIN_DIR=" + kubeBinDir() +
            " APISERVER_EXTRA_ARGS=--watch-cache=false " + sourceDir() + "/scripts/kube/start.sh " +
            dir_.string() + " 2>&1");
    ok_ = r.exit_code == 0;
    if (!ok_) {
      error_ = r.out;
      return;
    }
    readEnv();
    worker_ = std::thread([this] { work(); });
  }

  ~KubeCluster() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
    run("ip netns exec " + ns_ + " " + sourceDir() + "/scripts/kube/start.sh stop " +
        dir_.string() + " >/dev/null 2>&1");
    sh("ip netns del " + ns_);
  }
  KubeCluster(const KubeCluster&) = delete;
  KubeCluster& operator=(const KubeCluster&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& netns() const { return ns_; }
  std::string host() const { return "10.99.0.1"; }
  std::string port() const { return url_.substr(url_.rfind(':') + 1); }
  std::string caFile() const { return (dir_ / "pki/ca.crt").string(); }
  std::string dir() const { return dir_.string(); }

  /// Connects node netns `node` (by name) to the underlay as 10.99.0.(10+index).
  bool attach(const std::string& node, int index) {
    std::string port_name = "ul" + std::to_string(index);
    std::string ip = "10.99.0." + std::to_string(10 + index);
    return sh("ip -n " + node + " link add ul0 type veth peer name " + port_name + " netns " +
              ns_) &&
           sh("ip -n " + ns_ + " link set " + port_name + " master zwbr up") &&
           sh("ip -n " + node + " addr add " + ip + "/24 dev ul0") &&
           sh("ip -n " + node + " link set ul0 up");
  }

  /// An API call as the cluster admin (from inside the control plane's namespace).
  agent::KubeClient::Response call(const std::string& method, const std::string& path,
                                   const json& body = nullptr,
                                   const std::string& type = "application/json") {
    std::packaged_task<agent::KubeClient::Response()> task([&] {
      auto r = client_->request(path, stop_, method, body.is_null() ? "" : body.dump(), type);
      if (!r) return agent::KubeClient::Response{0, r.error().str(), {}};
      return *r;
    });
    auto f = task.get_future();
    {
      std::lock_guard lock(mu_);
      tasks_.push(std::move(task));
    }
    cv_.notify_all();
    return f.get();
  }

  /// The collection an object is created in.
  static std::string collection(const json& obj) {
    std::string api = obj.value("apiVersion", "");
    std::string kind = obj.value("kind", "");
    std::string plural;
    for (char c : kind) plural.push_back(static_cast<char>(std::tolower(c)));
    if (plural.ends_with("y")) {
      plural = plural.substr(0, plural.size() - 1) + "ies";  // networkpolicies
    } else {
      plural += plural.ends_with("s") ? "es" : "s";
    }
    std::string base = api == "v1" ? "/api/v1" : "/apis/" + api;
    const json& meta = obj.value("metadata", json::object());
    if (meta.contains("namespace")) {
      base += "/namespaces/" + meta["namespace"].get<std::string>();
    }
    return base + "/" + plural;
  }
  /// Creates an object; its HTTP status.
  long create(const json& obj) { return call("POST", collection(obj), obj).status; }
  /// Creates every document of a YAML text; the first status that is not 201 (or 201).
  long apply(const std::string& yaml) {
    for (const YAML::Node& doc : YAML::LoadAll(yaml)) {
      if (!doc.IsMap()) continue;
      long st = create(yamlToJson(doc));
      if (st != 201) return st;
    }
    return 201;
  }
  long remove(const json& obj) {
    return call("DELETE", collection(obj) + "/" + obj["metadata"]["name"].get<std::string>() +
                              "?gracePeriodSeconds=0")
        .status;
  }
  long mergePatch(const std::string& path, const json& patch) {
    return call("PATCH", path, patch, "application/merge-patch+json").status;
  }

  /// A bound token for a ServiceAccount (the TokenRequest API, as the kubelet asks for one).
  std::string serviceAccountToken(const std::string& ns, const std::string& sa) {
    json req = {{"apiVersion", "authentication.k8s.io/v1"},
                {"kind", "TokenRequest"},
                {"spec", {{"expirationSeconds", 3600}}}};
    auto r = call("POST", "/api/v1/namespaces/" + ns + "/serviceaccounts/" + sa + "/token", req);
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j.contains("status") ? j["status"].value("token", "") : "";
  }

  /// Compacts etcd at its current revision: every older resourceVersion is gone.
  bool compact() {
    RunResult r = run("ip netns exec " + ns_ + " curl -sf -X POST " + etcd_url_ +
                      "/v3/kv/range -d '{\"key\":\"AA==\"}'");
    auto j = json::parse(r.out, nullptr, false);
    if (!j.is_object() || !j.contains("header")) return false;
    std::string rev = j["header"].value("revision", "");
    return run("ip netns exec " + ns_ + " curl -sf -X POST " + etcd_url_ +
               "/v3/kv/compaction -d '{\"revision\":\"" + rev + "\",\"physical\":true}'")
               .exit_code == 0;
  }
  /// Stops kube-apiserver and starts it again (etcd keeps running).
  bool restartApiserver() {
    return run("ip netns exec " + ns_ + " " + sourceDir() + "/scripts/kube/start.sh " +
               "restart-apiserver " + dir_.string() + " >/dev/null 2>&1")
               .exit_code == 0;
  }

 private:
  static bool sh(const std::string& cmd) { return run(cmd + " >/dev/null 2>&1").exit_code == 0; }

  // Control planes of earlier runs whose test process is gone (killed by a timeout: no
  // destructor ran): their etcd and apiserver still run inside the namespace.
  static void reapStale() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/run/netns", ec)) {
      std::string name = e.path().filename().string();
      if (!name.starts_with("zwt") || !name.ends_with("k")) continue;
      pid_t owner = std::atoi(name.substr(3).c_str());
      if (owner <= 0 || ::kill(owner, 0) == 0) continue;
      run("for p in $(ip netns pids " + name + "); do kill -9 $p; done; ip netns del " + name +
          " >/dev/null 2>&1");
    }
  }

  void readEnv() {
    std::ifstream f(dir_ / "env");
    std::string line;
    while (std::getline(f, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string k = line.substr(0, eq);
      std::string v = line.substr(eq + 1);
      if (k == "KUBE_URL") url_ = v;
      if (k == "KUBE_TOKEN") token_ = v;
      if (k == "ETCD_URL") etcd_url_ = v;
    }
  }

  void work() {
    auto guard = NetnsGuard::enter("/run/netns/" + ns_);
    if (!guard) return;
    agent::KubeConfig config{.server = url_, .ca_file = caFile(), .token = token_};
    client_ = std::make_unique<agent::KubeClient>(config);
    for (;;) {
      std::packaged_task<agent::KubeClient::Response()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_ || !tasks_.empty(); });
        if (tasks_.empty()) break;
        task = std::move(tasks_.front());
        tasks_.pop();
      }
      task();
    }
    client_.reset();
  }

  TempDir tmp_;
  std::filesystem::path dir_;
  std::string ns_;
  bool ok_ = false;
  std::string error_;
  std::string url_, token_, etcd_url_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<agent::KubeClient> client_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::queue<std::packaged_task<agent::KubeClient::Response()>> tasks_;
  bool done_ = false;
  std::thread worker_;
};

}  // namespace zonewall::testing
