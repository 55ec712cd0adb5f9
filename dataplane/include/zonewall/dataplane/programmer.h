// Keeps the kernel's table equal to the rulesets it is given (the agent's core, and what
// `zonewall apply` / `verify --repair` run once).
//
// The committed state lives in memory: after a successful commit, the next plan diffs against
// what was committed and never reads the kernel (the update path). The kernel is read only
// when its state is unknown: the first plan, and the one after a failed commit (whose partial
// effects, such as a rebuilt range map that was never switched to, it must see). reread()
// forces a read (drift detection).
//
// After a commit that changes or removes anything there is an RCU grace period before the
// next: every packet the kernel was judging when it committed has been judged before the next
// one commits. The kernel reads a chain's rules, at each jump, from the slot of the generation
// the packet entered in, and a second commit overwrites that slot: a packet judged across two
// commits could mix three tables. With the wait, it sees at most one commit, which every
// update is built to survive (diff.h). A commit that only adds (Batch::additive) leaves
// nothing a packet in flight can run changed, so the next follows at once. Within a plan the
// wait is made between its transactions; after a plan it runs in the background, and the next
// plan's first commit waits only for what is left of it.
#pragma once

#include <expected>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/diff.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/transport.h"

namespace zonewall::dataplane {

class Programmer {
 public:
  explicit Programmer(Transport& transport) : transport_(transport) {}
  ~Programmer();
  Programmer(const Programmer&) = delete;
  Programmer& operator=(const Programmer&) = delete;

  struct Plan {
    enum class Kind : std::uint8_t {
      kNothing,  ///< the kernel holds this table already
      kCreate,   ///< no table yet
      kReplace,  ///< the skeleton differs (drift lists why): built aside, then in place
      kUpdate,   ///< element (and log chain, range map swap) changes
    };
    Kind kind = Kind::kNothing;
    Ruleset want;                         ///< the target, its range maps named as the kernel's are
    RulesetDiff diff;                     ///< kUpdate: what changes
    std::vector<std::string> stale_sets;  ///< range maps of an unfinished swap (kernel state)
    std::vector<std::string> drift;       ///< what a read of the kernel found different
    bool drop_aside = false;              ///< an interrupted replace's aside table is deleted
    bool read_kernel = false;             ///< this plan read the kernel
    bool empty() const { return kind == Kind::kNothing && !drop_aside; }
  };

  /// What bringing the kernel to `want` takes.
  std::expected<Plan, Error> plan(Ruleset want);

  /// Commits `plan` (from this programmer's last plan()); returns the transactions' message
  /// counts. On success the committed state is plan.want; on failure it is unknown, and the
  /// next plan reads the kernel. Taken by value: an agent moves its plan in, and the committed
  /// state takes the table without copying it.
  std::expected<std::vector<size_t>, Error> commit(Plan plan);

  /// Forgets the committed state: the next plan reads the kernel.
  void reread() { known_.reset(); }

  /// The state the next plan starts from, if known without a read.
  const std::optional<KernelState>& known() const { return known_; }

 private:
  Transport& transport_;
  std::optional<KernelState> known_;
  /// The grace period that follows the last commit; invalid before the first commit of this
  /// programmer (whose first commit waits one out: another process may have just committed).
  std::future<void> grace_;
  bool committed_ = false;
};

}  // namespace zonewall::dataplane
