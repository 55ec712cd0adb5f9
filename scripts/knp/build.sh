#!/usr/bin/env bash
# build.sh CACHE_DIR — build kube-network-policies (sigs.k8s.io/kube-network-policies, the
# Kubernetes SIG's reference NetworkPolicy enforcer: nftables + NFQUEUE, verdicts in userspace)
# from the Go module proxy into CACHE_DIR/<version>/bin/kube-network-policies, for the peer
# benchmark (bench/peers_bench.cpp). Idempotent: prints that bin dir and exits 0 at once when
# the binary is already there.
#
# Env knobs: KNP_VERSION (default v0.8.0, the newest the module proxy serves here).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
KNP_VERSION=${KNP_VERSION:-v0.8.0}
OUT="$CACHE/$KNP_VERSION/bin"
if [ -x "$OUT/kube-network-policies" ]; then
  echo "$OUT"
  exit 0
fi
. "$(dirname "$0")/../go-cache-env.sh"
go_cache_env "$CACHE"
mkdir -p "$OUT"
go_module_source sigs.k8s.io/kube-network-policies "$KNP_VERSION"
# The release's main package is cmd/ (as its Dockerfile builds it), with the versions its go.mod
# pins.
go build -o "$OUT/kube-network-policies.tmp" ./cmd
mv "$OUT/kube-network-policies.tmp" "$OUT/kube-network-policies"
echo "$OUT"
