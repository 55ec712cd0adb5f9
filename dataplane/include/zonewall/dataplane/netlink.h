// Ruleset → nf_tables netlink batch (libnftnl), and the Transport that commits it (libmnl).
//
// encode() is pure: it returns the batch bytes and, for every message, what it carries, so
// that a kernel error (which names the message by sequence number) is reported as the set,
// element or rule it came from. Every change is one batch: the kernel applies all of it or
// none.
#pragma once

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "zonewall/dataplane/ruleset.h"
#include "zonewall/policy/diagnostic.h"

namespace zonewall::dataplane {

struct Batch {
  std::vector<char> bytes;             ///< begin .. messages .. end
  std::uint32_t first_seq = 0;         ///< sequence number of the batch-begin message
  std::vector<std::string> what;       ///< by seq - first_seq: a human description
  size_t messages() const { return what.size(); }
};

/// One element-level change of a set.
struct SetChange {
  std::string set;
  std::vector<Element> add;
  std::vector<Element> remove;
};

enum class TableMode : std::uint8_t {
  kCreate,   ///< create the table (fails if it exists)
  kReplace,  ///< delete the existing table and create it anew, in one transaction
};

/// The whole ruleset as one transaction.
Batch encodeRuleset(const Ruleset& rs, TableMode mode, std::uint32_t first_seq);

/// Element changes as one transaction (the skeleton must already match `rs`).
Batch encodeChanges(const Ruleset& rs, const std::vector<SetChange>& changes, std::uint32_t first_seq);

/// Owns the netlink socket; the one seam where tests may substitute the kernel.
class Transport {
 public:
  virtual ~Transport() = default;
  /// Sends the batch and waits for the kernel's verdict on every message.
  virtual std::expected<void, policy::Error> commit(const Batch& batch) = 0;
};

/// The real kernel, in the network namespace at `netns_path` (empty: the current one).
std::expected<std::unique_ptr<Transport>, policy::Error> openNetlink(const std::string& netns_path = "");

/// The element-level difference between two rulesets with the same skeleton; false when the
/// skeletons (chains, rules, set definitions) differ and only a full replace will do.
bool diffRulesets(const Ruleset& from, const Ruleset& to, std::vector<SetChange>& changes);

}  // namespace zonewall::dataplane
