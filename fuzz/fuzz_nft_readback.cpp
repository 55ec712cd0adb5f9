// The agent's read-back of its table: what the kernel holds, compared with the ruleset that
// should be there (the drift analysis), which must come out as drift, never a crash or a loop.
// An operator may have edited the table by hand, so the fuzzer's bytes drive edits at two
// levels, starting from the table a small node would have:
//   content — chains added or gone, rules with other expressions, sets of another shape,
//             elements dropped, added, or with keys of any bytes and length, other verdicts
//             (the snapshot level: everything the kernel can hold);
//   framing — the netlink messages of that table (as the kernel would send them) dropped,
//             repeated, reordered or cut short, decoded by the DumpDecoder.
// Not fuzzed: attribute lengths that break the nf_tables ABI (a u32 of 3 bytes). No kernel
// sends those; libnftnl exits the process on them by design ("nf_tables kernel ABI is
// broken"), which for the agent means a restart while the kernel keeps its last table.
#include <linux/netlink.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "zonewall/compiler/compile.h"
#include "zonewall/compiler/inventory.h"
#include "zonewall/compiler/program.h"
#include "zonewall/dataplane/batch.h"
#include "zonewall/dataplane/drift.h"
#include "zonewall/dataplane/ruleset.h"
#include "zonewall/dataplane/transport.h"
#include "zonewall/policy/loader.h"

namespace zw = zonewall;
namespace dp = zonewall::dataplane;

namespace {

// A node with every kind of set: local pods of both families, exact peers and ranges (an
// ipBlock with an except), ports and a port range, a named port.
constexpr std::string_view kWorld = R"(
apiVersion: v1
kind: Namespace
metadata: {name: bank, labels: {zone: secure}}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: bank, labels: {app: api}}
spec: {nodeName: n1, containers: [{name: c, ports: [{name: https, containerPort: 8443}]}]}
status: {podIPs: [{ip: 10.0.0.10}, {ip: "fd00::10"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: bank, labels: {app: web}}
spec: {nodeName: n2}
status: {podIPs: [{ip: 10.0.1.20}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: api, namespace: bank}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}
    ports: [{port: https}, {port: 9000, endPort: 9100}, {port: 53, protocol: UDP}]
  egress:
  - to: [{ipBlock: {cidr: "fd00::/64"}}]
)";

dp::Ruleset expectedRuleset() {
  zw::policy::Store store;
  zw::Diagnostics diags;
  zw::policy::loadSources({{"world.yaml", std::string(kWorld)}}, store, diags);
  if (diags.hasErrors()) std::abort();
  zw::compiler::Inventory inventory(store);
  auto table = zw::compiler::compileNode(zw::compiler::lower(store), inventory, "n1");
  if (!table) std::abort();
  return dp::buildRuleset(*table);
}

const dp::Ruleset& expected() {
  static const dp::Ruleset rs = expectedRuleset();
  return rs;
}

// The fuzzer's bytes as a stream of choices (zeros once they run out).
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool more() const { return at_ < size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | byte();
    return v;
  }
  std::size_t index(std::size_t n) { return n == 0 ? 0 : u32() % n; }
  std::vector<unsigned char> blob() {
    std::vector<unsigned char> out(byte() % 48);
    for (auto& b : out) b = byte();
    return out;
  }
  std::string text() {
    std::string out(byte() % 24, ' ');
    for (auto& c : out) c = static_cast<char>(byte());
    return out;
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

template <class Map>
typename Map::iterator pickIn(Map& m, Bytes& in) {
  auto it = m.begin();
  std::advance(it, static_cast<long>(in.index(m.size())));
  return it;
}

void editContent(dp::TableSnapshot& snap, Bytes& in) {
  for (int edits = 0; edits < 16 && in.more(); ++edits) {
    switch (in.byte() % 10) {
      case 0:
        if (!snap.chains.empty()) snap.chains.erase(pickIn(snap.chains, in));
        break;
      case 1:
        snap.chains.insert(in.text());
        break;
      case 2:
        if (!snap.rules.empty()) {
          auto& rules = pickIn(snap.rules, in)->second;
          if (!rules.empty()) {
            auto& exprs = rules[in.index(rules.size())];
            if (in.byte() % 2 == 0 && !exprs.empty()) {
              exprs[in.index(exprs.size())] = in.text();
            } else {
              exprs.push_back(in.text());
            }
          }
        }
        break;
      case 3:
        if (!snap.rules.empty()) snap.rules.erase(pickIn(snap.rules, in));
        break;
      case 4:
        if (!snap.sets.empty()) {
          auto& shape = pickIn(snap.sets, in)->second.shape;
          shape = {in.u32(), in.u32() % 128, in.u32()};
        }
        break;
      case 5:
        if (!snap.sets.empty()) snap.sets.erase(pickIn(snap.sets, in));
        break;
      case 6:
        if (!snap.sets.empty()) {
          // A set under another name (a swapped range map's alternate, or anything).
          auto node = snap.sets.extract(pickIn(snap.sets, in));
          node.key() = in.byte() % 2 ? dp::alternateSet(node.key()) : in.text();
          snap.sets.insert(std::move(node));
        }
        break;
      default:
        if (!snap.sets.empty()) {
          auto& elements = pickIn(snap.sets, in)->second.elements;
          dp::ElementBytes e;
          if (!elements.empty() && in.byte() % 3 != 0) {
            auto at = elements.begin() + static_cast<long>(in.index(elements.size()));
            e = *at;
            if (in.byte() % 2) elements.erase(at);
          }
          if (in.byte() % 2) e.key = in.blob();
          if (in.byte() % 4 == 0) e.key_end = in.blob();
          if (in.byte() % 4 == 0) e.flags = in.u32();
          if (in.byte() % 4 == 0) {
            e.verdict = {static_cast<dp::Verdict::Kind>(in.byte() % 6), in.text()};
          }
          elements.push_back(std::move(e));
        }
        break;
    }
  }
}

// The netlink messages of `bytes` (whole, well-formed), dropped, repeated, reordered or cut.
std::vector<char> editFraming(const std::vector<char>& bytes, Bytes& in) {
  std::vector<std::string_view> msgs;
  for (size_t at = 0; at + sizeof(nlmsghdr) <= bytes.size();) {
    const auto* nlh = reinterpret_cast<const nlmsghdr*>(bytes.data() + at);
    size_t len = NLMSG_ALIGN(nlh->nlmsg_len);
    if (nlh->nlmsg_len < sizeof(nlmsghdr) || at + len > bytes.size()) break;
    msgs.emplace_back(bytes.data() + at, len);
    at += len;
  }
  for (int edits = 0; edits < 8 && in.more() && !msgs.empty(); ++edits) {
    size_t i = in.index(msgs.size());
    switch (in.byte() % 3) {
      case 0:
        msgs.erase(msgs.begin() + static_cast<long>(i));
        break;
      case 1:
        msgs.push_back(msgs[i]);
        break;
      default:
        std::swap(msgs[i], msgs[in.index(msgs.size())]);
        break;
    }
  }
  std::vector<char> out;
  for (std::string_view m : msgs) out.insert(out.end(), m.begin(), m.end());
  out.resize(out.size() - std::min<size_t>(out.size(), in.byte() % 2 ? in.index(64) : 0));
  return out;
}

void check(const dp::Ruleset& rs, const dp::TableSnapshot& snap) {
  dp::KernelState state = dp::analyzeSnapshot(rs, snap);
  // The skeleton matches only when every fixed chain of the ruleset is there (a class's
  // chain may be missing: an update adds it).
  for (const auto& c : rs.chains) {
    if (state.skeleton_matches && !dp::isDynamicChain(c.name) && !snap.chains.contains(c.name)) {
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const dp::Ruleset& rs = expected();
  static const std::vector<dp::Batch> batches = dp::encodeCreate(rs, 1);
  Bytes in(data, size);
  if (in.byte() % 2 == 0) {
    dp::TableSnapshot snap = dp::snapshotOf(rs);
    editContent(snap, in);
    check(rs, snap);
    return 0;
  }
  dp::DumpDecoder decoder(rs.table);
  for (const dp::Batch& b : batches) {
    std::vector<char> bytes = editFraming(b.bytes, in);
    decoder.addAll(bytes.data(), bytes.size());
  }
  decoder.snapshot().exists = true;
  check(rs, decoder.snapshot());
  return 0;
}
