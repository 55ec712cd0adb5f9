// A real etcd member for tests (Debian's etcd-server): on loopback, free ports, its own data
// directory; killed and removed by the destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"
#include "zonewall/agent/base64.h"
#include "zonewall/agent/etcd.h"

extern char** environ;

namespace zonewall::testing {

inline bool haveEtcd() { return std::filesystem::exists("/usr/bin/etcd"); }

inline int freePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// One etcd member on loopback with its own data directory; stopped and removed at the end.
class EtcdServer {
 public:
  /// On `host` inside network namespace `netns` ("" = this one, on loopback).
  explicit EtcdServer(const std::string& netns = "", const std::string& host = "127.0.0.1")
      : netns_(netns), log_((dir_.path() / "etcd.log").string()) {
    const std::string client = fmt::format("http://{}:{}", host, freePort());
    const std::string peer = fmt::format("http://{}:{}", host, freePort());
    const std::string data = (dir_.path() / "data").string();
    if (!netns.empty()) args_ = {"/usr/sbin/ip", "netns", "exec", netns};  // which execs etcd
    for (std::string a :
         {std::string("/usr/bin/etcd"), std::string("--name=n1"), "--data-dir=" + data,
          "--listen-client-urls=" + client, "--advertise-client-urls=" + client,
          "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
          "--initial-cluster=n1=" + peer, std::string("--initial-cluster-state=new")}) {
      args_.push_back(a);
    }
    endpoint_.url = client;
    ok_ = spawn();
  }
  /// Kills it (a crashed or partitioned datastore); restart() brings it back with its data.
  void stop() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  bool restart() {
    stop();
    return ok_ = spawn();
  }
  /// Puts `value` at `key` (through the gateway, from inside its namespace).
  bool put(const std::string& key, const std::string& value) const {
    return !post("/v3/kv/put", R"({"key":")" + agent::base64Encode(key) + R"(","value":")" +
                                   agent::base64Encode(value) + R"("})")
                .empty();
  }
  /// A gateway call from inside its namespace (curl): the response body, empty on failure.
  std::string post(const std::string& path, const std::string& json_body) const {
    RunResult r =
        run((netns_.empty() ? "" : "ip netns exec " + netns_ + " ") +
            "curl -sf --max-time 5 -X POST " + endpoint_.url + path + " -d '" + json_body + "'");
    return r.exit_code == 0 ? r.out : "";
  }
  ~EtcdServer() { stop(); }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;
  const agent::EtcdEndpoint& endpoint() const { return endpoint_; }
  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }

 private:
  bool spawn() {
    std::vector<char*> argv;
    for (auto& a : args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    // etcd 3.4 logs to stderr only: into a file here.
    posix_spawn_file_actions_t io;
    posix_spawn_file_actions_init(&io);
    posix_spawn_file_actions_addopen(&io, 1, log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&io, 1, 2);
    if (posix_spawn(&pid_, argv[0], &io, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&io);
    for (int i = 0; i < 100 && pid_ > 0; ++i) {
      if (ready()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    error_ = "etcd did not come up; see " + log_;
    return false;
  }
  bool ready() const {
    if (netns_.empty()) return agent::EtcdClient(endpoint_).range("/").has_value();
    return !post("/v3/kv/range", R"({"key":"Lw=="})").empty();
  }

  TempDir dir_;
  std::string netns_;
  std::string log_;
  pid_t pid_ = -1;
  agent::EtcdEndpoint endpoint_;
  std::vector<std::string> args_;
  bool ok_ = false;
  std::string error_;
};

}  // namespace zonewall::testing
