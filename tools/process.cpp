#include "process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "zonewall/base/fd.h"

extern char** environ;

namespace zonewall::tools {

std::expected<std::string, Error> runProcess(const std::vector<std::string>& argv,
                                             const std::string& input) {
  int in_pipe[2];
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) return fail(Error::Code::kIo, "pipe", errno);
  UniqueFd in_r(in_pipe[0]);
  UniqueFd in_w(in_pipe[1]);
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return fail(Error::Code::kIo, "pipe", errno);
  UniqueFd out_r(out_pipe[0]);
  UniqueFd out_w(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return fail(Error::Code::kIo, "pipe", errno);
  UniqueFd err_r(err_pipe[0]);
  UniqueFd err_w(err_pipe[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), STDERR_FILENO);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, cargs[0], &fa, nullptr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return fail(Error::Code::kIo, fmt::format("cannot run {}", argv[0]), rc);
  in_r.reset();
  out_w.reset();
  err_w.reset();
  // A helper that exits before reading all of its input must not kill us with SIGPIPE.
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore, &old);
  std::string out;
  std::string err;
  size_t written = 0;
  if (input.empty()) in_w.reset();
  char buf[65536];
  for (;;) {
    pollfd fds[3] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {in_w.get(), POLLOUT, 0}};
    if (fds[0].fd < 0 && fds[1].fd < 0) break;
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[2].fd >= 0 && fds[2].revents != 0) {
      ssize_t n = write(in_w.get(), input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EINTR && errno != EAGAIN) written = input.size();
      if (written == input.size()) in_w.reset();
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      ssize_t n = read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        (k == 0 ? out : err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        (k == 0 ? out_r : err_r).reset();
      }
    }
  }
  in_w.reset();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  sigaction(SIGPIPE, &old, nullptr);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    if (auto nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
    return fail(Error::Code::kIo, err.empty() ? argv[0] + " failed" : err);
  }
  return out;
}

}  // namespace zonewall::tools
