#!/usr/bin/env bash
# A real container runtime: Debian's podman (CNI network backend, runc, vfs storage, a busybox
# rootfs, nothing pulled) runs two containers on a zonewall network inside a node netns this
# test creates; they ping each other; `podman rm` releases their addresses, veths and records.
#
#   podman_test.sh ZONEWALL_CNI_BINARY
#
# Needs root. Exit 77 (ctest: skipped) when unprivileged outside CI; under CI=true it fails.
set -euo pipefail

cni=$1
if [ "$(id -u)" -ne 0 ]; then
  if [ "${CI:-}" = true ]; then echo "FAIL: the podman test needs root under CI" >&2; exit 1; fi
  echo "SKIP: the podman test needs root (network namespaces, containers)"; exit 77
fi

work=$(mktemp -d /tmp/zwpodman.XXXXXX)
node="zwt$$podman"
net="zwpodman"
podman_() {
  nsenter --net="/run/netns/$node" env CONTAINERS_CONF="$work/containers.conf" \
    podman --root "$work/storage" --runroot "$work/run" --tmpdir "$work/libpod" --storage-driver vfs "$@"
}
cleanup() {
  set +e
  podman_ rm -af -t 0 >/dev/null 2>&1
  # Whatever podman left mounted under the scratch directory, then the directory itself.
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  ip netns del "$node" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# The node: forwarding on and a default route, as on a real node (proxy ARP needs it).
ip netns add "$node"
ip -n "$node" link set lo up
ip -n "$node" link add zwup type veth peer name zwup2
ip -n "$node" link set zwup up
ip -n "$node" link set zwup2 up
ip -n "$node" route add default dev zwup

# The plugin is installed under the name its "type" gives.
mkdir -p "$work/bin" "$work/net.d" "$work/rootfs/bin" "$work/rootfs/etc" "$work/rootfs/proc" \
  "$work/rootfs/sys" "$work/rootfs/dev" "$work/rootfs/tmp"
ln -s "$cni" "$work/bin/zonewall"
cp /bin/busybox "$work/rootfs/bin/busybox"
for tool in sh ip ping sleep nc cat; do ln -s busybox "$work/rootfs/bin/$tool"; done

cat > "$work/net.d/$net.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "$net",
 "plugins": [{"type": "zonewall",
              "ipam": {"subnet": "10.244.41.0/24", "dataDir": "$work/data"},
              "endpointsDir": "$work/endpoints"}]}
JSON
cat > "$work/containers.conf" <<TOML
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$work/bin", "/usr/lib/cni"]
network_config_dir = "$work/net.d"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
TOML

for c in zwp1 zwp2; do
  podman_ run -d --name "$c" --network "$net" --rootfs "$work/rootfs" /bin/sleep 300 >/dev/null \
    || fail "podman run $c"
done
ip1=$(podman_ inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" zwp1)
ip2=$(podman_ inspect -f "{{(index .NetworkSettings.Networks \"$net\").IPAddress}}" zwp2)
echo "zwp1=$ip1 zwp2=$ip2"
[ -n "$ip1" ] && [ -n "$ip2" ] && [ "$ip1" != "$ip2" ] || fail "expected two distinct addresses, got '$ip1' '$ip2'"
case "$ip1$ip2" in *10.244.41.*10.244.41.*) ;; *) fail "addresses outside 10.244.41.0/24" ;; esac

podman_ exec zwp1 ping -c1 -W2 "$ip2" >/dev/null || fail "zwp1 cannot ping zwp2 ($ip2)"
podman_ exec zwp2 ping -c1 -W2 "$ip1" >/dev/null || fail "zwp2 cannot ping zwp1 ($ip1)"
echo "ping both ways: ok"

reserved=$(ls "$work/data/$net" | grep -c '^10\.' || true)
[ "$reserved" -eq 2 ] || fail "expected 2 reservations, found $reserved"
records=$(ls "$work/endpoints" | wc -l)
[ "$records" -eq 2 ] || fail "expected 2 endpoint records, found $records"
grep -q '"pod":"zwp1"' "$work/endpoints"/* || fail "no endpoint record names zwp1 (K8S_POD_NAME from podman)"

podman_ rm -f -t 0 zwp1 zwp2 >/dev/null || fail "podman rm"
reserved=$(ls "$work/data/$net" | grep -c '^10\.' || true)
[ "$reserved" -eq 0 ] || fail "podman rm left $reserved reservations"
[ -z "$(ls -A "$work/endpoints")" ] || fail "podman rm left endpoint records: $(ls "$work/endpoints")"
veths=$(ip -n "$node" -o link show | grep -c 'alias zonewall ' || true)
[ "$veths" -eq 0 ] || fail "podman rm left $veths host veths"
echo "PASS: podman run/exec/rm on a zonewall network"
