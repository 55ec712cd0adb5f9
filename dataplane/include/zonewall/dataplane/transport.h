// What the kernel holds and how it is told: the Transport owns the netlink socket, commits
// batches and reads a table back as a plain snapshot. It is the one seam where tests put a
// fake kernel (everything above it, the Programmer included, runs without root).
#pragma once

#include <cstddef>
#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "zonewall/base/error.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/ruleset.h"

namespace zonewall::dataplane {

/// What makes two sets of the same name the same kind of set.
struct SetShape {
  std::uint32_t flags = 0;  ///< NFT_SET_MAP, NFT_SET_INTERVAL, NFT_SET_CONCAT
  std::uint32_t key_len = 0;
  std::uint32_t data_type = 0;  ///< maps
  friend bool operator==(const SetShape&, const SetShape&) = default;
};

/// One set element as the kernel holds it (an rbtree range is two: a start and an end).
struct ElementBytes {
  std::vector<unsigned char> key;
  std::vector<unsigned char> key_end;  ///< a pipapo range's last key
  std::uint32_t flags = 0;             ///< NFT_SET_ELEM_INTERVAL_END
  Verdict verdict;                     ///< maps
};

struct SetSnapshot {
  SetShape shape;
  std::vector<ElementBytes> elements;
};

/// One table as read back, plain data: what the drift analysis (drift.h) compares with the
/// ruleset that should be there.
struct TableSnapshot {
  bool exists = false;
  bool aside_exists = false;     ///< asideTable(table) exists: an interrupted replace's copy
  std::set<std::string> chains;  ///< every chain of the table
  std::map<std::string, std::vector<std::vector<std::string>>> rules;  ///< by chain: exprsOf
  std::map<std::string, SetSnapshot> sets;                             ///< every set, by name
};

/// Builds a TableSnapshot of table `table` from the kernel's answers to dump requests (pure):
/// netlink messages as read from the socket, told apart by their type (tables, chains, rules,
/// sets, set elements); other tables' messages and other types are ignored, and so is a
/// message libnftnl cannot parse (what it would have shown is then missing, which the drift
/// analysis reports). The Transport feeds it each answer; the fuzz target (fuzz/) garbage: no
/// input makes it crash or loop.
class DumpDecoder {
 public:
  explicit DumpDecoder(std::string table) : table_(std::move(table)) {}
  /// One message (`len`: the bytes available at `msg`; a message claiming more is ignored).
  void add(const void* msg, std::size_t len);
  /// Every whole message in `bytes`, in order.
  void addAll(const void* bytes, std::size_t len);
  TableSnapshot& snapshot() { return snap_; }

 private:
  std::string table_;
  TableSnapshot snap_;
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Sends the batch and waits for the kernel's verdict on every message.
  virtual std::expected<void, Error> commit(const Batch& batch) = 0;
  /// Reads table `table` of family inet back, and whether its aside copy exists.
  virtual std::expected<TableSnapshot, Error> read(const std::string& table) = 0;
};

/// The real kernel, in the network namespace at `netns_path` (empty: the current one).
std::expected<std::unique_ptr<Transport>, Error> openNetlink(const std::string& netns_path = "");

}  // namespace zonewall::dataplane
