// zw_probe: the test servers and the prober of the kernel tests.
//
//   zw_probe serve PORT...                     TCP, UDP (and SCTP when the kernel has it) on
//                                              every port of every address; runs until killed
//   zw_probe probe TIMEOUT_MS IP:PORT/PROTO... tries every target at once; prints one line per
//                                              target: "IP:PORT/PROTO ok", "... fail" (timed
//                                              out) or "... refused" (a reset or ICMP error)
//   zw_probe watch STOPFILE TIMEOUT_MS TARGET...  probes again and again until STOPFILE
//                                              exists; prints "TARGET ok=N fail=M"
//   zw_probe latency COUNT IP:PORT/TCP         COUNT connections one at a time; prints the
//                                              median and p99 of connect() in µs
//   zw_probe sctp                              exit 0 if this kernel has SCTP
//
// TCP and SCTP: a completed connect is "ok". UDP: a reply from the server is "ok" (the server
// echoes). A dropped packet times out: "fail".
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kIpprotoSctp = 132;
constexpr int kStreamPort = 5001;  // `serve` reads connections to this port until EOF

bool haveSctp() {
  int fd = socket(AF_INET, SOCK_STREAM, kIpprotoSctp);
  if (fd < 0) return false;
  close(fd);
  return true;
}

int listener(int family, int type, int proto, int port) {
  int fd = socket(family, type | SOCK_NONBLOCK, proto);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    int only = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
    len = sizeof *a;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    close(fd);
    return -1;
  }
  // A deep backlog: under load (a busy test machine) a full accept queue drops SYNs, which
  // would read as a policy drop.
  if (type == SOCK_STREAM && listen(fd, 4096) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int serve(const std::vector<int>& ports) {
  struct L {
    int fd;
    int type;
    int port;
  };
  std::vector<L> ls;
  bool sctp = haveSctp();
  for (int port : ports) {
    for (int fam : {AF_INET, AF_INET6}) {
      int t = listener(fam, SOCK_STREAM, 0, port);
      int u = listener(fam, SOCK_DGRAM, 0, port);
      if (t >= 0) ls.push_back({t, SOCK_STREAM, port});
      if (u >= 0) ls.push_back({u, SOCK_DGRAM, port});
      if (sctp) {
        int s = listener(fam, SOCK_STREAM, kIpprotoSctp, port);
        if (s >= 0) ls.push_back({s, SOCK_STREAM, port});
      }
    }
  }
  std::printf("serving %zu sockets\n", ls.size());
  std::fflush(stdout);
  std::vector<pollfd> pfds;
  for (const L& l : ls) pfds.push_back({l.fd, POLLIN, 0});
  for (;;) {
    if (poll(pfds.data(), pfds.size(), -1) < 0 && errno != EINTR) return 1;
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (!(pfds[i].revents & POLLIN)) continue;
      if (ls[i].type == SOCK_STREAM) {
        // Drain every pending connection per wakeup and close it, except on the stream port
        // (kStreamPort), where each connection is read to its end on a thread of its own.
        for (int c; (c = accept4(ls[i].fd, nullptr, nullptr, 0)) >= 0;) {
          if (ls[i].port != kStreamPort) {
            close(c);
            continue;
          }
          std::thread([c] {
            char buf[1 << 16];
            pollfd p{c, POLLIN, 0};
            if (poll(&p, 1, 20) > 0) {
              while (recv(c, buf, sizeof buf, 0) > 0) {
              }
            }
            close(c);
          }).detach();
        }
      } else {
        char buf[512];
        sockaddr_storage from{};
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(ls[i].fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
        if (n > 0)
          sendto(ls[i].fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
      }
    }
  }
}

struct Target {
  std::string text;
  std::string source;  // bind to this address first (IP:PORT/PROTO@SOURCE)
  sockaddr_storage addr{};
  socklen_t len = 0;
  int type = SOCK_STREAM;
  int proto = 0;
  int fd = -1;
  bool done = false;
  bool ok = false;
  bool refused = false;  // an error came back (RST, ICMP unreachable): not a silent drop
};

bool parseTarget(const std::string& spec, Target& t) {
  t.text = spec;
  std::string s = spec;
  if (auto at = s.find('@'); at != std::string::npos) {
    t.source = s.substr(at + 1);
    s = s.substr(0, at);
  }
  auto slash = s.rfind('/');
  auto colon = s.rfind(':', slash);
  if (slash == std::string::npos || colon == std::string::npos) return false;
  std::string ip = s.substr(0, colon);
  if (ip.size() > 2 && ip.front() == '[') ip = ip.substr(1, ip.size() - 2);
  int port = std::atoi(s.substr(colon + 1, slash - colon - 1).c_str());
  std::string proto = s.substr(slash + 1);
  t.type = proto == "UDP" ? SOCK_DGRAM : SOCK_STREAM;
  t.proto = proto == "SCTP" ? kIpprotoSctp : 0;
  if (ip.find(':') == std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in*>(&t.addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    t.len = sizeof *a;
    return inet_pton(AF_INET, ip.c_str(), &a->sin_addr) == 1;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&t.addr);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(static_cast<std::uint16_t>(port));
  t.len = sizeof *a;
  return inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) == 1;
}

// Tries every target at once; leaves t.ok set.
void attempt(int timeout_ms, std::vector<Target>& ts) {
  for (Target& t : ts) {
    t.fd = -1;
    t.done = t.ok = t.refused = false;
    t.fd = socket(t.addr.ss_family, t.type | SOCK_NONBLOCK, t.proto);
    if (t.fd < 0) {
      t.done = true;
      continue;
    }
    if (!t.source.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      if (inet_pton(AF_INET, t.source.c_str(), &src.sin_addr) != 1 ||
          bind(t.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
        t.done = true;
        continue;
      }
    }
    int rc = connect(t.fd, reinterpret_cast<sockaddr*>(&t.addr), t.len);
    if (t.type == SOCK_DGRAM) {
      if (rc == 0) send(t.fd, "zw", 2, 0);
    } else if (rc == 0) {
      t.done = t.ok = true;
    } else if (errno != EINPROGRESS) {
      t.done = t.refused = true;
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto last_resend = std::chrono::steady_clock::now();
  for (;;) {
    std::vector<pollfd> pfds;
    std::vector<Target*> who;
    for (Target& t : ts) {
      if (t.done) continue;
      pfds.push_back({t.fd, static_cast<short>(t.type == SOCK_DGRAM ? POLLIN : POLLOUT), 0});
      who.push_back(&t);
    }
    auto now = std::chrono::steady_clock::now();
    if (pfds.empty() || now >= deadline) break;
    // UDP has no handshake: resend now and then in case the first datagram met an ARP delay.
    if (now - last_resend > std::chrono::milliseconds(100)) {
      for (Target* t : who) {
        if (t->type == SOCK_DGRAM) send(t->fd, "zw", 2, 0);
      }
      last_resend = now;
    }
    int wait = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count());
    if (poll(pfds.data(), pfds.size(), std::min(wait, 50)) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < pfds.size(); ++i) {
      if (!pfds[i].revents) continue;
      Target* t = who[i];
      if (t->type == SOCK_DGRAM) {
        char buf[16];
        ssize_t n = recv(t->fd, buf, sizeof buf, 0);
        if (n > 0) t->done = t->ok = true;
        if (n < 0 && errno != EAGAIN) t->done = t->refused = true;  // ICMP unreachable
      } else {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        t->done = true;
        t->ok = err == 0;
        t->refused = err != 0;
      }
    }
  }
  for (Target& t : ts) {
    if (t.fd >= 0) {
      // Abortive close (RST): neither side keeps the tuple in TIME_WAIT, so thousands of
      // probes never collide with an old connection when ports wrap around.
      linger lg{1, 0};
      setsockopt(t.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(t.fd);
    }
    t.fd = -1;
  }
}

int probe(int timeout_ms, std::vector<Target>& ts) {
  attempt(timeout_ms, ts);
  for (const Target& t : ts) {
    std::printf("%s %s\n", t.text.c_str(), t.ok ? "ok" : t.refused ? "refused" : "fail");
  }
  return 0;
}

// Probes again and again until `stop_file` exists; then prints per target how many attempts
// succeeded and failed.
int watch(const std::string& stop_file, int timeout_ms, std::vector<Target>& ts) {
  std::vector<long> ok(ts.size());
  std::vector<long> fail(ts.size());
  while (access(stop_file.c_str(), F_OK) != 0) {
    auto began = std::chrono::steady_clock::now();
    attempt(timeout_ms, ts);
    for (size_t i = 0; i < ts.size(); ++i) {
      (ts[i].ok ? ok : fail)[i]++;
      if (!ts[i].ok) {
        std::fprintf(stderr, "failed %s at %lld\n", ts[i].text.c_str(),
                     static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                began.time_since_epoch())
                                                .count()));
      }
    }
    // A short pause between rounds: steady pressure, without exhausting ports or the server.
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  for (size_t i = 0; i < ts.size(); ++i)
    std::printf("%s ok=%ld fail=%ld\n", ts[i].text.c_str(), ok[i], fail[i]);
  return 0;
}

}  // namespace

// Sequential new connections for `seconds`: prints connections per second (each one a new
// flow, so each meets the policy path).
int rate(double seconds, Target t) {
  auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long ok = 0;
  long fail = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    // Blocking connect, then an abortive close (RST): no TIME_WAIT, so ports never run out.
    int fd = socket(t.addr.ss_family, SOCK_STREAM, 0);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bool good = connect(fd, reinterpret_cast<sockaddr*>(&t.addr), t.len) == 0;
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    (good ? ok : fail)++;
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%.1f connects/s ok=%ld fail=%ld\n", static_cast<double>(ok) / elapsed, ok, fail);
  return 0;
}

// `count` new connections one after another: prints the median and 99th percentile, in µs, of
// the time connect() takes (SYN out to SYN-ACK in: the first packet's way through the
// policy and back). "p50 P p99 Q fail=F".
int latency(int count, const Target& t) {
  std::vector<double> us;
  long fail = 0;
  for (int i = 0; i < count; ++i) {
    int fd = socket(t.addr.ss_family, SOCK_STREAM, 0);
    timeval tv{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    auto a = std::chrono::steady_clock::now();
    bool good = connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) == 0;
    auto b = std::chrono::steady_clock::now();
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    if (good) {
      us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
    } else {
      ++fail;
    }
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us.empty() ? 0.0 : us[static_cast<size_t>(q * static_cast<double>(us.size() - 1))];
  };
  std::printf("p50 %.1f p99 %.1f fail=%ld\n", at(0.5), at(0.99), fail);
  return 0;
}

// One connection streaming for `seconds`: prints the throughput in MB/s; exits 1 when the
// connection broke before the time was up.
int stream(double seconds, const Target& t) {
  int fd = socket(t.addr.ss_family, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) != 0) {
    std::printf("0 MB/s (connect failed)\n");
    return 1;
  }
  std::vector<char> buf(1 << 16, 'z');
  auto start = std::chrono::steady_clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  double bytes = 0;
  bool broken = false;
  while (std::chrono::steady_clock::now() < end) {
    ssize_t n = send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      broken = true;
      break;
    }
    bytes += static_cast<double>(n);
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  close(fd);
  if (broken) {
    std::printf("%.1f MB/s (the connection broke after %.2f s)\n", bytes / elapsed / 1e6, elapsed);
    return 1;
  }
  std::printf("%.1f MB/s\n", bytes / elapsed / 1e6);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && (std::strcmp(argv[1], "rate") == 0 || std::strcmp(argv[1], "stream") == 0)) {
    Target t;
    if (!parseTarget(argv[3], t)) return 2;
    return std::strcmp(argv[1], "rate") == 0 ? rate(std::atof(argv[2]), t)
                                             : stream(std::atof(argv[2]), t);
  }
  if (argc == 4 && std::strcmp(argv[1], "latency") == 0) {
    Target t;
    if (!parseTarget(argv[3], t)) return 2;
    return latency(std::atoi(argv[2]), t);
  }
  if (argc >= 2 && std::strcmp(argv[1], "sctp") == 0) return haveSctp() ? 0 : 1;
  if (argc >= 3 && std::strcmp(argv[1], "serve") == 0) {
    std::vector<int> ports;
    for (int i = 2; i < argc; ++i) ports.push_back(std::atoi(argv[i]));
    return serve(ports);
  }
  if (argc >= 3 && std::strcmp(argv[1], "probe") == 0) {
    std::vector<Target> ts;
    for (int i = 3; i < argc; ++i) {
      Target t;
      if (!parseTarget(argv[i], t)) {
        std::fprintf(stderr, "bad target %s\n", argv[i]);
        return 2;
      }
      ts.push_back(t);
    }
    return probe(std::atoi(argv[2]), ts);
  }
  if (argc >= 4 && std::strcmp(argv[1], "watch") == 0) {
    std::vector<Target> ts;
    for (int i = 4; i < argc; ++i) {
      Target t;
      if (!parseTarget(argv[i], t)) return 2;
      ts.push_back(t);
    }
    return watch(argv[2], std::atoi(argv[3]), ts);
  }
  std::fprintf(stderr,
               "usage: zw_probe serve PORT... | probe TIMEOUT_MS TARGET... | watch STOPFILE "
               "TIMEOUT_MS TARGET... | "
               "sctp\n");
  return 2;
}
