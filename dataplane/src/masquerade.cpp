// The masquerade table's rules (masquerade.h) as libnftnl expressions, as nft 1.0.6 encodes
// the same text in an inet table: a family match on meta nfproto, an address prefix as a
// payload load, a mask and a compare.
#include <fmt/format.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>

#include "rule_codec.h"
#include "wire.h"

namespace zonewall::dataplane {
namespace {

void add(nftnl_rule* r, nftnl_expr* e) { nftnl_rule_add_expr(r, e); }

void cmp(nftnl_rule* r, std::uint32_t op, const void* data, std::uint32_t len) {
  nftnl_expr* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  add(r, e);
}

void bitwiseAnd(nftnl_rule* r, const void* mask, std::uint32_t len) {
  std::vector<unsigned char> zero(len, 0);
  nftnl_expr* e = nftnl_expr_alloc("bitwise");
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, kReg1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, mask, len);
  nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
  add(r, e);
}

void meta(nftnl_rule* r, std::uint32_t key) {
  nftnl_expr* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, kReg1);
  add(r, e);
}

void nfproto(nftnl_rule* r, Family f) {
  meta(r, NFT_META_NFPROTO);
  const std::uint8_t p = f == Family::kV4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
  cmp(r, NFT_CMP_EQ, &p, 1);
}

// <fam> saddr|daddr [!=] cidr
void addr(nftnl_rule* r, bool source, const Cidr& c, bool negate) {
  const bool v4 = c.family == Family::kV4;
  const std::uint32_t len = v4 ? 4 : 16;
  nftnl_expr* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, v4 ? (source ? 12 : 16) : (source ? 8 : 24));
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, kReg1);
  add(r, e);
  if (c.prefix < static_cast<int>(len * 8)) {
    std::vector<unsigned char> mask(len, 0);
    for (int bit = 0; bit < c.prefix; ++bit)
      mask[bit / 8] |= static_cast<unsigned char>(0x80 >> (bit % 8));
    bitwiseAnd(r, mask.data(), len);
  }
  std::vector<unsigned char> base;
  putAddr(base, c.base, c.family);
  cmp(r, negate ? NFT_CMP_NEQ : NFT_CMP_EQ, base.data(), len);
}

void verdictReturn(nftnl_rule* r) {
  nftnl_expr* e = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, kRegVerdict);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, static_cast<std::uint32_t>(NFT_RETURN));
  add(r, e);
}

void masquerade(nftnl_rule* r, bool random_fully) {
  nftnl_expr* e = nftnl_expr_alloc("masq");
  if (random_fully) nftnl_expr_set_u32(e, NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
  add(r, e);
}

}  // namespace

std::vector<MasqueradeRule> masqueradeRules(const MasqueradeSpec& spec) {
  std::vector<MasqueradeRule> out;
  auto rule = [&](std::string text) -> nftnl_rule* {
    out.push_back({NftnlRulePtr(nftnl_rule_alloc()), std::move(text)});
    return out.back().rule.get();
  };
  if (spec.skip_mark != 0) {
    nftnl_rule* r = rule(fmt::format("meta mark & {0:#x} == {0:#x} return", spec.skip_mark));
    meta(r, NFT_META_MARK);
    const std::uint32_t m = spec.skip_mark;  // host order, as the kernel keeps the mark
    bitwiseAnd(r, &m, 4);
    cmp(r, NFT_CMP_EQ, &m, 4);
    verdictReturn(r);
  }
  for (const MasqueradeSpec::Net& n : spec.nets) {
    const bool v4 = n.cluster.family == Family::kV4;
    const std::string fam = v4 ? "ip" : "ip6";
    const Cidr multicast = parseCidr(v4 ? "224.0.0.0/4" : "ff00::/8")->cidr;
    struct Match {
      const Cidr* saddr;
      bool saddr_neg;
      const Cidr* daddr;
      bool daddr_neg;
      bool masq;
    };
    for (const Match& m : {Match{&n.pod, false, &n.cluster, false, false},
                           Match{&n.cluster, false, &n.pod, false, false},
                           Match{&n.pod, true, &n.cluster, false, false},
                           Match{&n.cluster, false, &multicast, true, true}}) {
      nftnl_rule* r = rule(fmt::format(
          "{} saddr {}{} {} daddr {}{} {}", fam, m.saddr_neg ? "!= " : "", m.saddr->str(), fam,
          m.daddr_neg ? "!= " : "", m.daddr->str(),
          m.masq ? (spec.random_fully ? "masquerade fully-random" : "masquerade") : "return"));
      nfproto(r, n.cluster.family);
      addr(r, true, *m.saddr, m.saddr_neg);
      addr(r, false, *m.daddr, m.daddr_neg);
      if (m.masq) {
        masquerade(r, spec.random_fully);
      } else {
        verdictReturn(r);
      }
    }
  }
  return out;
}

}  // namespace zonewall::dataplane
