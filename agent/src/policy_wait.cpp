#include "zonewall/agent/policy_wait.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <list>
#include <nlohmann/json.hpp>

namespace zonewall::agent {

namespace {
// A request is one short line; anything longer is not a zonewall-cni.
constexpr size_t kMaxRequest = 4096;
}  // namespace

std::expected<std::unique_ptr<PolicyWaitServer>, Error> PolicyWaitServer::start(
    const std::string& path, Metrics& metrics) {
  std::unique_ptr<PolicyWaitServer> s(new PolicyWaitServer(path, metrics));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return fail(Error::Code::kInvalidInput, "policy wait socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  s->listen_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s->listen_) {
    return fail(Error::Code::kIo, "socket(AF_UNIX)", errno);
  }
  ::unlink(path.c_str());  // a previous agent's socket: nobody listens on it any more
  if (::bind(s->listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail(Error::Code::kIo, "bind " + path, errno);
  }
  if (::listen(s->listen_.get(), 128) != 0) {
    return fail(Error::Code::kIo, "listen " + path, errno);
  }
  s->wake_.reset(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!s->wake_) {
    return fail(Error::Code::kIo, "eventfd", errno);
  }
  s->thread_ = std::thread([raw = s.get()] { raw->run(); });
  return s;
}

PolicyWaitServer::~PolicyWaitServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (thread_.joinable()) {
    thread_.join();
  }
  ::unlink(path_.c_str());
}

void PolicyWaitServer::committed(const std::vector<compiler::LocalEndpoint>& endpoints) {
  std::map<std::string, std::set<Addr>> now;
  for (const auto& ep : endpoints) {
    now[ep.iface].insert(ep.addrs.begin(), ep.addrs.end());
  }
  {
    std::lock_guard lock(mu_);
    committed_ = std::move(now);
  }
  std::uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

bool PolicyWaitServer::programmed(const std::string& iface, const std::vector<Addr>& ips) const {
  std::lock_guard lock(mu_);
  auto it = committed_.find(iface);
  if (it == committed_.end()) {
    return false;
  }
  return std::ranges::all_of(ips, [&](Addr a) { return it->second.contains(a); });
}

void PolicyWaitServer::run() {
  std::list<Waiter> waiters;
  for (;;) {
    std::vector<pollfd> fds{{listen_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    for (const Waiter& w : waiters) fds.push_back({w.fd.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
      return;
    }
    if (fds[1].revents != 0) {
      std::uint64_t n = 0;
      (void)!::read(wake_.get(), &n, sizeof n);
      std::lock_guard lock(mu_);
      if (stopping_) {
        return;
      }
    }
    if (fds[0].revents != 0) {
      for (int c;
           (c = ::accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
        waiters.push_back(Waiter{UniqueFd(c)});
      }
    }
    size_t i = 2;
    for (auto it = waiters.begin(); it != waiters.end(); ++i) {
      Waiter& w = *it;
      bool drop = false;
      if (i < fds.size() && fds[i].revents != 0) {
        char buf[512];
        ssize_t n = ::read(w.fd.get(), buf, sizeof buf);
        if (n > 0 && !w.asked) {
          w.buffer.append(buf, static_cast<size_t>(n));
          if (auto nl = w.buffer.find('\n'); nl != std::string::npos) {
            auto j = nlohmann::json::parse(w.buffer.substr(0, nl), nullptr, false);
            w.asked = true;
            drop = !j.is_object() || !j.contains("hostVeth") || !j["hostVeth"].is_string();
            if (!drop) {
              w.iface = j["hostVeth"].get<std::string>();
              for (const auto& ip : j.value("ips", nlohmann::json::array())) {
                if (auto a = ip.is_string() ? parseAddr(ip.get<std::string>()) : std::nullopt) {
                  w.ips.push_back(*a);
                }
              }
              metrics_.policy_waits.Increment();
            }
          } else if (w.buffer.size() > kMaxRequest) {
            drop = true;
          }
        } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
          if (w.asked) {
            metrics_.policy_wait_timeouts.Increment();  // the plugin gave up first
          }
          drop = true;
        }
      }
      if (!drop && w.asked && programmed(w.iface, w.ips)) {
        static constexpr std::string_view kReply = "{\"programmed\":true}\n";
        (void)!::send(w.fd.get(), kReply.data(), kReply.size(), MSG_NOSIGNAL);
        drop = true;
      }
      it = drop ? waiters.erase(it) : std::next(it);
    }
  }
}

}  // namespace zonewall::agent
