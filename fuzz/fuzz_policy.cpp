// The YAML loader, every kind (multi-document, `kind: List`), through to what runs on whatever
// loads: cross-document validation, lint, lowering, and a compile of every node's table. An
// input either loads or is refused with located errors; nothing crashes, leaks or hangs.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/lint.h"
#include "zonewall/compiler/program.h"
#include "zonewall/policy/loader.h"

namespace zw = zonewall;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  zw::policy::SourceText source{"fuzz.yaml",
                                std::string(reinterpret_cast<const char*>(data), size)};
  zw::policy::Store store;
  zw::Diagnostics diags;
  zw::policy::loadSources(zw::policy::splitDocuments(source), store, diags);
  zw::policy::validateStore(store, diags);
  for (const auto& d : diags.all()) {
    // Every finding names the file it is about and says what is wrong.
    if (d.loc.file != source.name || d.message.empty()) std::abort();
  }
  if (diags.hasErrors()) return 0;
  zw::compiler::Inventory inventory(store);
  zw::compiler::lint(store, inventory, diags);
  zw::compiler::Program program = zw::compiler::lower(store);
  std::set<std::string> nodes;
  for (const auto& p : store.pods) nodes.insert(p.node);
  for (const auto& node : nodes) {
    // Past the table's fixed limits is an error, never a crash.
    (void)zw::compiler::compileNode(program, inventory, node);
  }
  return 0;
}
