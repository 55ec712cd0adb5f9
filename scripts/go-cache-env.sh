# Sourced by the build scripts of the Go-built servers (scripts/kube, scripts/flannel,
# scripts/knp): `go_cache_env CACHE` keeps the module and build caches under CACHE (outside the
# checkout, reused by the next build), resolves modules as their go.mod pins them, lets the go
# command fetch the toolchain a module asks for, and builds without cgo.
go_cache_env() {
  export GOPATH="$1/gopath"
  export GOMODCACHE="$1/go-mod-cache"
  export GOCACHE="$1/go-build-cache"
  export GOFLAGS="${GOFLAGS:-} -mod=mod"
  export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
  export CGO_ENABLED=0
  mkdir -p "$GOPATH" "$GOMODCACHE" "$GOCACHE"
}

# `go_module_source MODULE VERSION`: a writable copy of the module's source, from the module
# proxy, in a temporary directory removed when the script exits; the shell is left in it.
go_module_source() {
  command -v go >/dev/null || { echo "build.sh: no 'go' on PATH" >&2; exit 1; }
  go mod download "$1@$2"
  GO_MODULE_WORK=$(mktemp -d)
  trap 'rm -rf "$GO_MODULE_WORK"' EXIT
  cp -r "$GOMODCACHE/$1@$2" "$GO_MODULE_WORK/src"
  chmod -R u+w "$GO_MODULE_WORK/src"
  cd "$GO_MODULE_WORK/src"
}
