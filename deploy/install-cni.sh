#!/bin/sh
# The DaemonSet's init container: zonewall-cni and its network configuration into the host's
# CNI directories. Each file is written beside its destination and renamed over it, so that
# the runtime never sees half a binary or half a config (a rename within a directory is atomic).
set -eu
bin_dir=${CNI_BIN_DIR:-/host/opt/cni/bin}
conf_dir=${CNI_CONF_DIR:-/host/etc/cni/net.d}
config=${ZONEWALL_CONFIG_DIR:-/etc/zonewall}

install_atomic() {  # install_atomic SRC DEST MODE
  tmp="$(dirname "$2")/.$(basename "$2").zonewall-tmp"
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

mkdir -p "$bin_dir" "$conf_dir"
install_atomic /usr/local/bin/zonewall-cni "$bin_dir/zonewall" 0755
install_atomic "$config/10-zonewall.conflist" "$conf_dir/10-zonewall.conflist" 0644
echo "install-cni: $bin_dir/zonewall and $conf_dir/10-zonewall.conflist installed"
