#include "git.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "process.h"

namespace zonewall::tools {
namespace {

// Runs git with `args`: its standard output, or an error with what it wrote on stderr.
std::expected<std::string, Error> runGit(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"git"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto out = runProcess(argv);
  if (!out) return fail(Error::Code::kIo, "git " + args.front() + ": " + out.error().message);
  return out;
}

}  // namespace

bool isGitPath(const std::string& path) { return path.starts_with("git:"); }

std::expected<std::vector<policy::SourceText>, Error> readGitPath(const std::string& path) {
  const std::string spec = path.substr(4);
  const auto colon = spec.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
    return fail(Error::Code::kIo, path + ": expected git:REV:PATH");
  }
  const std::string rev = spec.substr(0, colon);
  const std::string where = spec.substr(colon + 1);
  // The revision must name a commit: `git ls-tree` of a bad one fails with git's reason.
  if (auto ok = runGit({"rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"});
      !ok) {
    return fail(Error::Code::kIo, fmt::format("{}: no such revision '{}'", path, rev));
  }
  auto listing = runGit({"ls-tree", "-r", "--name-only", "--full-name", rev, "--", where});
  if (!listing) return fail(Error::Code::kIo, path + ": " + listing.error().message);
  std::vector<std::string> files;
  std::istringstream lines(*listing);
  for (std::string f; std::getline(lines, f);) {
    const bool yaml = f.ends_with(".yaml") || f.ends_with(".yml");
    // A file named explicitly is read whatever its name; a directory's YAML files only.
    if (yaml || f == where || "./" + f == where) files.push_back(f);
  }
  if (files.empty()) {
    return fail(Error::Code::kIo, fmt::format("{}: no such file or directory at {}", path, rev));
  }
  std::sort(files.begin(), files.end());
  std::vector<policy::SourceText> out;
  for (const std::string& f : files) {
    auto text = runGit({"show", rev + ":" + f});
    if (!text) return fail(Error::Code::kIo, path + ": " + text.error().message);
    out.push_back({fmt::format("git:{}:{}", rev, f), std::move(*text)});
  }
  return out;
}

}  // namespace zonewall::tools
