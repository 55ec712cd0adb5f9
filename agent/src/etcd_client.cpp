#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "zonewall/agent/base64.h"
#include "zonewall/agent/decode.h"
#include "zonewall/agent/etcd.h"

namespace zonewall::agent {
namespace {

using json = nlohmann::json;

KubeConfig httpConfig(const EtcdEndpoint& e) {
  KubeConfig c;
  c.server = e.url;
  c.ca_file = e.ca_file;
  c.cert_file = e.cert_file;
  c.key_file = e.key_file;
  return c;
}

}  // namespace

std::string prefixEnd(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(prefix.back());
    if (last < 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');  // every key
}

EtcdClient::EtcdClient(const EtcdEndpoint& endpoint) : http_(httpConfig(endpoint)) {}

std::expected<std::string, Error> EtcdClient::call(const std::string& path,
                                                   const std::string& body) {
  auto r = http_.request(path, never_, "POST", body);
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) {
    return fail(Error::Code::kIo,
                fmt::format("etcd {}: HTTP {}: {}", path, r->status, r->body.substr(0, 200)));
  }
  return std::move(r->body);
}

std::expected<EtcdClient::Lease, Error> EtcdClient::grant(std::int64_t ttl_seconds) {
  auto body = call("/v3/lease/grant", json{{"TTL", ttl_seconds}}.dump());
  if (!body) return std::unexpected(body.error());
  return etcd_reply::grant(*body);
}

std::expected<std::int64_t, Error> EtcdClient::keepAlive(std::int64_t id) {
  auto body = call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump());
  if (!body) return std::unexpected(body.error());
  return etcd_reply::keepAlive(*body);
}

std::expected<std::int64_t, Error> EtcdClient::timeToLive(std::int64_t id) {
  auto body = call("/v3/lease/timetolive", json{{"ID", std::to_string(id)}}.dump());
  if (!body) return std::unexpected(body.error());
  return etcd_reply::timeToLive(*body);
}

std::expected<void, Error> EtcdClient::revoke(std::int64_t id) {
  auto body = call("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump());
  if (!body) return std::unexpected(body.error());
  return {};
}

std::expected<bool, Error> EtcdClient::createIfAbsent(const std::string& key,
                                                      const std::string& value, std::int64_t lease,
                                                      KeyValue* current) {
  const std::string k = base64Encode(key);
  json put = {{"key", k}, {"value", base64Encode(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  json txn = {
      {"compare", json::array({{{"target", "CREATE"}, {"key", k}, {"create_revision", "0"}}})},
      {"success", json::array({{{"request_put", put}}})},
      {"failure", json::array({{{"request_range", {{"key", k}}}}})}};
  auto body = call("/v3/kv/txn", txn.dump());
  if (!body) return std::unexpected(body.error());
  return etcd_reply::txn(*body, current);
}

std::expected<void, Error> EtcdClient::put(const std::string& key, const std::string& value,
                                           std::int64_t lease) {
  json req = {{"key", base64Encode(key)}, {"value", base64Encode(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  auto body = call("/v3/kv/put", req.dump());
  if (!body) return std::unexpected(body.error());
  return {};
}

std::expected<std::optional<EtcdClient::KeyValue>, Error> EtcdClient::get(const std::string& key) {
  auto body = call("/v3/kv/range", json{{"key", base64Encode(key)}}.dump());
  if (!body) return std::unexpected(body.error());
  auto r = etcd_reply::range(*body);
  if (!r) return std::unexpected(r.error());
  if (r->kvs.empty()) return std::nullopt;
  return std::move(r->kvs.front());
}

std::expected<EtcdClient::Range, Error> EtcdClient::range(const std::string& prefix) {
  auto body = call(
      "/v3/kv/range",
      json{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixEnd(prefix))}}.dump());
  if (!body) return std::unexpected(body.error());
  return etcd_reply::range(*body);
}

std::expected<void, Error> EtcdClient::del(const std::string& key) {
  auto body = call("/v3/kv/deleterange", json{{"key", base64Encode(key)}}.dump());
  if (!body) return std::unexpected(body.error());
  return {};
}

std::expected<std::int64_t, Error> EtcdClient::watch(
    const std::string& prefix, std::int64_t start_revision,
    const std::function<bool(const WatchEvent&)>& on_event, const std::atomic<bool>& stop,
    std::chrono::seconds idle) {
  json create = {{"key", base64Encode(prefix)},
                 {"range_end", base64Encode(prefixEnd(prefix))},
                 {"prev_kv", true},
                 {"progress_notify", true}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  std::int64_t next = start_revision;
  bool compacted = false;
  auto on_line = [&](std::string_view line) {
    auto m = etcd_reply::watchMessage(line);
    if (!m) return true;
    if (m->canceled) {
      compacted = m->compact_revision != 0;
      return false;
    }
    for (const WatchEvent& ev : m->events) {
      next = std::max(next, ev.revision + 1);
      if (!on_event(ev)) return false;
    }
    // After a progress notification, resume past the revision it reports.
    if (m->progress_revision > 0) next = std::max(next, m->progress_revision + 1);
    return true;
  };
  auto status = http_.stream("/v3/watch", on_line, stop, idle, nullptr,
                             json{{"create_request", create}}.dump());
  if (compacted) return kCompacted;
  if (!status) return std::unexpected(status.error());
  return next;
}

}  // namespace zonewall::agent
