// Loading YAML into the typed model.
#pragma once

#include <cstddef>
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

/// The largest document read. An API object is at most 3 MiB (the API server's request limit;
/// etcd stores at most 1.5 MiB), so only a `kind: List` (kubectl's output) comes near this.
/// yaml-cpp holds a document's tree in about 100 bytes of memory per byte of text: this bounds
/// the loader's memory to about 1.6 GiB, whatever the input.
inline constexpr size_t kMaxDocumentBytes = size_t{16} << 20;

/// Parses every document of every source into `store`; appends every problem to `diags`.
/// A document that is not a mapping (a scalar, or text yaml-cpp reads as nothing) is an error,
/// as is one larger than kMaxDocumentBytes (not parsed).
/// Pure: the caller reads files (see tools/), this only sees text.
void loadSources(const std::vector<SourceText>& sources, Store& store, Diagnostics& diags);

/// Checks across documents: duplicate names, policies in undefined tiers, pod IP clashes.
void validateStore(const Store& store, Diagnostics& diags);

}  // namespace zonewall::policy
