// Small file primitives the plugin's state is built from: every write is atomic.
#pragma once

#include <string>
#include <string_view>

#include "zonewall/cni/protocol.h"

namespace zonewall::cni {

/// mkdir -p with mode 0755.
Expected<void> makeDirs(const std::string& dir);
/// Writes `content` to dir/name through a temporary file and rename(2): readers see the old
/// file or the new one, never a part.
Expected<void> writeFileAtomic(const std::string& dir, std::string_view name,
                               std::string_view content);
/// Creates dir/name with `content` only if it does not exist, atomically (write aside, then
/// link(2)). Returns false when the name is taken.
Expected<bool> createFileExclusive(const std::string& dir, std::string_view name,
                                   std::string_view content);
/// The whole file, or nullopt if it does not exist or cannot be read.
std::optional<std::string> readFile(const std::string& path);
/// Removes the temporary files a killed writer left in `dir` (call with the dir's lock held).
void removeStaleTemporaries(const std::string& dir);

}  // namespace zonewall::cni
