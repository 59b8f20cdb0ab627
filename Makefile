# Thin wrapper over CMake (neovim-style). Every target that builds first makes
# sure the Debian packages are there (scripts/install-deps is a no-op when
# they are).
#
#   make          build into build/
#   make demo     the main job on the embedded fake server
#   make test     build and run every test (ctest)
#   make asan     the tests under ASan+UBSan (build-asan/)
#   make tsan     the tests under TSan (build-tsan/)
#   make bench    benchmarks (not part of test; bench/run, bench/threads, bench/soak/run)
#   make bench-soak  issue 17's soak targets only (bench/soak/run; part of bench)
#   make mutants  does the suite catch realistic bugs it was not told about? (not part of test)
#   make fuzz     libFuzzer targets (clang, build-fuzz/)
#   make install  PREFIX=DIR (default /usr/local): binary, libraries, headers, pgfault.pc, man page

BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=
CTEST_FLAGS ?=

.PHONY: all deps build demo test asan tsan bench bench-soak mutants fuzz format clean install

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >$(BUILD).cmake.log 2>&1 || { cat $(BUILD).cmake.log; exit 1; }
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) $(CTEST_FLAGS)

demo: build
	@scripts/demo $(BUILD)/harness/cli/pgfault

asan:
	$(MAKE) test BUILD=build-asan CMAKE_FLAGS="-DPGF_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"

tsan:
	$(MAKE) test BUILD=build-tsan CMAKE_FLAGS="-DPGF_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)"

bench: build
	@bench/run $(BUILD)
	@bench/threads $(BUILD)
	@bench/soak/run $(BUILD)

bench-soak: build
	@bench/soak/run $(BUILD)

mutants: deps
	@JOBS=$(JOBS) tests/mutants/run

fuzz:
	@scripts/install-deps --fuzz
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DPGF_FUZZ=ON -DPGF_SANITIZE=address,undefined,fuzzer-no-link >/dev/null
	@cmake --build build-fuzz -j$(JOBS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-tsan build-fuzz build*.cmake.log

# make install PREFIX=/opt/pgfault (default /usr/local): cmake --install.
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)
