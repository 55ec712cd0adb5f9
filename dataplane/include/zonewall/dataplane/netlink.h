// Ruleset → nf_tables netlink batch (libnftnl), and the Transport that commits it (libmnl).
//
// encode() is pure: it returns the batch bytes and, for every message, what it carries, so
// that a kernel error (which names the message by sequence number) is reported as the set,
// element or rule it came from. Every change is one batch: the kernel applies all of it or
// none.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "zonewall/base/diagnostic.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

struct Batch {
  std::vector<char> bytes;        ///< begin .. messages .. end
  std::uint32_t first_seq = 0;    ///< sequence number of the batch-begin message
  std::vector<std::string> what;  ///< by seq - first_seq: a human description
  /// The ruleset it was encoded from (not owned; commit it while that lives): when the kernel
  /// names the element it refused (its extended ack), the error names that element and the
  /// policy rule behind it, rather than only the message.
  const Ruleset* source = nullptr;
  /// It only adds: chains nothing leads to yet, sets no rule names yet, entries under keys the
  /// table does not have. No rule a packet in flight can run changes, so the next commit may
  /// follow it without waiting out a grace period (see Programmer).
  bool additive = false;
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

/// A new table in two transactions. First the skeleton, every set, and the elements of the
/// range maps, the anti-spoofing set and the remote class maps, with the local address sets
/// left empty: nothing enters a direction chain yet. Then the local sets and verdict maps,
/// filled at once. In one transaction the range maps would be empty for a moment after the
/// base chains go live (the kernel publishes pipapo additions after the switch: a flow denied
/// by a range entry could pass), and the kernel would validate the whole table, walking every
/// element of every verdict map; the second transaction adds no jump, so nothing is walked.
std::vector<Batch> encodeCreate(const Ruleset& rs, std::uint32_t first_seq);

/// The table a replace builds aside ("zonewall_aside" for "zonewall").
std::string asideTable(const std::string& table);

/// The table `rs.table`, whatever it holds now (another skeleton, someone's edits), replaced
/// without a moment in which it judges less than both the old and the new table would: the
/// new table is built complete under asideTable() (any left-over of that name deleted first)
/// while the old one still judges, then the old one is deleted and the new one built in its
/// place (encodeCreate's two transactions) while the aside copy judges; the last transaction
/// deletes the aside copy. Four transactions; while two tables judge, a packet must pass both.
std::vector<Batch> encodeReplace(const Ruleset& rs, std::uint32_t first_seq);

/// Deletes `table` if it exists (a left-over aside table of an interrupted replace).
Batch encodeDropTable(const std::string& table, std::uint32_t first_seq);

/// A lookup chain's swapped maps (range and default map, see isSwappedSetName) rebuilt under
/// their alternate names, and the chain rewritten to name them.
struct MapSwap {
  std::vector<std::string> old_sets;
  std::vector<SetDef> replacements;  ///< named alternateSet(old), with every element
  ChainDef chain;                    ///< the lookup chain, its rules naming the replacements
  std::vector<SetChange> edits;      ///< what the rebuild changes, element by element (reports)
  /// Entries added to the old maps at the grow (they go whole at the prune, so they cost no
  /// pipapo delete), under keys those maps do not have. The class maps, the local address
  /// sets and this chain switch in one transaction, and a packet judged across it (its rules
  /// from the generation before, its sets read live) may reach the old maps with a class or
  /// a destination new with this update; the bridges give it the new table's answer: the
  /// range entries of new classes and of new local addresses, the defaults of new local
  /// addresses, and, where an address's default changes, the rest of the (protocol, port)
  /// space for each new class with the new default (the old default map keeps answering the
  /// old classes). Named like the old maps; empty when nothing needs them.
  std::vector<SetDef> bridges;
};

/// Chains that come and go on an update (a Log outcome's chain, a remote class's chain) and
/// swapped maps. No base chain is ever deleted and re-created on an update: that
/// would leave a moment in which the dying chain's rules see its sets emptied.
struct ChainChanges {
  std::vector<std::string> remove;
  std::vector<ChainDef> add;
  std::vector<MapSwap> swaps;
  std::vector<std::string> drop_sets;  ///< left-over maps of an unfinished swap
  bool empty() const { return remove.empty() && add.empty() && swaps.empty() && drop_sets.empty(); }
};

/// Gives `want`'s swapped maps the names `have` uses (after a swap, the alternate ones).
void alignSwappedSets(const Ruleset& have, Ruleset& want);

/// True for the chains that may come and go on an update (isLogChain, or a remote class's).
bool isDynamicChain(const std::string& name);
bool isLogChain(const std::string& name);

/// An update in up to four transactions (empty ones left out), so that a packet judged while
/// one of them commits — its rules from one generation, its set lookups partly from the next —
/// still gets the old verdict or the new one (the Programmer waits out a grace period after
/// each one that is not Batch::additive, so no packet sees more than one commit that changes
/// or removes anything):
///  1. chains (additive): new chains, with their rules. A chain made in a transaction runs no
///     rule for a packet of the generation before it, so nothing may lead to it in the same
///     one; the next commit copies its rules into that generation's slot too.
///  2. grow (additive): the rebuilt swapped maps, filled (a left-over map of the same name, listed
///  in
///     `stale_sets`, deleted first); verdict map entries under keys the old table does not
///     have, and the old maps' bridges (MapSwap::bridges). Nothing reaches them yet, or
///     they decide what the new table decides.
///  3. switch: verdict map entries whose verdict changes; the remote class maps, local address
///     sets and anti-spoofing set, whole; the lookup chains of swapped maps rewritten.
///  4. prune: entries the new table no longer has; the old swapped maps and left-over ones;
///     chains nothing jumps to any more.
std::vector<Batch> encodeUpdate(const Ruleset& rs, const std::vector<SetChange>& changes,
                                const ChainChanges& chains,
                                const std::vector<std::string>& stale_sets,
                                std::uint32_t first_seq);

/// What the kernel holds of our table, read back (for a one-shot apply's first diff and for
/// drift detection; never on the agent's update path).
struct KernelState {
  bool exists = false;
  /// The sets of the expected ruleset, with the elements the kernel holds (decoded with the
  /// expected set's kind); the chains and rules of the expected ruleset when the kernel's match
  /// them exactly, otherwise empty.
  Ruleset ruleset;
  bool skeleton_matches = false;
  std::vector<std::string> drift;       ///< human-readable differences of the skeleton
  std::vector<std::string> stale_sets;  ///< range maps no lookup references (an unfinished swap)
  bool aside_exists = false;  ///< asideTable() exists: a replace was interrupted (it judges too)
};

/// Owns the netlink socket; the one seam where tests may substitute the kernel.
class Transport {
 public:
  virtual ~Transport() = default;
  /// Sends the batch and waits for the kernel's verdict on every message.
  virtual std::expected<void, Error> commit(const Batch& batch) = 0;
  /// Reads table `expected.table` back, decoding it as `expected` describes it.
  virtual std::expected<KernelState, Error> read(const Ruleset& expected) = 0;
};

/// A batch parsed back with libnftnl (no kernel): the objects it would create.
struct DecodedBatch {
  std::vector<std::string> tables;
  std::vector<std::string> chains;                                     ///< in message order
  std::map<std::string, std::vector<std::vector<std::string>>> rules;  ///< chain → expressions
  std::vector<SetDef> sets;  ///< `like`'s sets, in message order, with the elements the batch adds
};
std::expected<DecodedBatch, Error> decodeBatch(const Batch& batch, const Ruleset& like);

/// The expressions of a rule as libnftnl prints them, one string per expression: how the
/// skeleton of two tables is compared.
std::vector<std::string> ruleExpressions(const Rule& rule);

/// The real kernel, in the network namespace at `netns_path` (empty: the current one).
std::expected<std::unique_ptr<Transport>, Error> openNetlink(const std::string& netns_path = "");

/// Human-readable lines for a set of changes ("+ ingress4_exact 10.0.0.1 . 0x... : goto ...").
std::vector<std::string> describeChanges(const Ruleset& rs, const std::vector<SetChange>& changes);

/// The element-level difference between two rulesets with the same skeleton; false when the
/// skeletons (chains, rules, set definitions) differ and only a full replace will do.
/// Log chains that differ go to `chains`; without it (nullptr) they make the skeletons differ.
/// `why` (if given) says what differs when it returns false.
bool diffRulesets(const Ruleset& from, const Ruleset& to, std::vector<SetChange>& changes,
                  ChainChanges* chains = nullptr, std::string* why = nullptr);

}  // namespace zonewall::dataplane
