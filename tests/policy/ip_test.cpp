#include "zonewall/base/ip.h"

#include <gtest/gtest.h>

namespace zonewall::policy {
namespace {

// Addresses round-trip through text, and IPv4-mapped IPv6 text is refused.
TEST(Ip, ParsesAndFormatsBothFamilies) {
  for (const char* s :
       {"10.0.0.1", "0.0.0.0", "255.255.255.255", "fd00::1", "::", "2001:db8::ff"}) {
    auto a = parseAddr(s);
    ASSERT_TRUE(a) << s;
    EXPECT_EQ(formatAddr(*a), s);
  }
  EXPECT_EQ(parseAddr("10.0.0.1")->family(), Family::kV4);
  EXPECT_EQ(parseAddr("fd00::1")->family(), Family::kV6);
  EXPECT_FALSE(parseAddr("::ffff:10.0.0.1"));
  EXPECT_FALSE(parseAddr("10.0.0.256"));
  EXPECT_FALSE(parseAddr(""));
}

// CIDRs are masked; host bits are reported; bad prefixes are refused.
TEST(Ip, ParsesCidrs) {
  auto c = parseCidr("10.1.2.3/16");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->host_bits_set);
  EXPECT_EQ(c->cidr.str(), "10.1.0.0/16");
  EXPECT_TRUE(c->cidr.contains(*parseAddr("10.1.255.255")));
  EXPECT_FALSE(c->cidr.contains(*parseAddr("10.2.0.0")));
  EXPECT_FALSE(c->cidr.contains(*parseAddr("fd00::1")));
  EXPECT_FALSE(parseCidr("10.0.0.0/33"));
  EXPECT_FALSE(parseCidr("10.0.0.0/-1"));
  EXPECT_FALSE(parseCidr("10.0.0.0/"));
  EXPECT_FALSE(parseCidr("10.0.0.0"));
  EXPECT_TRUE(parseCidr("10.0.0.0", true));
  EXPECT_FALSE(parseCidr("fd00::/129"));
}

// "::/0" is all of IPv6 and none of IPv4; "0.0.0.0/0" the reverse.
TEST(Ip, FamiliesNeverOverlap) {
  IntervalSet v6 = IntervalSet::ofCidr(parseCidr("::/0")->cidr);
  IntervalSet v4 = IntervalSet::ofCidr(parseCidr("0.0.0.0/0")->cidr);
  EXPECT_TRUE(v6.intersect(v4).empty());
  EXPECT_TRUE(v6.unite(v4).isAll());
  EXPECT_FALSE(v6.contains(parseAddr("1.2.3.4")->v));
  EXPECT_TRUE(v6.contains(parseAddr("::1")->v));
  EXPECT_EQ(v6, familySpace(Family::kV6));
}

// Interval algebra: union merges adjacent ranges, complement is exact at both ends.
TEST(Ip, IntervalSetAlgebra) {
  IntervalSet a;
  a.add({10, 20});
  a.add({21, 30});
  ASSERT_EQ(a.ranges().size(), 1u);
  EXPECT_EQ(a.ranges()[0], (Range{10, 30}));
  IntervalSet c = a.complement();
  ASSERT_EQ(c.ranges().size(), 2u);
  EXPECT_EQ(c.ranges()[0], (Range{0, 9}));
  EXPECT_EQ(c.ranges()[1].hi, kU128Max);
  EXPECT_EQ(c.complement(), a);
  IntervalSet b;
  b.add({25, 40});
  EXPECT_EQ(a.intersect(b).ranges(), (std::vector<Range>{{25, 30}}));
  EXPECT_EQ(a.minus(b).ranges(), (std::vector<Range>{{10, 24}}));
  EXPECT_TRUE(IntervalSet().complement().isAll());
  EXPECT_TRUE(IntervalSet::all().complement().empty());
}

}  // namespace
}  // namespace zonewall::policy
