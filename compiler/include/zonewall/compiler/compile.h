// The compiler: lowered program + inventory → one node's classification table.
#pragma once

#include <expected>
#include <string>

#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/table.h"
#include "zonewall/policy/diagnostic.h"

namespace zonewall::compiler {

/// Compiles the table of `node` (pods whose spec.nodeName is `node`). Deterministic: the same
/// inputs give an identical table. Fails only past the table's fixed limits (65535 remote
/// classes per family).
std::expected<NodeTable, policy::Error> compileNode(const Program& program,
                                                    const Inventory& inventory,
                                                    const std::string& node);

}  // namespace zonewall::compiler
