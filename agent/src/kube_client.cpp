#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>

#include "zonewall/agent/base64.h"
#include "zonewall/agent/decode.h"
#include "zonewall/agent/kube.h"

namespace zonewall::agent {

namespace {

using Clock = std::chrono::steady_clock;

// Bound tokens are refreshed by the kubelet well before they expire; client-go re-reads
// them every minute, so does this.
constexpr std::chrono::seconds kTokenRefresh{60};

std::optional<std::string> readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    return std::nullopt;
  }
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::expected<KubeConfig, Error> inClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || port == nullptr || *host == '\0' || *port == '\0') {
    return fail(Error::Code::kInvalidInput,
                "in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
                "set (not in a pod? use --kubeconfig)");
  }
  KubeConfig c;
  std::string h = host;
  c.server = h.find(':') != std::string::npos ? fmt::format("https://[{}]:{}", h, port)
                                              : fmt::format("https://{}:{}", h, port);
  c.ca_file = sa_dir + "/ca.crt";
  c.token_file = sa_dir + "/token";
  auto token = readFile(c.token_file);
  if (!token) {
    return fail(Error::Code::kIo, "in-cluster config: cannot read " + c.token_file, errno);
  }
  c.token = trim(*token);
  return c;
}

std::expected<KubeConfig, Error> loadKubeconfig(const std::string& path,
                                                const std::string& context) {
  YAML::Node doc;
  try {
    doc = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return fail(Error::Code::kInvalidInput,
                fmt::format("{}:{}:{}: {}", path, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  auto named = [&](const char* list, const std::string& name, const char* inner) -> YAML::Node {
    if (YAML::Node l = doc[list]; l && l.IsSequence()) {
      for (const YAML::Node& item : l) {
        if (item["name"] && item["name"].Scalar() == name) return item[inner];
      }
    }
    return YAML::Node();
  };
  std::string ctx_name = context;
  if (ctx_name.empty() && doc["current-context"]) ctx_name = doc["current-context"].Scalar();
  YAML::Node ctx = named("contexts", ctx_name, "context");
  if (!ctx || !ctx.IsMap()) {
    return fail(Error::Code::kInvalidInput,
                fmt::format("{}: no context '{}' in contexts", path, ctx_name));
  }
  auto scalar = [](const YAML::Node& n, const char* key) {
    return n && n.IsMap() && n[key] && n[key].IsScalar() ? n[key].Scalar() : std::string();
  };
  YAML::Node cluster = named("clusters", scalar(ctx, "cluster"), "cluster");
  YAML::Node user = named("users", scalar(ctx, "user"), "user");
  if (!cluster || scalar(cluster, "server").empty()) {
    return fail(Error::Code::kInvalidInput,
                fmt::format("{}: context '{}': its cluster has no server", path, ctx_name));
  }
  KubeConfig c;
  c.server = scalar(cluster, "server");
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  // Relative file paths in a kubeconfig are relative to the file.
  std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));
  auto file = [&](std::string p) { return p.empty() || p[0] == '/' ? p : dir + "/" + p; };
  c.ca_file = file(scalar(cluster, "certificate-authority"));
  c.insecure = scalar(cluster, "insecure-skip-tls-verify") == "true";
  auto data = [&](const YAML::Node& n, const char* key,
                  std::string& into) -> std::expected<void, Error> {
    std::string v = scalar(n, key);
    if (v.empty()) return {};
    auto d = base64Decode(v);
    if (!d) {
      return fail(Error::Code::kInvalidInput, fmt::format("{}: {} is not base64", path, key));
    }
    into = std::move(*d);
    return {};
  };
  if (auto ok = data(cluster, "certificate-authority-data", c.ca_pem); !ok) {
    return std::unexpected(ok.error());
  }
  c.token = scalar(user, "token");
  c.token_file = file(scalar(user, "tokenFile"));
  c.cert_file = file(scalar(user, "client-certificate"));
  c.key_file = file(scalar(user, "client-key"));
  if (auto ok = data(user, "client-certificate-data", c.cert_pem); !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = data(user, "client-key-data", c.key_pem); !ok) {
    return std::unexpected(ok.error());
  }
  if (c.token.empty() && !c.token_file.empty()) {
    auto t = readFile(c.token_file);
    if (!t) {
      return fail(Error::Code::kIo, "cannot read token file " + c.token_file, errno);
    }
    c.token = trim(*t);
  }
  return c;
}

struct KubeClient::Impl {
  KubeConfig config;
  CURL* curl = nullptr;
  std::mutex token_mu;
  Clock::time_point token_read = Clock::now();

  // Per request.
  const std::atomic<bool>* stop = nullptr;
  const std::function<bool(std::string_view)>* on_line = nullptr;
  std::string buffer;  ///< a request's body
  LineSplitter lines;  ///< a stream's lines
  bool ended_by_reader = false;
  bool line_too_long = false;
  std::chrono::seconds retry_after{0};

  static size_t write(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<Impl*>(self_ptr);
    if (self->on_line == nullptr) {
      self->buffer.append(data, size * n);
      return size * n;
    }
    // Watch events end in '\n'; a write carries any fragment of them.
    switch (self->lines.feed(std::string_view(data, size * n), *self->on_line)) {
      case LineSplitter::Status::kMore:
        return size * n;
      case LineSplitter::Status::kStopped:
        self->ended_by_reader = true;
        return 0;  // aborts the transfer
      case LineSplitter::Status::kTooLong:
        self->line_too_long = true;
        return 0;
    }
    return 0;
  }
  static size_t header(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<Impl*>(self_ptr);
    std::string_view h(data, size * n);
    constexpr std::string_view kRetry = "retry-after:";
    if (h.size() > kRetry.size() &&
        std::equal(kRetry.begin(), kRetry.end(), h.begin(), [](char a, char b) {
          return a == std::tolower(static_cast<unsigned char>(b));
        })) {
      self->retry_after =
          std::chrono::seconds(std::atoi(std::string(h.substr(kRetry.size())).c_str()));
    }
    return size * n;
  }
  static int progress(void* self_ptr, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* self = static_cast<Impl*>(self_ptr);
    return self->stop != nullptr && *self->stop ? 1 : 0;  // non-zero aborts
  }

  void refreshToken(bool force) {
    std::lock_guard lock(token_mu);
    if (config.token_file.empty() || (!force && Clock::now() - token_read < kTokenRefresh)) {
      return;
    }
    if (auto t = readFile(config.token_file)) {
      config.token = trim(*t);
    } else {
      spdlog::warn("cannot re-read token file {}", config.token_file);
    }
    token_read = Clock::now();
  }

  // Sets up one request; returns the header list to free after it.
  curl_slist* prepare(const std::string& path, const std::atomic<bool>& stop_flag,
                      const std::string& method, const std::string& body,
                      const std::string& content_type) {
    refreshToken(false);
    curl_easy_reset(curl);
    std::string url = config.server + path;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // big lists may come gzipped
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 10L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
    if (!config.ca_pem.empty()) {
      curl_blob blob{config.ca_pem.data(), config.ca_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &blob);
    } else if (!config.ca_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_CAINFO, config.ca_file.c_str());
    }
    if (config.insecure) {
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!config.cert_pem.empty()) {
      curl_blob blob{config.cert_pem.data(), config.cert_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &blob);
    } else if (!config.cert_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLCERT, config.cert_file.c_str());
    }
    if (!config.key_pem.empty()) {
      curl_blob blob{config.key_pem.data(), config.key_pem.size(), CURL_BLOB_COPY};
      curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &blob);
    } else if (!config.key_file.empty()) {
      curl_easy_setopt(curl, CURLOPT_SSLKEY, config.key_file.c_str());
    }
    curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
    {
      std::lock_guard lock(token_mu);
      if (!config.token.empty()) {
        headers = curl_slist_append(headers, ("Authorization: Bearer " + config.token).c_str());
      }
    }
    if (method != "GET") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
      headers = curl_slist_append(headers, ("Content-Type: " + content_type).c_str());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
      curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, body.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Impl::write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &Impl::header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &Impl::progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, this);
    stop = &stop_flag;
    buffer.clear();
    lines = LineSplitter();
    ended_by_reader = false;
    line_too_long = false;
    retry_after = std::chrono::seconds(0);
    return headers;
  }
};

KubeClient::KubeClient(KubeConfig config) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  impl_->curl = curl_easy_init();
}

KubeClient::~KubeClient() { curl_easy_cleanup(impl_->curl); }

void KubeClient::reloadToken() { impl_->refreshToken(true); }

std::expected<KubeClient::Response, Error> KubeClient::request(const std::string& path,
                                                               const std::atomic<bool>& stop,
                                                               const std::string& method,
                                                               const std::string& body,
                                                               const std::string& content_type) {
  curl_slist* headers = impl_->prepare(path, stop, method, body, content_type);
  impl_->on_line = nullptr;
  curl_easy_setopt(impl_->curl, CURLOPT_TIMEOUT, 60L);
  CURLcode rc = curl_easy_perform(impl_->curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    return fail(Error::Code::kIo, fmt::format("{} {}: {}", method, path, curl_easy_strerror(rc)));
  }
  Response r;
  curl_easy_getinfo(impl_->curl, CURLINFO_RESPONSE_CODE, &r.status);
  r.body = std::move(impl_->buffer);
  r.retry_after = impl_->retry_after;
  return r;
}

std::expected<long, Error> KubeClient::stream(const std::string& path,
                                              const std::function<bool(std::string_view)>& on_line,
                                              const std::atomic<bool>& stop,
                                              std::chrono::seconds idle, std::string* error_body,
                                              const std::string& post_body) {
  curl_slist* headers = post_body.empty()
                            ? impl_->prepare(path, stop, "GET", "", "")
                            : impl_->prepare(path, stop, "POST", post_body, "application/json");
  long status = 0;
  std::string error_text;
  // Lines are handed on only for a 200: an error status's body is one JSON Status.
  std::function<bool(std::string_view)> gate = [&](std::string_view line) {
    if (status == 0) curl_easy_getinfo(impl_->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) return on_line(line);
    error_text.append(line).push_back('\n');
    return true;
  };
  impl_->on_line = &gate;
  curl_easy_setopt(impl_->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(impl_->curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(idle.count()));
  CURLcode rc = curl_easy_perform(impl_->curl);
  curl_slist_free_all(headers);
  impl_->on_line = nullptr;
  curl_easy_getinfo(impl_->curl, CURLINFO_RESPONSE_CODE, &status);
  if (impl_->line_too_long) {
    return fail(Error::Code::kIo,
                fmt::format("watch {}: a line longer than {} bytes", path, LineSplitter::kMaxLine));
  }
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && impl_->ended_by_reader)) {
    return fail(Error::Code::kIo, fmt::format("watch {}: {}", path, curl_easy_strerror(rc)));
  }
  if (status != 200 && error_body != nullptr) {
    *error_body = error_text + impl_->lines.rest();
  }
  return status;
}

}  // namespace zonewall::agent
