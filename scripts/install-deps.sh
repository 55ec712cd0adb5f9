#!/usr/bin/env bash
# Installs every build and test dependency of zonewall from Debian's packages.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libboost-graph-dev
  libnftnl-dev libmnl-dev libnl-3-dev libnl-route-3-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev clang-format
  nftables iproute2 jq iptables
  # zonewall graph --format svg renders through Graphviz's dot.
  graphviz
  # The agent: the Kubernetes API over HTTPS, metrics, logs. For the API server its tests start
  # (scripts/kube/): openssl for its certificates, python3 to pick free ports, `time` for the
  # build figures.
  libcurl4-openssl-dev prometheus-cpp-dev libcivetweb-dev time openssl curl python3
  # Subnet leases in Flannel's etcd layout: the tests start Debian's etcd on loopback.
  etcd-server
  # CNI: reference plugins (ptp, host-local, portmap, tuning), libcni for the Go test driver,
  # podman + runc + a static busybox as a real container runtime.
  containernetworking-plugins golang-go golang-github-appc-cni-dev iputils-ping
  podman runc busybox-static catatonit
  # The libFuzzer targets (fuzz/): clang with its fuzzer and sanitizer runtimes.
  clang-16 libclang-rt-16-dev llvm-16
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
