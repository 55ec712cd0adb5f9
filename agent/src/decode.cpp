#include "zonewall/agent/decode.h"

#include <charconv>

#include "zonewall/agent/base64.h"

namespace zonewall::agent {
namespace {

using nlohmann::json;

// Typed field access that never throws: nullptr / the default when `j` is not an object, the
// field is absent, or it has another type.
const json* field(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}
std::string stringField(const json& j, const char* key) {
  const json* f = field(j, key);
  return f != nullptr && f->is_string() ? f->get<std::string>() : std::string();
}
bool boolField(const json& j, const char* key) {
  const json* f = field(j, key);
  return f != nullptr && f->is_boolean() && f->get<bool>();
}
const json& objectField(const json& j, const char* key) {
  static const json kEmpty = json::object();
  const json* f = field(j, key);
  return f != nullptr && f->is_object() ? *f : kEmpty;
}
const json& arrayField(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const json* f = field(j, key);
  return f != nullptr && f->is_array() ? *f : kEmpty;
}

json parseObject(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  return j.is_object() ? j : json();
}

}  // namespace

LineSplitter::Status LineSplitter::feed(std::string_view chunk,
                                        const std::function<bool(std::string_view)>& on_line) {
  // Only the new bytes are searched: a long line arriving in small chunks stays linear.
  size_t searched = buffer_.size();
  buffer_.append(chunk);
  size_t start = 0;
  for (size_t nl; (nl = buffer_.find('\n', searched)) != std::string::npos;
       start = searched = nl + 1) {
    if (!on_line(std::string_view(buffer_).substr(start, nl - start))) {
      buffer_.erase(0, nl + 1);
      return Status::kStopped;
    }
  }
  buffer_.erase(0, start);
  return buffer_.size() > kMaxLine ? Status::kTooLong : Status::kMore;
}

std::expected<KubeListPage, Error> parseKubeListPage(std::string_view body) {
  json page = parseObject(body);
  const json* items = field(page, "items");
  if (items == nullptr || !items->is_array()) {
    return fail(Error::Code::kIo, "the response is not a list (no items array)");
  }
  KubeListPage out;
  out.items = std::move(page["items"]);
  const json& meta = objectField(page, "metadata");
  out.resource_version = stringField(meta, "resourceVersion");
  out.continue_token = stringField(meta, "continue");
  return out;
}

std::optional<KubeWatchEvent> parseKubeWatchEvent(std::string_view line) {
  json ev = parseObject(line);
  if (field(ev, "type") == nullptr || field(ev, "object") == nullptr) return std::nullopt;
  KubeWatchEvent out;
  out.type = stringField(ev, "type");
  out.object = std::move(ev["object"]);
  out.resource_version = stringField(objectField(out.object, "metadata"), "resourceVersion");
  if (const json* code = field(out.object, "code"); code != nullptr && code->is_number_integer()) {
    out.error_code = code->get<long>();
  }
  return out;
}

std::string statusMessage(std::string_view body) {
  json j = parseObject(body);
  if (const json* m = field(j, "message"); m != nullptr && m->is_string()) {
    return m->get<std::string>();
  }
  return std::string(body.substr(0, 200));
}

namespace etcd_reply {
namespace {

std::int64_t int64Field(const json& j, const char* key) {
  const json* f = field(j, key);
  if (f == nullptr) return 0;
  if (f->is_number_integer()) return f->get<std::int64_t>();
  if (!f->is_string()) return 0;
  const auto& s = f->get_ref<const std::string&>();
  std::int64_t v = 0;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), v);
  return err == std::errc() && end == s.data() + s.size() ? v : 0;
}

std::string bytesField(const json& j, const char* key) {
  return base64Decode(stringField(j, key)).value_or("");
}

KeyValue kvOf(const json& j) {
  return {bytesField(j, "key"), bytesField(j, "value"), int64Field(j, "lease"),
          int64Field(j, "mod_revision")};
}

// The reply as a JSON object, or the Error naming the call; a gateway error in its body too.
std::expected<json, Error> reply(std::string_view body, const char* call) {
  json j = parseObject(body);
  if (j.is_null()) {
    return fail(Error::Code::kIo, std::string("etcd ") + call + ": the reply is not a JSON object");
  }
  if (std::string e = stringField(j, "error"); !e.empty()) {
    return fail(Error::Code::kIo, std::string("etcd ") + call + ": " + e);
  }
  return j;
}

}  // namespace

std::expected<EtcdClient::Lease, Error> grant(std::string_view body) {
  auto j = reply(body, "lease grant");
  if (!j) return std::unexpected(j.error());
  EtcdClient::Lease lease{int64Field(*j, "ID"), int64Field(*j, "TTL")};
  if (lease.id == 0) return fail(Error::Code::kIo, "etcd lease grant: the reply has no lease ID");
  return lease;
}

std::expected<std::int64_t, Error> keepAlive(std::string_view body) {
  auto j = reply(body, "lease keepalive");
  if (!j) return std::unexpected(j.error());
  // {"result":{"ID":...,"TTL":"30"}}; an expired lease comes back without TTL.
  return std::max<std::int64_t>(0, int64Field(objectField(*j, "result"), "TTL"));
}

std::expected<std::int64_t, Error> timeToLive(std::string_view body) {
  auto j = reply(body, "lease timetolive");
  if (!j) return std::unexpected(j.error());
  return std::max<std::int64_t>(0, int64Field(*j, "TTL"));
}

std::expected<bool, Error> txn(std::string_view body, KeyValue* current) {
  auto j = reply(body, "txn");
  if (!j) return std::unexpected(j.error());
  if (boolField(*j, "succeeded")) return true;
  if (current != nullptr) {
    for (const json& r : arrayField(*j, "responses")) {
      for (const json& kv : arrayField(objectField(r, "response_range"), "kvs")) {
        *current = kvOf(kv);
      }
    }
  }
  return false;
}

std::expected<EtcdClient::Range, Error> range(std::string_view body) {
  auto j = reply(body, "range");
  if (!j) return std::unexpected(j.error());
  EtcdClient::Range r;
  r.revision = int64Field(objectField(*j, "header"), "revision");
  for (const json& kv : arrayField(*j, "kvs")) r.kvs.push_back(kvOf(kv));
  return r;
}

std::optional<WatchMessage> watchMessage(std::string_view line) {
  json j = parseObject(line);
  const json* result = field(j, "result");
  if (result == nullptr || !result->is_object()) return std::nullopt;
  const json& r = *result;
  WatchMessage m;
  if (boolField(r, "canceled")) {
    m.canceled = true;
    m.compact_revision = int64Field(r, "compact_revision");
    return m;
  }
  for (const json& e : arrayField(r, "events")) {
    EtcdClient::WatchEvent ev;
    ev.deleted = stringField(e, "type") == "DELETE";
    ev.kv = kvOf(objectField(e, "kv"));
    if (ev.deleted && field(e, "prev_kv") != nullptr) {
      ev.kv.value = bytesField(objectField(e, "prev_kv"), "value");
    }
    ev.revision = ev.kv.mod_revision;
    m.events.push_back(std::move(ev));
  }
  // A progress notification (no events, not the creation) says the watch has caught up to
  // its header's revision.
  if (field(r, "events") == nullptr && !boolField(r, "created")) {
    m.progress_revision = int64Field(objectField(r, "header"), "revision");
  }
  return m;
}

}  // namespace etcd_reply
}  // namespace zonewall::agent
