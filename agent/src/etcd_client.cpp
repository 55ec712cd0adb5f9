#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "zonewall/agent/base64.h"
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

// The gateway's int64s are JSON strings; a field at its default is absent.
std::int64_t int64Of(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_string()) return std::stoll(it->get<std::string>());
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return 0;
}

std::string bytesOf(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return base64Decode(it->get<std::string>()).value_or("");
}

EtcdClient::KeyValue kvOf(const json& j) {
  return {bytesOf(j, "key"), bytesOf(j, "value"), int64Of(j, "lease"), int64Of(j, "mod_revision")};
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
  json j = json::parse(*body, nullptr, false);
  if (j.contains("error") && !j["error"].get<std::string>().empty()) {
    return fail(Error::Code::kIo, "etcd lease grant: " + j["error"].get<std::string>());
  }
  return Lease{int64Of(j, "ID"), int64Of(j, "TTL")};
}

std::expected<std::int64_t, Error> EtcdClient::keepAlive(std::int64_t id) {
  auto body = call("/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump());
  if (!body) return std::unexpected(body.error());
  json j = json::parse(*body, nullptr, false);
  // {"result":{"ID":...,"TTL":"30"}}; an expired lease comes back without TTL.
  return j.contains("result") ? int64Of(j["result"], "TTL") : 0;
}

std::expected<std::int64_t, Error> EtcdClient::timeToLive(std::int64_t id) {
  auto body = call("/v3/lease/timetolive", json{{"ID", std::to_string(id)}}.dump());
  if (!body) return std::unexpected(body.error());
  json j = json::parse(*body, nullptr, false);
  return std::max<std::int64_t>(0, int64Of(j, "TTL"));
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
  json j = json::parse(*body, nullptr, false);
  if (j.value("succeeded", false)) return true;
  if (current != nullptr) {
    for (const json& r : j.value("responses", json::array())) {
      if (r.contains("response_range")) {
        for (const json& kv : r["response_range"].value("kvs", json::array())) *current = kvOf(kv);
      }
    }
  }
  return false;
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
  json j = json::parse(*body, nullptr, false);
  for (const json& kv : j.value("kvs", json::array())) return kvOf(kv);
  return std::nullopt;
}

std::expected<EtcdClient::Range, Error> EtcdClient::range(const std::string& prefix) {
  auto body = call(
      "/v3/kv/range",
      json{{"key", base64Encode(prefix)}, {"range_end", base64Encode(prefixEnd(prefix))}}.dump());
  if (!body) return std::unexpected(body.error());
  json j = json::parse(*body, nullptr, false);
  Range r;
  r.revision = j.contains("header") ? int64Of(j["header"], "revision") : 0;
  for (const json& kv : j.value("kvs", json::array())) r.kvs.push_back(kvOf(kv));
  return r;
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
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("result")) return true;
    const json& r = j["result"];
    if (r.value("canceled", false)) {
      compacted = int64Of(r, "compact_revision") != 0;
      return false;
    }
    for (const json& e : r.value("events", json::array())) {
      WatchEvent ev;
      ev.deleted = e.value("type", std::string("PUT")) == "DELETE";
      ev.kv = kvOf(e.value("kv", json::object()));
      if (ev.deleted && e.contains("prev_kv")) ev.kv.value = bytesOf(e["prev_kv"], "value");
      ev.revision = ev.kv.mod_revision;
      next = std::max(next, ev.revision + 1);
      if (!on_event(ev)) return false;
    }
    // A progress notification (no events, not the creation) says the watch has caught up to
    // its header's revision: resume after it.
    if (!r.contains("events") && !r.value("created", false) && r.contains("header")) {
      next = std::max(next, int64Of(r["header"], "revision") + 1);
    }
    return true;
  };
  auto status = http_.stream("/v3/watch", on_line, stop, idle, nullptr,
                             json{{"create_request", create}}.dump());
  if (compacted) return kCompacted;
  if (!status) return std::unexpected(status.error());
  return next;
}

}  // namespace zonewall::agent
