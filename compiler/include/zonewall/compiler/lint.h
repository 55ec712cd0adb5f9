// The linter: findings about policies that load fine but probably do not mean what their
// authors think. The same path as compile, printing instead of committing.
#pragma once

#include "zonewall/base/diagnostic.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/policy/model.h"

namespace zonewall::compiler {

struct LintRule {
  const char* id;
  const char* summary;
};
/// Every rule id lint (and the loader) can report, for SARIF's rule table.
const std::vector<LintRule>& lintRules();

/// Appends findings to `diags`. Inventory checks run only when the store has pods or
/// namespaces.
void lint(const policy::Store& store, const Inventory& inventory, Diagnostics& diags);

}  // namespace zonewall::compiler
