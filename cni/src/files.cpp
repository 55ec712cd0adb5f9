#include "files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "zonewall/base/fd.h"

namespace zonewall::cni {

namespace {

// Temporary names carry the writer's pid, so a cleaner can tell a live writer's file from a
// dead one's: ".tmp.<pid>.<n>".
constexpr std::string_view kTempPrefix = ".tmp.";

std::string tempName() {
  static unsigned counter = 0;
  return fmt::format("{}{}.{}", kTempPrefix, getpid(), counter++);
}

Error ioError(std::string_view what, const std::string& path, int err) {
  return Error{ErrorCode::kIo, fmt::format("{} {}: {}", what, path, std::strerror(err))};
}

Expected<std::string> writeTemp(const std::string& dir, std::string_view content) {
  std::string path = dir + "/" + tempName();
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) {
    return std::unexpected(ioError("create", path, errno));
  }
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      ::unlink(path.c_str());
      return std::unexpected(ioError("write", path, err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  // The one close whose result matters (a deferred write error): checked, not left to ~UniqueFd.
  if (::close(fd.release()) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return std::unexpected(ioError("close", path, err));
  }
  return path;
}

}  // namespace

Expected<void> makeDirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::kIo, fmt::format("mkdir {}: {}", dir, ec.message()));
  return {};
}

Expected<void> writeFileAtomic(const std::string& dir, std::string_view name,
                               std::string_view content) {
  auto tmp = writeTemp(dir, content);
  if (!tmp) return std::unexpected(tmp.error());
  std::string path = fmt::format("{}/{}", dir, name);
  if (::rename(tmp->c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp->c_str());
    return std::unexpected(ioError("rename to", path, err));
  }
  return {};
}

Expected<bool> createFileExclusive(const std::string& dir, std::string_view name,
                                   std::string_view content) {
  auto tmp = writeTemp(dir, content);
  if (!tmp) return std::unexpected(tmp.error());
  std::string path = fmt::format("{}/{}", dir, name);
  int rc = ::link(tmp->c_str(), path.c_str());
  int err = errno;
  ::unlink(tmp->c_str());
  if (rc == 0) return true;
  if (err == EEXIST) return false;
  return std::unexpected(ioError("link", path, err));
}

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  return std::move(ss).str();
}

void removeStaleTemporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename();
    if (!name.starts_with(kTempPrefix)) continue;
    // A writer that is still alive owns its file (signal 0 only checks existence).
    pid_t pid = static_cast<pid_t>(std::strtol(name.c_str() + kTempPrefix.size(), nullptr, 10));
    if (pid > 0 && pid != getpid() && ::kill(pid, 0) == 0) continue;
    ::unlink(entry.path().c_str());
  }
}

}  // namespace zonewall::cni
