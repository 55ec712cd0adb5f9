// What bytes a rule becomes: a Rule (ruleset.h) as libnftnl expressions, and back as the
// expressions' text, which is how two tables' skeletons are compared.
#pragma once

#include <libnftnl/rule.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "c_handle.h"
#include "zonewall/dataplane/masquerade.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

/// Appends `rule`'s expressions to `r`; `set_ids` names the sets created in the same batch
/// (a lookup of one carries its id; 0 for a set that already exists).
void encodeRule(nftnl_rule* r, const Rule& rule,
                const std::map<std::string, std::uint32_t>& set_ids);

/// The expressions of a rule as libnftnl prints them, one string per expression, normalized
/// where a kernel dump differs from what we build (live counter values, zero lookup flags).
std::vector<std::string> exprsOf(const nftnl_rule* r);

/// The masquerade table's rules (masquerade.h), in order, each with its nft text.
struct MasqueradeRule {
  NftnlRulePtr rule;
  std::string text;
};
std::vector<MasqueradeRule> masqueradeRules(const MasqueradeSpec& spec);

}  // namespace zonewall::dataplane
