# The two commands: `make demo` and `make test` (each installs what it needs first).
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DZONEWALL_WERROR=ON
  # CI's normal build keeps line tables only (stacks still name their lines): a third less
  # compile time than full debug information, which nobody reads there.
  CMAKE_FLAGS += -DZONEWALL_LINE_TABLES_ONLY=ON
endif

.PHONY: all deps build build-asan build-fuzz test test-asan style demo bench clean format kube \
  flannel knp fuzz

# kube-apiserver + etcd for the agent's tests, built from Go modules into a cache outside the
# checkout (about 8 minutes the first time, then instant). The machine's current Go comes first
# on PATH: Debian's golang-go (1.19, for the libcni test driver) is too old to build them.
KUBE_CACHE ?= $(HOME)/.cache/zonewall/kube
GO_PATH_FIRST := $(if $(wildcard /usr/local/go/bin/go),/usr/local/go/bin:,)
# flanneld for the interoperability test, the same way (about 3 minutes the first time).
FLANNEL_CACHE ?= $(HOME)/.cache/zonewall/flannel
# kube-network-policies for the peer benchmark, the same way.
KNP_CACHE ?= $(HOME)/.cache/zonewall/knp

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The house style, then every test, then every test again under AddressSanitizer + UBSan, then
# every fuzz target for a short bounded time from its corpus. What the tests need is built first,
# side by side: the three C++ builds and the two Go-built servers, whose builds wait on the
# module proxy and on their single-threaded links as much as they use the CPU.
test: style
	$(MAKE) --no-print-directory -j 4 kube flannel build build-asan build-fuzz
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

build-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE= -DZONEWALL_SANITIZE=ON \
	  -DZONEWALL_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

kube: deps
	PATH="$(GO_PATH_FIRST)$$PATH" ./scripts/kube/build.sh $(KUBE_CACHE)

flannel: deps
	PATH="$(GO_PATH_FIRST)$$PATH" ./scripts/flannel/build.sh $(FLANNEL_CACHE)

knp: deps
	PATH="$(GO_PATH_FIRST)$$PATH" ./scripts/knp/build.sh $(KNP_CACHE)

demo: build
	./scripts/demo.sh $(BUILD_DIR)

bench: build kube knp
	./$(BUILD_DIR)/bench/compile_bench
	./$(BUILD_DIR)/bench/analysis_bench
	@for b in dataplane_bench peers_bench cni_bench agent_bench agent_e2e_bench overlay_bench \
	    lease_bench tunnel_bench; do \
	  if [ "$$(id -u)" -eq 0 ]; then ./$(BUILD_DIR)/bench/$$b; else echo "$$b: needs root"; fi; \
	done

# Every libFuzzer target for FUZZ_SECONDS each (fuzz/, README "Fuzzing").
FUZZ_SECONDS ?= 60
fuzz: deps
	CMAKE_FLAGS="$(CMAKE_FLAGS)" ./scripts/fuzz.sh $(FUZZ_SECONDS)

build-fuzz: deps
	CMAKE_FLAGS="$(CMAKE_FLAGS)" ./scripts/fuzz.sh --build-only

clean:
	rm -rf $(BUILD_DIR) build-asan build-fuzz

# clang-format on every tracked C++ file, and lines within 100 columns (scripts/check-style.sh).
style: deps
	./scripts/check-style.sh

format: deps
	clang-format -i $$(git ls-files '*.cpp' '*.h')
