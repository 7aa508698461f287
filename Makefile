# The front door. `make run` brings the service up on a real hypervisor with
# demo domains; `make test` runs every test. Both install what is missing.

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 300
STATE      ?= $(CURDIR)/.state
LISTEN     ?= 127.0.0.1:8080
PREFIX     ?= /usr/local
PY         := /usr/bin/python3

.PHONY: all build build-asan build-fuzz deps run test test-unit test-integration fuzz soak bench clean \
        install test-packaging test-container

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror --prefix=$(PREFIX) >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dbuildtype=debug >/dev/null

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) --werror -Dfuzz=true -Db_lundef=false >/dev/null

build: $(BUILD)/build.ninja
	@ninja -C $(BUILD) >/dev/null && echo "built $(BUILD)/virtvaultd"

build-asan: $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD) >/dev/null && echo "built $(ASAN_BUILD)/virtvaultd (ASan+UBSan)"

build-fuzz: $(FUZZ_BUILD)/build.ninja
	@ninja -C $(FUZZ_BUILD) >/dev/null && echo "built the fuzz targets in $(FUZZ_BUILD)/tests"

# The OpenAPI linter, the contract validator and the browser driver, pinned by
# package-lock.json.
node_modules/.package-lock.json: package.json package-lock.json
	@command -v npm >/dev/null || apt-get install -y --no-install-recommends npm
	@npm ci --no-audit --no-fund --loglevel=error >/dev/null && echo "installed node_modules"

run: deps build
	@scripts/sandbox demo
	@mkdir -p $(STATE)
	@# The first start makes an admin token in $(STATE)/admin-token; the login link carries it
	@# in the URL fragment, which the browser keeps to itself and the UI moves to sessionStorage.
	@$(BUILD)/virtvaultd --listen $(LISTEN) --libvirt-uri qemu:///system \
	    --db $(STATE)/virtvault.db --vault-dir $(STATE)/vault --web-dir $(CURDIR)/web & pid=$$!; \
	trap 'kill -TERM $$pid 2>/dev/null' INT TERM; \
	for i in $$(seq 100); do \
	    [ -s $(STATE)/admin-token ] && curl -fsS -o /dev/null http://$(LISTEN)/healthz 2>/dev/null \
	        && break; \
	    kill -0 $$pid 2>/dev/null || break; sleep 0.1; \
	done; \
	if [ -s $(STATE)/admin-token ]; then \
	    echo "virtvault: web UI, signed in: http://$(LISTEN)/#token=$$(cat $(STATE)/admin-token)"; \
	    echo "virtvault: API at http://$(LISTEN)/v1 with 'Authorization: Bearer <the token in $(STATE)/admin-token>'"; \
	fi; \
	echo "virtvault: Ctrl-C stops"; \
	wait $$pid; rc=$$?; kill -0 $$pid 2>/dev/null && { wait $$pid; rc=$$?; }; exit $$rc

test: deps build build-asan build-fuzz node_modules/.package-lock.json
	@$(PY) scripts/run-tests --build $(BUILD) --asan-build $(ASAN_BUILD) --fuzz-build $(FUZZ_BUILD)

# The long variants of the crash and load tests (make test runs short ones).
SOAK_KILLS ?= 60
SOAK_PRUNE_KILLS ?= 100
soak: deps build
	@scripts/sandbox up >/dev/null
	VV_CRASH_KILLS=$(SOAK_KILLS) VV_PRUNE_KILLS=$(SOAK_PRUNE_KILLS) VV_RECOVERY_SOAK=1 \
	    VIRTVAULT_BIN=$(CURDIR)/$(BUILD)/virtvaultd $(PY) -m pytest -q \
	    tests/integration/test_crash.py tests/integration/test_load.py \
	    tests/integration/test_prune.py::test_prune_killed_at_random_moments_loses_nothing \
	    tests/integration/test_recovery.py

bench: build
	@scripts/sandbox up >/dev/null
	bench/api

fuzz: build-fuzz
	@$(PY) scripts/run-tests --only fuzz --fuzz-build $(FUZZ_BUILD) --fuzz-seconds $(FUZZ_SECONDS)

test-unit: build
	meson test -C $(BUILD) --print-errorlogs

test-integration: build node_modules/.package-lock.json
	@$(PY) scripts/run-tests --build $(BUILD) --only integration

# PREFIX also applies to a build folder set up earlier with another one: the
# binary has its data folder (the web UI) compiled in. A relative DESTDIR is
# taken from here, not from inside the build folder as meson would.
install: build
	@meson configure $(BUILD) -Dprefix=$(PREFIX)
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(abspath $(DESTDIR)))

# The install layout, the man page and the systemd unit (seconds).
test-packaging:
	@tests/packaging/test_install.sh

# Builds the container image with podman from a local debootstrap base and
# checks what is inside (minutes; installs podman and debootstrap if missing).
test-container:
	@scripts/test-container

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) out
