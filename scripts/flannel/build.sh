#!/usr/bin/env bash
# build.sh CACHE_DIR — build flanneld (github.com/flannel-io/flannel) from the Go module proxy
# into CACHE_DIR/<version>/bin/flanneld, for the interoperability test (a flanneld node and
# zonewall nodes in one etcd). Idempotent: prints that bin dir and exits 0 at once when the
# binary is already there.
#
# `go install github.com/flannel-io/flannel@VERSION` cannot be used as is: its tencentvpc
# backend imports github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc, whose zip the
# module proxy refuses (403), and its udp backend needs cgo. The module's source is taken from
# the proxy, those two backends are left out of main.go's imports (nothing else changes), and
# the rest is built with the versions its go.mod pins.
#
# Env knobs: FLANNEL_VERSION (default v0.28.10).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 CACHE_DIR" >&2; exit 2; }
mkdir -p "$1"
CACHE=$(cd "$1" && pwd)
FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.10}
OUT="$CACHE/$FLANNEL_VERSION/bin"
if [ -x "$OUT/flanneld" ]; then
  echo "$OUT"
  exit 0
fi
. "$(dirname "$0")/../go-cache-env.sh"
go_cache_env "$CACHE"
mkdir -p "$OUT"
go_module_source github.com/flannel-io/flannel "$FLANNEL_VERSION"
sed -i -e '/pkg\/backend\/tencentvpc"/d' -e '/pkg\/backend\/udp"/d' main.go
rm -rf pkg/backend/tencentvpc
go build -o "$OUT/flanneld.tmp" \
  -ldflags "-X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" .
mv "$OUT/flanneld.tmp" "$OUT/flanneld"
# The module and build caches are kept: a rebuild of another version reuses them.
echo "$OUT"
