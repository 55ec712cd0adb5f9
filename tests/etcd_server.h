// A real etcd member for tests (Debian's etcd-server): on loopback, free ports, its own data
// directory; killed and removed by the destructor.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
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
  EtcdServer() {
    const std::string client = fmt::format("http://127.0.0.1:{}", freePort());
    const std::string peer = fmt::format("http://127.0.0.1:{}", freePort());
    const std::string data = (dir_.path() / "data").string();
    const std::string log = (dir_.path() / "etcd.log").string();
    std::vector<std::string> args = {"/usr/bin/etcd",
                                     "--name=n1",
                                     "--data-dir=" + data,
                                     "--listen-client-urls=" + client,
                                     "--advertise-client-urls=" + client,
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=n1=" + peer,
                                     "--initial-cluster-state=new"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // etcd 3.4 logs to stderr only: into a file here.
    posix_spawn_file_actions_t io;
    posix_spawn_file_actions_init(&io);
    posix_spawn_file_actions_addopen(&io, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&io, 1, 2);
    if (posix_spawn(&pid_, argv[0], &io, nullptr, argv.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&io);
    endpoint_.url = client;
    agent::EtcdClient probe(endpoint_);
    for (int i = 0; i < 100 && pid_ > 0; ++i) {
      if (probe.range("/").has_value()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "etcd did not come up; see " << log;
  }
  ~EtcdServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;
  const agent::EtcdEndpoint& endpoint() const { return endpoint_; }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
  agent::EtcdEndpoint endpoint_;
};

}  // namespace zonewall::testing
