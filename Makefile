# The front door. `make run` brings the service up on a real hypervisor with
# demo domains; `make test` runs every test. Both install what is missing.

BUILD      ?= build
ASAN_BUILD ?= build-asan
STATE      ?= $(CURDIR)/.state
LISTEN     ?= 127.0.0.1:8080
PREFIX     ?= /usr/local
PY         := /usr/bin/python3

.PHONY: all build build-asan deps run test test-unit test-integration lint clean install \
        test-packaging test-container

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --werror --prefix=$(PREFIX) >/dev/null

$(ASAN_BUILD)/build.ninja:
	meson setup $(ASAN_BUILD) --werror -Db_sanitize=address,undefined -Db_lundef=false \
	    -Dbuildtype=debug >/dev/null

build: $(BUILD)/build.ninja
	@ninja -C $(BUILD) >/dev/null && echo "built $(BUILD)/virtvaultd"

build-asan: $(ASAN_BUILD)/build.ninja
	@ninja -C $(ASAN_BUILD) >/dev/null && echo "built $(ASAN_BUILD)/virtvaultd (ASan+UBSan)"

run: deps build
	@scripts/sandbox demo
	@mkdir -p $(STATE)
	@echo "virtvault: API at http://$(LISTEN)/v1  web UI at http://$(LISTEN)/  (Ctrl-C stops)"
	exec $(BUILD)/virtvaultd --listen $(LISTEN) --libvirt-uri qemu:///system \
	    --db $(STATE)/virtvault.db --vault-dir $(STATE)/vault --web-dir $(CURDIR)/web

test: deps build build-asan
	@$(PY) scripts/run-tests --build $(BUILD) --asan-build $(ASAN_BUILD)

test-unit: build
	meson test -C $(BUILD) --print-errorlogs

test-integration: build
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
	rm -rf $(BUILD) $(ASAN_BUILD)
