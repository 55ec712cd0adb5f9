// Differential: a random policy world — the tests' generator (tests/compiler/generator.h),
// every choice it makes drawn from the fuzzer's bytes — compiled three ways must decide every
// generated flow alike: the reference evaluator, a fresh compile of every node, and node
// compilers that got each policy one by one through the ProgramBuilder. Any disagreement
// aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "compiler/generator.h"
#include "zonewall/compiler/cluster.h"
#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/compiler/reference.h"
#include "zonewall/policy/loader.h"

namespace zw = zonewall;
namespace cc = zonewall::compiler;

namespace {

// A uniform random bit generator that hands out the fuzzer's bytes (zeros once they run out).
class ByteEngine {
 public:
  using result_type = std::uint8_t;
  ByteEngine(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return 255; }
  result_type operator()() { return at_ < size_ ? data_[at_++] : 0; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

zw::Addr addrOf(const zw::policy::Store& store, const std::string& who) {
  if (auto a = zw::parseAddr(who)) return *a;
  auto slash = who.find('/');
  const zw::policy::Pod* p = store.findPod(who.substr(0, slash), who.substr(slash + 1));
  if (p == nullptr) std::abort();
  return p->ips.front();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  cc::BasicGenerator<ByteEngine> g(data, size);
  const std::string yaml = g.cluster();
  zw::policy::Store store;
  zw::Diagnostics diags;
  zw::policy::loadSources({{"world.yaml", yaml}}, store, diags);
  zw::policy::validateStore(store, diags);
  if (diags.hasErrors()) std::abort();  // the generator writes valid worlds only

  cc::Inventory inventory(store);
  auto tables = cc::ClusterTables::compile(cc::lower(store), inventory);
  if (!tables) std::abort();

  // The same world, every enforced policy added one at a time to compilers that began empty.
  zw::policy::Store empty = store;
  empty.k8s_policies.clear();
  empty.calico_policies.clear();
  empty.admin_policies.clear();
  cc::ProgramBuilder builder(empty);
  std::map<std::string, std::unique_ptr<cc::NodeCompiler>> incremental;
  for (const char* node : {"n1", "n2"}) {
    auto nc = std::make_unique<cc::NodeCompiler>(inventory, node);
    if (!nc->build(builder.program())) std::abort();
    incremental.emplace(node, std::move(nc));
  }
  auto changed = [&] {
    for (auto& [node, nc] : incremental) {
      if (!nc->programChanged(builder.program())) std::abort();
    }
  };
  for (const auto& p : store.k8s_policies) builder.upsert(p), changed();
  for (const auto& p : store.calico_policies) builder.upsert(p), changed();
  for (const auto& p : store.admin_policies) builder.upsert(p), changed();

  cc::ReferenceEvaluator ref(store);
  for (int f = 0; f < 20; ++f) {
    zw::Addr src = addrOf(store, g.address());
    zw::Addr dst = addrOf(store, g.address());
    auto [proto, port] = g.l4();
    if (src.family() != dst.family()) continue;
    for (cc::Direction d : {cc::Direction::kEgress, cc::Direction::kIngress}) {
      zw::Addr local = d == cc::Direction::kEgress ? src : dst;
      zw::Addr remote = d == cc::Direction::kEgress ? dst : src;
      const zw::policy::Pod* p = ref.podAt(local);
      if (p == nullptr) continue;
      const bool want = ref.allows(d, *p, local, remote, proto, port);
      const cc::Outcome* fresh = tables->decide(d, local, remote, proto, port).outcome;
      const cc::Outcome* inc =
          incremental.at(p->node)->table().decide(d, local, remote, proto, port);
      if (fresh == nullptr || inc == nullptr || fresh->allow != want || inc->allow != want) {
        std::abort();
      }
    }
  }
  return 0;
}
