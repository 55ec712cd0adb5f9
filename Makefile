# The two commands: `make demo` and `make test` (each installs what it needs first).
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
  CMAKE_FLAGS += -DZONEWALL_WERROR=ON
endif

.PHONY: all deps build build-asan test test-asan style demo bench clean format

all: build

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# The house style, then every test, then every test again under AddressSanitizer + UBSan.
test: style build build-asan
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory test-asan

build-asan: deps
	cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZONEWALL_SANITIZE=ON \
	  -DZONEWALL_BUILD_BENCH=OFF $(CMAKE_FLAGS)
	cmake --build build-asan -j $(JOBS)

test-asan: build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS)

demo: build
	./scripts/demo.sh $(BUILD_DIR)

bench: build
	./$(BUILD_DIR)/bench/compile_bench
	@for b in dataplane_bench cni_bench; do \
	  if [ "$$(id -u)" -eq 0 ]; then ./$(BUILD_DIR)/bench/$$b; else echo "$$b: needs root"; fi; \
	done

clean:
	rm -rf $(BUILD_DIR) build-asan

# clang-format on every tracked C++ file, and lines within 100 columns (scripts/check-style.sh).
style: deps
	./scripts/check-style.sh

format: deps
	clang-format -i $$(git ls-files '*.cpp' '*.h')
