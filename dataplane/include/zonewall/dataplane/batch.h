// Which transaction carries what: a Ruleset (or an update of one) as nf_tables netlink
// batches, built with libnftnl and libmnl but pure (bytes out, no socket), and batches parsed
// back (for tests and for naming what the kernel refused).
//
// Every batch keeps, for every message, what it carries, so that a kernel error (which names
// the message by sequence number, and through the extended ack the attribute) is reported as
// the set, element or rule it came from, and the policy rule behind it. Each batch is one
// transaction: the kernel applies all of it or none.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

/// What one message of a batch does: plain data to assert on, and its text for reports.
struct BatchMessage {
  enum class Op : std::uint8_t {
    kBegin,
    kEnd,
    kAddTable,
    kDeleteTable,
    kAddChain,
    kDeleteChain,
    kFlushChain,
    kAddSet,
    kDeleteSet,
    kAddElements,
    kDeleteElements,
    kAddRule,
  };
  Op op = Op::kBegin;
  std::string object;            ///< the table, chain or set it acts on
  std::size_t rule = 0;          ///< kAddRule: the rule's index in its chain
  std::size_t elements = 0;      ///< kAddElements, kDeleteElements: how many
  std::optional<Element> first;  ///< ... the first of them (none: only an interval's end)
  std::string text;              ///< "add element 10.0.0.1 of set ingress_local4", for reports
};

struct Batch {
  std::vector<char> bytes;             ///< begin .. messages .. end
  std::uint32_t first_seq = 0;         ///< sequence number of the batch-begin message
  std::vector<BatchMessage> contents;  ///< by seq - first_seq
  /// The ruleset it was encoded from (not owned; commit it while that lives): when the kernel
  /// names the element it refused (its extended ack), the error names that element and the
  /// policy rule behind it, rather than only the message.
  const Ruleset* source = nullptr;
  /// It only adds: chains nothing leads to yet, sets no rule names yet, entries under keys the
  /// table does not have. No rule a packet in flight can run changes, so the next commit may
  /// follow it without waiting out a grace period (see Programmer).
  bool additive = false;
  size_t messages() const { return contents.size(); }
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

/// An update in up to four transactions, empty ones left out: chains, grow, switch, prune, as
/// diff.h draws them. `stale_sets` are maps of an unfinished swap that a rebuilt map's name
/// reuses (deleted first).
std::vector<Batch> encodeUpdate(const Ruleset& rs, const RulesetDiff& diff,
                                const std::vector<std::string>& stale_sets,
                                std::uint32_t first_seq);

/// A batch parsed back with libnftnl (no kernel): the objects it would create.
struct DecodedBatch {
  std::vector<std::string> tables;
  std::vector<std::string> chains;                                     ///< in message order
  std::map<std::string, std::vector<std::vector<std::string>>> rules;  ///< chain → expressions
  std::vector<SetDef> sets;  ///< `like`'s sets, in message order, with the elements the batch adds
};
std::expected<DecodedBatch, Error> decodeBatch(const Batch& batch, const Ruleset& like);

/// The element at `offset` of message `index` of `batch` (the attribute a kernel's extended
/// ack names) as "element … of set …, decided by <policy rule>"; nothing when it cannot be told.
std::optional<std::string> explainElement(const Batch& batch, std::uint32_t index,
                                          std::uint32_t offset);

/// The expressions of a rule as libnftnl prints them, one string per expression: how the
/// skeleton of two tables is compared.
std::vector<std::string> ruleExpressions(const Rule& rule);

/// Human-readable lines for a set of changes ("+ ingress4_exact 10.0.0.1 . 0x... : goto ...").
std::vector<std::string> describeChanges(const Ruleset& rs, const std::vector<SetChange>& changes);

}  // namespace zonewall::dataplane
