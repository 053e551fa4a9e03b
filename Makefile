# PolyFS: the two commands a newcomer needs are `make test` and `make up`.
# Both install what they need on a fresh Debian 12 machine (run as root), then build.
SHELL := /bin/bash
APT_PACKAGES := libfuse2 fuse3 bindfs fio attr sqlite3 git vim util-linux mount python3 make g++ docker.io postgresql-15 chromium
# Only `make bench` installs these (the peer systems of bench/: GlusterFS, MooseFS, and ip/nsenter
# for MooseFS's network namespace); `make test` and CI never do.
BENCH_APT_PACKAGES := glusterfs-server glusterfs-client moosefs-master moosefs-chunkserver moosefs-client moosefs-cli iproute2 util-linux
STAMP := node_modules/.polyfs-deps

.PHONY: all deps apt bench-apt build test up dev bench clean plugin plugin-rootfs test-image

all: build

# Debian packages: libfuse2 (the addon links libfuse.so.2), fuse3 (fusermount), bindfs and fio
# (bench/), attr (getfattr/setfattr), sqlite3, git and vim (tests run them on the mount),
# util-linux and mount (setpriv, tmpfs for the full-disk test), docker.io (the plugin and its tests
# need a Docker engine), postgresql-15 (the PostgreSQL fault test runs its own server). Their
# install starts no service (scripts/apt-install.sh); the tests start what they need.
# chromium: the status page's browser test (test/http/browser.test.ts) drives it headless.
apt:
	@bash scripts/apt-install.sh "make test and make up" $(APT_PACKAGES)

$(STAMP): package.json package-lock.json patches/* scripts/build-fuse.js
	npm ci --no-audit --no-fund
	touch $(STAMP)

deps: apt $(STAMP)

build: deps
	npx tsc -p tsconfig.json

# Only *.test.js files are tests (node 20 would also run every .js under a dir named test/).
# One file at a time: the FUSE suites mount real filesystems and the machine has 2 cores.
test: build
	node --test --test-concurrency=1 $$(find dist/test -name '*.test.js' | sort)

# bin/polyfs's first line starts node with HEAP_FLAGS (src/util/heap.ts).
up: build
	./bin/polyfs dev

# The bench's peer systems: installed without starting their services, and their systemd units
# disabled, so glusterd and mfsmaster never start by themselves; the harness runs its own
# daemons (bench/README.md).
bench-apt:
	@bash scripts/apt-install.sh --disable-units "bench/" $(BENCH_APT_PACKAGES)

bench: build bench-apt
	node dist/bench/run.js

clean:
	rm -rf dist

# The Docker managed plugin (see plugin/README.md and rootfs-build/README.md). plugin-rootfs only
# assembles plugin/ (rootfs/ and config.json); plugin (re)creates it in the local dockerd as
# $(PLUGIN_NAME), the name `docker volume create -d polyfs` and `driver: polyfs` use, as after
# `docker plugin install --alias polyfs katharos/polyfs`. It is created disabled.
PLUGIN_NAME ?= polyfs

plugin-rootfs: build
	bash rootfs-build/build.sh

plugin: plugin-rootfs
	@docker info >/dev/null 2>&1 || { echo "make plugin: no Docker daemon answers; start one (dockerd >/var/log/dockerd.log 2>&1 &) and run make plugin again" >&2; exit 1; }
	@if docker plugin inspect $(PLUGIN_NAME) >/dev/null 2>&1; then \
	  docker plugin disable -f $(PLUGIN_NAME) >/dev/null 2>&1 || true; \
	  docker plugin rm -f $(PLUGIN_NAME); \
	fi
	docker plugin create $(PLUGIN_NAME) plugin/

# A busybox image for test containers, imported from Debian's busybox-static (no registry).
test-image:
	bash rootfs-build/test-image.sh polyfs-test-busybox
