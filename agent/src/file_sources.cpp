// The two sources that read files: a directory of YAML and the CNI plugin's endpoint records.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "dir_watch.h"
#include "zonewall/agent/objects.h"
#include "zonewall/agent/sources.h"
#include "zonewall/policy/loader.h"

namespace zonewall::agent {
namespace {

namespace fs = std::filesystem;

// Nothing changes without an inotify event; the timeout only bounds how long a missed one
// (a watch lost to a queue overflow) could go unnoticed.
constexpr std::chrono::milliseconds kRescanEvery{30'000};

std::optional<std::string> readText(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    return std::nullopt;
  }
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A source that reads a directory whole: once at start (then it has synced), and again after
// every burst of changes inotify reports.
class WatchedDirectory : public Source {
 public:
  WatchedDirectory(const char* name, DirWatch watch, ClusterState& state)
      : name_(name), watch_(std::move(watch)), state_(state) {
    state_.expectSource(name_);
  }
  // Derived classes stop the thread in their own destructor: scan() is theirs.
  ~WatchedDirectory() override = default;

  void start() override {
    thread_ = std::thread([this] {
      scan();
      state_.markSynced(name_);
      while (watch_.wait(kRescanEvery) != DirWatch::Wake::kStopped) {
        scan();
      }
    });
  }
  void stop() override {
    if (thread_.joinable()) {
      watch_.stop();
      thread_.join();
    }
  }

 protected:
  virtual void scan() = 0;
  ClusterState& state() { return state_; }

 private:
  const char* name_;
  DirWatch watch_;
  ClusterState& state_;
  std::thread thread_;
};

class DirectorySource final : public WatchedDirectory {
 public:
  DirectorySource(std::string dir, DirWatch watch, ClusterState& state, Metrics& metrics)
      : WatchedDirectory("directory", std::move(watch), state),
        dir_(std::move(dir)),
        metrics_(metrics) {}
  ~DirectorySource() override { stop(); }

 private:
  struct FileState {
    std::string text;                     ///< what was last read
    std::map<ObjectKey, Object> objects;  ///< the last good content
  };

  void scan() override {
    std::vector<fs::path> paths;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir_, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      auto ext = it->path().extension();
      if (it->is_regular_file(ec) && (ext == ".yaml" || ext == ".yml")) {
        paths.push_back(it->path());
      }
    }
    std::sort(paths.begin(), paths.end());
    bool changed = false;
    std::map<std::string, FileState> next;
    for (const fs::path& p : paths) {
      auto text = readText(p);
      auto old = files_.find(p.string());
      if (!text) {
        if (old != files_.end()) next.insert(*old);  // mid-rename: keep what it was
        continue;
      }
      if (old != files_.end() && old->second.text == *text) {
        next.insert(*old);
        continue;
      }
      changed = true;
      FileState fresh{*text, {}};
      if (load(p.string(), *text, fresh.objects)) {
        next.emplace(p.string(), std::move(fresh));
      } else if (old != files_.end()) {
        old->second.text = *text;  // do not report the same errors again until it changes
        next.insert(*old);
      } else {
        next.emplace(p.string(), FileState{*text, {}});
      }
    }
    changed = changed || next.size() != files_.size();
    files_ = std::move(next);
    if (!changed && scanned_) {
      return;
    }
    scanned_ = true;
    std::map<ObjectKey, Object> all;
    for (auto& [file, fs_state] : files_) {
      for (const auto& [key, obj] : fs_state.objects) {
        if (!all.insert({key, obj}).second) {
          spdlog::warn("{}: {} {} is defined again; the first definition is kept", file,
                       kindName(key.first), key.second);
        }
      }
    }
    spdlog::info("directory {}: {} files, {} objects", dir_, files_.size(), all.size());
    state().replaceAll(std::move(all));
  }

  // The objects of one file, or false (each error logged) when it has errors.
  bool load(const std::string& file, const std::string& text, std::map<ObjectKey, Object>& out) {
    policy::Store store;
    Diagnostics diags;
    policy::loadSources(policy::splitDocuments({file, text}), store, diags);
    if (diags.hasErrors()) {
      diags.sort();
      for (const Diagnostic& d : diags.all()) {
        if (d.severity == Severity::kError) {
          spdlog::error("{} (the file's last good content stays enforced)", d.str());
        }
      }
      metrics_.rejected.Add({{"kind", "file"}}).Increment();
      return false;
    }
    out = objectsOf(std::move(store));
    return true;
  }

  const std::string dir_;
  Metrics& metrics_;
  std::map<std::string, FileState> files_;
  bool scanned_ = false;
};

class EndpointSource final : public WatchedDirectory {
 public:
  EndpointSource(std::string dir, DirWatch watch, ClusterState& state)
      : WatchedDirectory("endpoints", std::move(watch), state), dir_(std::move(dir)) {}
  ~EndpointSource() override { stop(); }

 private:
  void scan() override {
    std::map<std::string, cni::EndpointRecord> records;
    for (auto& r : cni::readEndpoints(dir_)) {
      std::string file = cni::endpointFileName(r.network, r.container_id, r.ifname);
      records.emplace(std::move(file), std::move(r));
    }
    state().replaceEndpoints(std::move(records));
  }

  const std::string dir_;
};

}  // namespace

std::expected<std::unique_ptr<Source>, Error> directorySource(const std::string& dir,
                                                              ClusterState& state,
                                                              Metrics& metrics) {
  auto watch = DirWatch::open(dir, /*recursive=*/true);
  if (!watch) {
    return std::unexpected(watch.error());
  }
  return std::make_unique<DirectorySource>(dir, std::move(*watch), state, metrics);
}

std::expected<std::unique_ptr<Source>, Error> endpointSource(const std::string& dir,
                                                             ClusterState& state) {
  auto watch = DirWatch::open(dir, /*recursive=*/false);
  if (!watch) {
    return std::unexpected(watch.error());
  }
  return std::make_unique<EndpointSource>(dir, std::move(*watch), state);
}

}  // namespace zonewall::agent
