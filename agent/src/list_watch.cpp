#include "list_watch.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

namespace zonewall::agent {
namespace {

using nlohmann::json;

// Pages of 500, as kubectl and client-go's reflector list.
constexpr int kPageSize = 500;
// The server ends a watch after this (a random 30-60 min without it); with bookmarks about
// once a minute a healthy stream is never silent for longer than `kIdle`.
constexpr int kWatchTimeoutSeconds = 290;
constexpr std::chrono::seconds kIdle{150};
// A missing CRD (Calico not installed) is looked for again this often.
constexpr std::chrono::seconds kCrdRetry{30};
constexpr std::chrono::milliseconds kBackoffMin{200};
constexpr std::chrono::milliseconds kBackoffMax{30'000};

}  // namespace

std::chrono::milliseconds Backoff::next() {
  auto d = delay_;
  delay_ = std::min(delay_ * 2, kBackoffMax);
  std::uniform_int_distribution<long> pick(d.count() / 2, d.count());
  return std::chrono::milliseconds(pick(rng_));
}
void Backoff::reset() { delay_ = kBackoffMin; }

std::string urlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

ListWatch::ListWatch(std::string path, std::string name, bool optional, const KubeConfig& config,
                     Metrics& metrics, const std::atomic<bool>& stop)
    : path_(std::move(path)),
      name_(std::move(name)),
      optional_(optional),
      client_(config),
      metrics_(metrics),
      stop_(stop) {}

void ListWatch::run(const ListWatchHandlers& h) {
  while (!stop_) {
    if (!list(h)) continue;
    watch(h);  // returns when a relist is needed, or on stop
  }
}

void ListWatch::pause(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!stop_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void ListWatch::onHttpError(long status, const std::string& body, std::chrono::seconds retry_after,
                            const char* what) {
  std::string msg = statusMessage(body);
  if (status == 401) {
    spdlog::warn("{} {}: 401 Unauthorized; re-reading the token", what, name_);
    client_.reloadToken();
  } else if (status == 403) {
    spdlog::error("{} {}: 403 Forbidden (RBAC): {}", what, name_, msg);
  } else {
    spdlog::warn("{} {}: HTTP {}: {}", what, name_, status, msg);
  }
  if (retry_after.count() > 0 && (status == 429 || status >= 500)) {
    pause(std::min<std::chrono::milliseconds>(retry_after, kBackoffMax));
  } else {
    pause(backoff_.next());
  }
}

// A full, paged list; true when it replaced what the handlers knew.
bool ListWatch::list(const ListWatchHandlers& h) {
  metrics_.relists.Add({{"resource", name_}}).Increment();
  std::string cont;
  size_t count = 0;
  h.list_begin();
  for (;;) {
    std::string path = fmt::format("{}?limit={}", path_, kPageSize);
    if (!cont.empty()) path += "&continue=" + urlEncode(cont);
    auto resp = client_.request(path, stop_);
    if (stop_) return false;
    if (!resp) {
      spdlog::warn("list {}: {}", name_, resp.error().str());
      pause(backoff_.next());
      return false;
    }
    if (resp->status == 404 && optional_) {
      // Not installed: nothing of this kind exists. Synced (empty), looked for again later.
      if (!absent_logged_) {
        spdlog::info("list {}: the API server does not serve it (CRD not installed)", name_);
        h.absent();
        absent_logged_ = true;
      }
      pause(kCrdRetry);
      return false;
    }
    if (resp->status == 410) {  // the continue token expired: from scratch
      spdlog::info("list {}: continue token expired; listing again", name_);
      return false;
    }
    if (resp->status != 200) {
      onHttpError(resp->status, resp->body, resp->retry_after, "list");
      return false;
    }
    auto page = parseKubeListPage(resp->body);
    if (!page) {
      spdlog::error("list {}: {}", name_, page.error().str());
      pause(backoff_.next());
      return false;
    }
    for (const json& item : page->items) h.list_item(item);
    count += page->items.size();
    rv_ = page->resource_version;
    cont = page->continue_token;
    if (cont.empty()) break;
  }
  absent_logged_ = false;
  backoff_.reset();
  spdlog::info("list {}: {} objects at resourceVersion {}", name_, count, rv_);
  h.list_end();
  return true;
}

// Handles one watch event; false when the watch must end (relist).
bool ListWatch::event(std::string_view line, bool& relist, const ListWatchHandlers& h) {
  auto ev = parseKubeWatchEvent(line);
  if (!ev) {
    spdlog::warn("watch {}: not an event: {}", name_, std::string(line.substr(0, 200)));
    return true;
  }
  if (ev->type == "ERROR") {
    // A Status inside a 200 stream; 410 means the resourceVersion was compacted away.
    if (ev->error_code == 410) {
      spdlog::info("watch {}: resourceVersion {} expired; listing again", name_, rv_);
      relist = true;
    } else {
      spdlog::warn("watch {}: error event: {}", name_,
                   ev->object.dump(-1, ' ', false, json::error_handler_t::replace).substr(0, 300));
    }
    return false;
  }
  if (!ev->resource_version.empty()) {
    rv_ = ev->resource_version;
  }
  if (ev->type == "ADDED" || ev->type == "MODIFIED" || ev->type == "DELETED") {
    h.event(ev->type, ev->object);
  }
  return true;  // BOOKMARK: the resourceVersion only
}

void ListWatch::watch(const ListWatchHandlers& h) {
  for (bool first = true; !stop_; first = false) {
    if (!first) {
      metrics_.watch_restarts.Add({{"resource", name_}}).Increment();
    }
    std::string path =
        fmt::format("{}?watch=1&resourceVersion={}&allowWatchBookmarks=true&timeoutSeconds={}",
                    path_, urlEncode(rv_), kWatchTimeoutSeconds);
    bool relist = false;
    std::string body;
    auto status = client_.stream(
        path, [&](std::string_view line) { return event(line, relist, h); }, stop_, kIdle, &body);
    if (stop_ || relist) {
      return;
    }
    if (!status) {
      spdlog::warn("watch {}: {}", name_, status.error().str());
      pause(backoff_.next());
      continue;
    }
    if (*status == 410) {
      spdlog::info("watch {}: resourceVersion {} expired; listing again", name_, rv_);
      return;
    }
    if (*status != 200) {
      onHttpError(*status, body, std::chrono::seconds(0), "watch");
      if (*status == 404) return;  // the CRD went away: list (reads as empty)
      continue;
    }
    backoff_.reset();  // a stream that ended normally: resume from rv_ at once
  }
}

}  // namespace zonewall::agent
