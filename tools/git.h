// `git:REV:PATH` inputs: policy files as they are at a revision, read with `git show`, so CI
// can compare a pull request with its base branch without a second checkout.
#pragma once

#include <expected>
#include <string>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/policy/loader.h"

namespace zonewall::tools {

/// Whether `path` is a `git:REV:PATH` input.
bool isGitPath(const std::string& path);

/// The files of `git:REV:PATH` (PATH a file, or a directory whose *.yaml and *.yml files are
/// read recursively in sorted order), each named "git:REV:FILE". Runs git in the current
/// directory; an unknown revision or path is an error carrying git's own message.
std::expected<std::vector<policy::SourceText>, Error> readGitPath(const std::string& path);

}  // namespace zonewall::tools
