#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` CMake preset: clang 16, ASan + UBSan) and runs each
# for SECONDS from its corpus. `make fuzz` runs every target for 60 s, `make test` for 10 s.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      TARGET: policy, selector, net, cni, ...
#   scripts/fuzz.sh --build-only               builds every target, runs none (`make test` builds
#                                              them beside its other builds, runs them last)
#
# Corpora: fuzz/corpus/<target>/ is committed (seeds, and every input that ever made a target
# fail, so that it stays fixed); a run reads it and the project's own inputs (the examples, the
# bad-input goldens, ...), and grows build-fuzz/corpus/<target>/, which is not committed. A
# finding is written to build-fuzz/findings/ and fails the run.
set -euo pipefail

build_only=false
if [ "${1:-}" = --build-only ]; then
  build_only=true
  shift
fi
seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(policy selector net cni subnet_env kube etcd nft_readback differential)
fi

mkdir -p "$build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE= \
  -DCMAKE_CXX_COMPILER=clang++-16 -DZONEWALL_FUZZ=ON -DZONEWALL_BUILD_TESTS=OFF \
  -DZONEWALL_BUILD_BENCH=OFF ${CMAKE_FLAGS:-} > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log"; exit 1; }
cmake --build "$build" --target fuzzers -j "$(nproc)"
$build_only && exit 0

# The project's own inputs, as seeds of the targets that read them.
seeds() {
  case "$1" in
    policy) find "$root/examples" "$root/tests/golden/bad" -name '*.yaml' ;;
    cni) find "$root/deploy" -name 'configmap.yaml' ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
[ -x /usr/bin/llvm-symbolizer-16 ] && export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-16
mkdir -p "$build/findings"
failed=()
for t in "${targets[@]}"; do
  work=$build/corpus/$t
  mkdir -p "$work" "$root/fuzz/corpus/$t"
  while read -r f; do
    [ -n "$f" ] && cp -f "$f" "$work/project-$(basename "$(dirname "$f")")-$(basename "$f")"
  done < <(seeds "$t")
  dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=(-dict="$root/fuzz/dict/$t.dict")
  echo "fuzz: $t for ${seconds}s"
  # 2 GiB and 25 s per input are the resource bounds a finding is measured against.
  if ! "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 \
      -print_final_stats=1 "${dict[@]}" -artifact_prefix="$build/findings/$t-" \
      "$work" "$root/fuzz/corpus/$t" > "$build/fuzz-$t.log" 2>&1; then
    tail -60 "$build/fuzz-$t.log"
    failed+=("$t")
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz-$t.log" | tr '\n' ' ' || true
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]} (inputs in $build/findings/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no finding"
