// Names for groups of pods, the way people think of them: a namespace and the labels every pod
// of the group carries ("public/app=web"), "public/*" for a whole namespace, or the pods' names
// when labels do not tell the group apart from another one ("public/{web-1,web-2}").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zonewall/policy/model.h"

namespace zonewall::analysis {

class GroupNamer {
 public:
  explicit GroupNamer(const policy::Store& store) : store_(store) {}

  /// Registers a group (indices into store().pods, all of one namespace); returns its id.
  std::uint32_t add(std::vector<std::uint32_t> pods);
  /// The name of every group, distinct for distinct groups; call after the last add().
  std::vector<std::string> names() const;

 private:
  const policy::Store& store_;
  std::vector<std::vector<std::uint32_t>> groups_;
};

}  // namespace zonewall::analysis
