# PolyFS: the two commands a newcomer needs are `make test` and `make up`.
# Both install what they need on a fresh Debian 12 machine (run as root), then build.
SHELL := /bin/bash
APT_PACKAGES := libfuse2 fuse3 bindfs fio attr sqlite3 git vim util-linux mount python3 make g++ docker.io
# Only `make bench` installs these (the peer systems of bench/: GlusterFS, MooseFS, and ip/nsenter
# for MooseFS's network namespace); `make test` and CI never do.
BENCH_APT_PACKAGES := glusterfs-server glusterfs-client moosefs-master moosefs-chunkserver moosefs-client moosefs-cli iproute2 util-linux
STAMP := node_modules/.polyfs-deps

.PHONY: all deps apt bench-apt build test up dev bench clean plugin plugin-rootfs test-image

all: build

# Debian packages: libfuse2 (the addon links libfuse.so.2), fuse3 (fusermount), bindfs and fio
# (bench/), attr (getfattr/setfattr), sqlite3, git and vim (tests run them on the mount),
# util-linux and mount (setpriv, tmpfs for the full-disk test), docker.io (the plugin and its tests
# need a Docker engine).
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

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

up: build
	node bin/polyfs dev

# The bench's peer systems. Their packages would start glusterd, mfsmaster and mfschunkserver
# as services on install: a /usr/sbin/policy-rc.d that exits 101 (made here only if there is
# none, removed afterwards) stops invoke-rc.d and deb-systemd-invoke from starting them, and
# under systemd the units just installed are disabled again, so none starts at the next boot;
# the harness runs its own daemons (bench/README.md). Nothing running is stopped.
bench-apt:
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for bench/:$$missing"; \
	  made=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\n# made by make bench-apt for the install, then removed\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made=1; fi; \
	  trap '[ -n "$$made" ] && rm -f /usr/sbin/policy-rc.d' EXIT; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  if [ -d /run/systemd/system ]; then \
	    for u in $$(dpkg -L $$missing 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.service$$' | xargs -r -n1 basename); do \
	      systemctl disable "$$u" >/dev/null 2>&1 || true; \
	    done; \
	  fi; \
	fi

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
