// Loading YAML into the typed model.
#pragma once

#include <string>
#include <vector>

#include "zonewall/policy/diagnostic.h"
#include "zonewall/policy/model.h"

namespace zonewall::policy {

/// One input text and the name it is reported under.
struct SourceText {
  std::string name;
  std::string text;
};

/// Parses every document of every source into `store`; appends every problem to `diags`.
/// Pure: the caller reads files (see tools/), this only sees text.
void loadSources(const std::vector<SourceText>& sources, Store& store, Diagnostics& diags);

/// Checks across documents: duplicate names, policies in undefined tiers, pod IP clashes.
void validateStore(const Store& store, Diagnostics& diags);

}  // namespace zonewall::policy
