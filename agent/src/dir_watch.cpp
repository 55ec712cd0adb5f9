#include "dir_watch.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>

#include <array>
#include <cerrno>
#include <filesystem>

namespace zonewall::agent {

namespace fs = std::filesystem;

namespace {
// What a writer's complete change looks like: a file closed after writing, renamed in or out
// (atomic writers), deleted; a directory made (to watch it too).
constexpr std::uint32_t kEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                  IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
}  // namespace

std::expected<DirWatch, Error> DirWatch::open(const std::string& dir, bool recursive) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return fail(Error::Code::kIo, "cannot create " + dir + ": " + ec.message());
  }
  DirWatch w;
  w.dir_ = dir;
  w.recursive_ = recursive;
  w.inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!w.inotify_) {
    return fail(Error::Code::kIo, "inotify_init1", errno);
  }
  w.stop_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!w.stop_) {
    return fail(Error::Code::kIo, "eventfd", errno);
  }
  if (inotify_add_watch(w.inotify_.get(), dir.c_str(), kEvents) < 0) {
    return fail(Error::Code::kIo, "inotify_add_watch " + dir, errno);
  }
  if (recursive) {
    w.addTree(dir);
  }
  return w;
}

void DirWatch::addTree(const std::string& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) {
      (void)inotify_add_watch(inotify_.get(), it->path().c_str(), kEvents);
    }
  }
}

DirWatch::Wake DirWatch::wait(std::chrono::milliseconds timeout) {
  std::array<pollfd, 2> fds{{{inotify_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}}};
  int n = ::poll(fds.data(), fds.size(), static_cast<int>(timeout.count()));
  if (fds[1].revents != 0) {
    return Wake::kStopped;
  }
  if (n <= 0 || fds[0].revents == 0) {
    return Wake::kTimeout;
  }
  // Drain: the caller rescans, so which events came does not matter, only that some did.
  alignas(inotify_event) std::array<char, 8192> buf{};
  bool new_dir = false;
  for (;;) {
    ssize_t len = ::read(inotify_.get(), buf.data(), buf.size());
    if (len <= 0) {
      break;
    }
    for (ssize_t off = 0; off < len;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
      new_dir = new_dir || ((ev->mask & IN_ISDIR) != 0 && (ev->mask & IN_CREATE) != 0);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  if (new_dir && recursive_) {
    addTree(dir_);  // watching a directory twice is harmless: the kernel returns the same wd
  }
  return Wake::kChanged;
}

void DirWatch::stop() const {
  std::uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
}

}  // namespace zonewall::agent
