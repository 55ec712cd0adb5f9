#include "git.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>

#include "zonewall/base/fd.h"

extern char** environ;

namespace zonewall::tools {
namespace {

// Runs git with `args`: its standard output, or an error with what it wrote on stderr.
std::expected<std::string, Error> runGit(const std::vector<std::string>& args) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return fail(Error::Code::kIo, "git: pipe", errno);
  UniqueFd out_r(out_pipe[0]);
  UniqueFd out_w(out_pipe[1]);
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return fail(Error::Code::kIo, "git: pipe", errno);
  UniqueFd err_r(err_pipe[0]);
  UniqueFd err_w(err_pipe[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, err_w.get(), STDERR_FILENO);
  std::vector<std::string> argv_s{"git"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "git", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return fail(Error::Code::kIo, "cannot run git", rc);
  out_w.reset();
  err_w.reset();
  std::string out;
  std::string err;
  pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      ssize_t n = read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        (k == 0 ? out : err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[k].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
    if (auto nl = err.rfind('\n'); nl != std::string::npos) err = err.substr(nl + 1);
    return fail(Error::Code::kIo,
                fmt::format("git {}: {}", args.front(), err.empty() ? "failed" : err));
  }
  return out;
}

}  // namespace

bool isGitPath(const std::string& path) { return path.starts_with("git:"); }

std::expected<std::vector<policy::SourceText>, Error> readGitPath(const std::string& path) {
  const std::string spec = path.substr(4);
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    return fail(Error::Code::kIo, path + ": expected git:REV:PATH");
  }
  const std::string rev = spec.substr(0, colon);
  const std::string where = spec.substr(colon + 1);
  // The revision must name a commit: `git ls-tree` of a bad one fails with git's reason.
  if (auto ok = runGit({"rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"});
      !ok) {
    return fail(Error::Code::kIo, fmt::format("{}: no such revision '{}'", path, rev));
  }
  auto listing = runGit({"ls-tree", "-r", "--name-only", "--full-name", rev, "--", where});
  if (!listing) return fail(Error::Code::kIo, path + ": " + listing.error().message);
  std::vector<std::string> files;
  std::istringstream lines(*listing);
  for (std::string f; std::getline(lines, f);) {
    const bool yaml = f.ends_with(".yaml") || f.ends_with(".yml");
    // A file named explicitly is read whatever its name; a directory's YAML files only.
    if (yaml || f == where || "./" + f == where) files.push_back(f);
  }
  if (files.empty()) {
    return fail(Error::Code::kIo, fmt::format("{}: no such file or directory at {}", path, rev));
  }
  std::sort(files.begin(), files.end());
  std::vector<policy::SourceText> out;
  for (const std::string& f : files) {
    auto text = runGit({"show", rev + ":" + f});
    if (!text) return fail(Error::Code::kIo, path + ": " + text.error().message);
    out.push_back({fmt::format("git:{}:{}", rev, f), std::move(*text)});
  }
  return out;
}

}  // namespace zonewall::tools
