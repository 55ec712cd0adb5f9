#include "input.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "cli.h"
#include "git.h"

namespace zonewall::tools {
namespace {

namespace fs = std::filesystem;

// Reads PATH... (files, directories recursively for *.yaml/*.yml in sorted order, "-" for
// stdin, git:REV:PATH): every text, or the first thing that cannot be read.
std::expected<std::vector<policy::SourceText>, Error> readSources(
    const std::vector<std::string>& paths, std::istream& in) {
  std::vector<policy::SourceText> out;
  auto readFile = [&](const fs::path& p) -> std::expected<void, Error> {
    std::ifstream f(p, std::ios::binary);
    if (!f) {
      return fail(Error::Code::kIo, p.string() + ": cannot read", errno);
    }
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (f.bad()) {
      return fail(Error::Code::kIo, p.string() + ": read error");
    }
    out.push_back({p.string(), std::move(text)});
    return {};
  };
  for (const std::string& path : paths) {
    if (path == "-") {
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      out.push_back({"<stdin>", std::move(text)});
      continue;
    }
    if (isGitPath(path)) {
      auto texts = readGitPath(path);
      if (!texts) return std::unexpected(texts.error());
      for (auto& t : *texts) out.push_back(std::move(t));
      continue;
    }
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
      return fail(Error::Code::kIo, path + ": no such file or directory");
    }
    if (fs::is_directory(st)) {
      std::vector<fs::path> files;
      for (auto it = fs::recursive_directory_iterator(path, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        auto ext = it->path().extension();
        if (it->is_regular_file() && (ext == ".yaml" || ext == ".yml")) {
          files.push_back(it->path());
        }
      }
      if (ec) {
        return fail(Error::Code::kIo, fmt::format("{}: cannot list: {}", path, ec.message()));
      }
      std::sort(files.begin(), files.end());
      for (const auto& f : files) {
        if (auto ok = readFile(f); !ok) {
          return std::unexpected(ok.error());
        }
      }
      continue;
    }
    if (auto ok = readFile(path); !ok) {
      return std::unexpected(ok.error());
    }
  }
  return out;
}

// Parses the documents on every core: YAML parsing is most of a large lint's time. Each
// worker takes a contiguous run of documents; results merge in input order, so the outcome
// is the same as a sequential load.
void loadParallel(const std::vector<policy::SourceText>& sources, policy::Store& store,
                  Diagnostics& diags) {
  std::vector<policy::SourceText> docs;
  size_t bytes = 0;
  for (const auto& src : sources) {
    for (auto& d : policy::splitDocuments(src)) {
      bytes += d.text.size();
      docs.push_back(std::move(d));
    }
  }
  // Below ~256 KiB a thread costs more than it saves.
  size_t workers =
      bytes < (256u << 10) ? 1 : std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 8);
  workers = std::min(workers, docs.size());
  if (workers <= 1) {
    policy::loadSources(docs, store, diags);
    return;
  }
  std::vector<policy::Store> stores(workers);
  std::vector<Diagnostics> found(workers);
  std::vector<std::thread> threads;
  size_t per = (docs.size() + workers - 1) / workers;
  for (size_t w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      size_t lo = w * per;
      size_t hi = std::min(docs.size(), lo + per);
      if (lo < hi) {
        std::vector<policy::SourceText> part(
            std::make_move_iterator(docs.begin() + static_cast<long>(lo)),
            std::make_move_iterator(docs.begin() + static_cast<long>(hi)));
        policy::loadSources(part, stores[w], found[w]);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (size_t w = 0; w < workers; ++w) {
    policy::mergeStore(store, std::move(stores[w]));
    diags.append(found[w]);
  }
}

}  // namespace

std::optional<Loaded> load(const std::vector<std::string>& paths, std::istream& in,
                           std::ostream& err) {
  if (paths.empty()) {
    err << "zonewall: no input: give files, directories or - for stdin\n";
    return std::nullopt;
  }
  auto sources = readSources(paths, in);
  if (!sources) {
    err << "zonewall: " << sources.error().str() << "\n";
    return std::nullopt;
  }
  Loaded loaded;
  loadParallel(*sources, loaded.store, loaded.diags);
  policy::validateStore(loaded.store, loaded.diags);
  return loaded;
}

std::expected<Loaded, int> loadValid(const std::vector<std::string>& paths, std::istream& in,
                                     std::ostream& err) {
  auto loaded = load(paths, in, err);
  if (!loaded) {
    return std::unexpected(kExitUsage);
  }
  if (!loaded->diags.hasErrors()) {
    return std::move(*loaded);
  }
  Diagnostics sorted = loaded->diags;
  sorted.sort();
  for (const auto& d : sorted.all()) {
    if (d.severity == Severity::kError) {
      err << d.str() << "\n";
    }
  }
  err << "zonewall: the input has errors; nothing was compiled\n";
  return std::unexpected(kExitFindings);
}

}  // namespace zonewall::tools
