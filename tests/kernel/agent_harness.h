// zonewall-agent as a process in a test's node namespace: started as the DaemonSet would run
// it (in the node's netns), its log kept in a file the test can wait on and show, killed
// (SIGTERM or SIGKILL) and reaped by the destructor even when the test fails.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.h"

extern char** environ;

namespace zonewall::testing {

inline std::string agentBinary() { return ZONEWALL_AGENT; }

class AgentProcess {
 public:
  AgentProcess() = default;
  ~AgentProcess() { kill(SIGKILL); }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  /// Starts `zonewall-agent ARGS...` in netns `ns` (by name), appending its log to `log`;
  /// `env` is added to the environment (in-cluster variables).
  bool start(const std::string& ns, const std::vector<std::string>& args, const std::string& log,
             const std::map<std::string, std::string>& env = {}) {
    log_ = log;
    std::vector<std::string> argv{"ip", "netns", "exec", ns, agentBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
    for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
    std::vector<char*> cenv;
    for (auto& e : envs) cenv.push_back(e.data());
    cenv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawnp(&pid_, "ip", &fa, nullptr, cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = -1;
    return pid_ > 0;
  }

  /// Waits until the log has a line containing `text` (after `from` bytes); false on timeout
  /// or if the agent exited.
  bool waitLog(const std::string& text, std::chrono::milliseconds timeout, size_t from = 0) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (logText().find(text, from) != std::string::npos) return true;
      if (!alive()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string logText() const {
    std::ifstream f(log_);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }
  size_t logSize() const { return logText().size(); }

  pid_t pid() const { return pid_; }
  bool alive() const {
    if (pid_ <= 0) return false;
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
  }
  /// Sends `sig` and reaps the process; its exit status (-1 if killed by a signal).
  int kill(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  std::string log_;
};

}  // namespace zonewall::testing
