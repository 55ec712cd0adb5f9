// A cluster loaded from YAML text, compiled for every node, asked about connections. Every
// answer is checked twice: by the compiled tables and by the reference evaluator, which must
// agree.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "compiler/yaml_builders.h"
#include "zonewall/compiler/cluster.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/reference.h"
#include "zonewall/policy/loader.h"

namespace zonewall::compiler {

class Cluster {
 public:
  explicit Cluster(const std::string& yaml) {
    policy::loadSources({{"cluster.yaml", yaml}}, store_, diags_);
    policy::validateStore(store_, diags_);
    for (const auto& d : diags_.all()) {
      if (d.severity == zonewall::Severity::kError) ADD_FAILURE() << d.str();
    }
    build();
  }
  /// A store already loaded (e.g. promoteStaged()'s).
  explicit Cluster(policy::Store store) : store_(std::move(store)) { build(); }

 private:
  void build() {
    inv_ = std::make_unique<Inventory>(store_);
    prog_ = lower(store_);
    auto tables = ClusterTables::compile(prog_, *inv_);
    EXPECT_TRUE(tables.has_value());
    if (tables) {
      tables_.emplace(std::move(*tables));
    }
  }

 public:
  zonewall::Addr addrOf(const std::string& who) const {
    if (auto a = zonewall::parseAddr(who)) return *a;
    auto slash = who.find('/');
    const policy::Pod* p = store_.findPod(who.substr(0, slash), who.substr(slash + 1));
    EXPECT_NE(p, nullptr) << who;
    return p->ips.front();
  }

  /// One side's outcome from the compiled table (nullptr if `local` is not a pod).
  const Outcome* side(Direction d, zonewall::Addr local, zonewall::Addr remote, Protocol proto,
                      std::uint16_t port) const {
    return tables_->decide(d, local, remote, proto, port).outcome;
  }

  /// Whether `from` may connect to `to`: compiled tables and reference must agree.
  bool allowed(const std::string& from, const std::string& to, std::uint16_t port,
               Protocol proto = policy::kTcp) const {
    zonewall::Addr src = addrOf(from);
    zonewall::Addr dst = addrOf(to);
    const Outcome* e = side(Direction::kEgress, src, dst, proto, port);
    const Outcome* i = side(Direction::kIngress, dst, src, proto, port);
    bool table = (e == nullptr || e->allow) && (i == nullptr || i->allow);
    bool ref = ReferenceEvaluator(store_).connectionAllowed({src, dst, proto, port});
    EXPECT_EQ(table, ref) << from << " -> " << to << " " << port << "/" << int(proto)
                          << ": compiled table and reference disagree";
    return table;
  }

  /// The attribution that decided one side.
  std::string decidedBy(Direction d, const std::string& local, const std::string& remote,
                        std::uint16_t port, Protocol proto = policy::kTcp) const {
    zonewall::Addr l = addrOf(local);
    const Outcome* o = side(d, l, addrOf(remote), proto, port);
    if (o == nullptr) return "-";
    return tables_->table(inv_->podAt(l)->node)->attributions[o->attribution].str();
  }

  const NodeTable& table(const std::string& node) const { return *tables_->table(node); }
  const policy::Store& store() const { return store_; }
  const zonewall::Diagnostics& diags() const { return diags_; }

 private:
  policy::Store store_;
  zonewall::Diagnostics diags_;
  std::unique_ptr<Inventory> inv_;
  Program prog_;
  std::optional<ClusterTables> tables_;
};

}  // namespace zonewall::compiler
