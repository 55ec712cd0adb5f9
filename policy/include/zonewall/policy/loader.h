// Loading YAML into the typed model.
#pragma once

#include <string>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/policy/model.h"

namespace zonewall::policy {

/// One input text and the name it is reported under.
struct SourceText {
  std::string name;
  std::string text;
  int line_offset = 0;  ///< lines before `text` in the file `name` (for split documents)
};

/// Splits a multi-document source at its document markers (a line starting "---" begins a
/// document, one starting "..." ends it; YAML forbids both inside any scalar), so that
/// documents can be loaded independently (in parallel) and a syntax error costs only its own
/// document. Locations stay file-relative.
std::vector<SourceText> splitDocuments(const SourceText& source);

/// Appends everything in `from` to `into`, in order.
void mergeStore(Store& into, Store&& from);

/// Parses every document of every source into `store`; appends every problem to `diags`.
/// A document that is not a mapping (a scalar, or text yaml-cpp reads as nothing) is an error.
/// Pure: the caller reads files (see tools/), this only sees text.
void loadSources(const std::vector<SourceText>& sources, Store& store, Diagnostics& diags);

/// Checks across documents: duplicate names, policies in undefined tiers, pod IP clashes.
void validateStore(const Store& store, Diagnostics& diags);

}  // namespace zonewall::policy
