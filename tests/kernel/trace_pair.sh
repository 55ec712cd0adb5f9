#!/bin/sh
# Traces, with the kernel's own nftables tracing, how `table inet zonewall` judges the new
# connections of one pair: which chains, rules and map entries each packet went through and
# the verdict. For debugging a drop the tests cannot explain (the churn losses were found this
# way). Root; runs in the node's network namespace until interrupted.
#
#   tests/kernel/trace_pair.sh NODE_NETNS SRC_IP DST_IP [OUT_FILE]
#
# It adds `table inet zonewall_trace` (a prerouting chain at priority -350 that sets nftrace
# on TCP SYNs and UDP packets from SRC_IP to DST_IP), runs `nft monitor trace` to OUT_FILE
# (standard output without one), and removes the table when it stops. Lines that name an
# "unknown rule handle" come from rules made after the monitor started (a rewritten chain).
set -eu
if [ $# -lt 3 ]; then
  echo "usage: $0 NODE_NETNS SRC_IP DST_IP [OUT_FILE]" >&2
  exit 2
fi
ns=$1 src=$2 dst=$3 out=${4:-/dev/stdout}
case $src in *:*) fam=ip6 ;; *) fam=ip ;; esac
in_ns() { ip netns exec "$ns" "$@"; }

in_ns nft -f - <<EOF
table inet zonewall_trace {
  chain prerouting {
    type filter hook prerouting priority -350; policy accept;
    $fam saddr $src $fam daddr $dst tcp flags & (syn | ack) == syn meta nftrace set 1
    $fam saddr $src $fam daddr $dst meta l4proto udp meta nftrace set 1
  }
}
EOF
in_ns nft monitor trace >"$out" &
monitor=$!
cleanup() {
  kill "$monitor" 2>/dev/null || true
  in_ns nft delete table inet zonewall_trace 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
echo "tracing $src -> $dst in $ns (interrupt to stop)" >&2
wait "$monitor"
