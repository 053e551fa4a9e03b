#!/usr/bin/env bash
# Builds the Docker managed plugin's root filesystem in plugin/rootfs/ and copies the manifest to
# plugin/config.json. No image is pulled and no debootstrap base system is used:
#   1. a handful of Debian packages, fetched with `apt-get download` (checked against apt's signed
#      indexes) and unpacked with `dpkg-deb -x`, laid out with usrmerge like Debian 12;
#   2. the host's Node 20 binary (stripped when that still runs);
#   3. the built project at /opt/polyfs with its production node_modules, trimmed for linux-x64.
# The unpacked packages and the trimmed node_modules are cached under rootfs-build/cache/ by a hash
# of what they are made of, so a second run only reassembles and re-checks. Run as root (chroot).
# See rootfs-build/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE=$HERE/cache
DEBS=$CACHE/debs
OUT=$REPO/plugin
ROOTFS=$OUT/rootfs
SIZE_WARN_MB=150

# The packages the plugin needs at run time, and nothing they would pull in only for maintainer
# scripts or docs (fuse3's adduser/mount/sed, gcc-12-base). The ELF check below proves the set is
# closed: every NEEDED library of every ELF file in the rootfs resolves inside the rootfs.
#   libc6, libgcc-s1, libstdc++6  node and the native addons
#   libfuse2                      fuse-native's addon links libfuse.so.2
#   fuse3, libfuse3-3             fusermount3 (and /usr/bin/fusermount -> fusermount3)
#   tini                          the entrypoint, reaps children and forwards signals
PACKAGES=(libc6 libgcc-s1 libstdc++6 libfuse2 libfuse3-3 fuse3 tini)
# Bump when the way the base or the modules are made changes (invalidates their caches).
BASE_RECIPE=3
MODULES_RECIPE=1
# Production dependencies that are only needed to build (the postinstall patch + node-gyp rebuild).
BUILD_ONLY_DEPS=(node-gyp patch-package)

log() { echo "rootfs-build: $*" >&2; }
die() { echo "rootfs-build: error: $*" >&2; exit 1; }
T0=$(date +%s)

# ---------------------------------------------------------------------------------------- checks
[ "$(id -u)" = 0 ] || die "run as root (dpkg-deb ownership, chroot checks)"
for c in apt-get apt-cache dpkg dpkg-deb chroot sha256sum npm node du find; do
  command -v "$c" >/dev/null || die "missing command: $c"
done
ARCH=$(dpkg --print-architecture)
[ "$ARCH" = amd64 ] || die "only amd64 is supported (host node binary and linux-x64 addons), not $ARCH"

cd "$REPO"
[ -f bin/polyfs ] && [ -f dist/src/cli/index.js ] || die "no built project (bin/polyfs, dist/src/cli/index.js): run make build first"
[ -f node_modules/fuse-native/build/Release/fuse.node ] || die "no node_modules/fuse-native/build/Release/fuse.node: run make build first"
[ -d proto/polyfs/v1 ] || die "proto/polyfs/v1 is missing"
[ -f config.json ] || die "config.json (the plugin manifest) is missing"
NODE_BIN=$(readlink -f "$(command -v node)")
NODE_VERSION=$("$NODE_BIN" --version)
case "$NODE_VERSION" in v20.*) ;; *) die "host node is $NODE_VERSION, the plugin ships Node 20";; esac

mkdir -p "$DEBS"

# ------------------------------------------------------------------------- 1. base from packages
# Candidate versions and SHA256s from apt's (signed) indexes, in one apt-cache call (each call
# reads all the indexes: about a second without a pkgcache.bin). An empty index gets one update.
candidates() {
  apt-cache show --no-all-versions "$@" 2>/dev/null | awk '
    $1 == "Package:" { p = $2 } $1 == "Version:" { v = $2 } $1 == "SHA256:" { s = $2 }
    /^$/ { if (p != "") print p, v, s; p = v = s = "" } END { if (p != "") print p, v, s }'
}
INDEX=$(candidates "${PACKAGES[@]}")
if [ -z "$INDEX" ]; then
  log "apt has no index for ${PACKAGES[*]}: apt-get update"
  apt-get update -qq
  INDEX=$(candidates "${PACKAGES[@]}")
fi
PINNED=()
declare -A SHA256
for p in "${PACKAGES[@]}"; do
  v= sha=
  read -r _ v sha < <(awk -v p="$p" '$1 == p' <<<"$INDEX") || true
  [ -n "${v:-}" ] && [ -n "${sha:-}" ] || die "apt knows no version of $p (apt-get update?)"
  PINNED+=("$p=$v")
  SHA256[$p]=$sha
done
BASE_KEY=$(printf '%s\n' "recipe=$BASE_RECIPE" "arch=$ARCH" "${PINNED[@]}" | sha256sum | cut -c1-16)
BASE=$CACHE/base-$BASE_KEY

# Moves /bin /sbin /lib /lib64 into /usr and leaves symlinks, as Debian 12's usrmerge does. A path
# shipped both in /X and /usr/X would be a conflict: fail rather than pick one.
usrmerge() {
  local root=$1 d rel
  for d in bin sbin lib lib64; do
    mkdir -p "$root/usr/$d"
    if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
      while IFS= read -r -d '' rel; do
        rel=${rel#./}
        if [ -e "$root/usr/$d/$rel" ] || [ -L "$root/usr/$d/$rel" ]; then
          die "usrmerge: /$d/$rel and /usr/$d/$rel both exist"
        fi
      done < <(cd "$root/$d" && find . -mindepth 1 ! -type d -print0)
      cp -a "$root/$d/." "$root/usr/$d/"
      rm -rf "${root:?}/$d"
    fi
    ln -s "usr/$d" "$root/$d"
  done
}

build_base() {
  local tmp=$BASE.tmp pv p v deb
  log "base: ${PINNED[*]}"
  # apt-get download verifies each file against the hashes in the signed indexes and skips a file
  # that is already in the cache with the right hash. The _apt user does the download when it can
  # write the directory (apt's sandbox).
  if id _apt >/dev/null 2>&1; then chown _apt "$DEBS"; fi
  (cd "$DEBS" && apt-get download -q=2 "${PINNED[@]}") || die "apt-get download failed (apt-get update?)"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for pv in "${PINNED[@]}"; do
    p=${pv%%=*}; v=${pv#*=}
    deb=$DEBS/${p}_${v//:/%3a}_$ARCH.deb
    [ -f "$deb" ] || deb=$DEBS/${p}_${v//:/%3a}_all.deb
    [ -f "$deb" ] || die "downloaded .deb for $pv not found in $DEBS"
    # Belt and braces for a cached file: its hash must still be the index's.
    [ "$(sha256sum < "$deb" | cut -d' ' -f1)" = "${SHA256[$p]}" ] || die "$deb does not match the SHA256 in apt's index"
    dpkg-deb -x "$deb" "$tmp"
  done
  usrmerge "$tmp"
  # Documentation, manuals, translations, bug-report hooks, gdb helpers, initramfs hooks: nothing
  # runs them in a plugin.
  rm -rf "$tmp"/usr/share/{doc,man,info,lintian,locale,bug,gcc,gdb,initramfs-tools}
  # glibc's iconv charset modules (9 MB): only iconv_open() for a charset glibc does not build in
  # loads them, and nothing here calls it (Node converts with ICU, iconv-lite is plain JS).
  rm -rf "$tmp/usr/lib/x86_64-linux-gnu/gconv"
  # The entrypoint is the dynamically linked tini; the static copy would be dead weight.
  rm -f "$tmp/usr/bin/tini-static"
  # Our code and fuse-native run `fusermount -u` / `fusermount -uz`. Debian's fuse3 already ships
  # /bin/fusermount -> fusermount3 (fuse3 replaces fuse 2's package); make sure it is there.
  [ -x "$tmp/usr/bin/fusermount3" ] || die "fuse3 did not provide /usr/bin/fusermount3"
  [ -e "$tmp/usr/bin/fusermount" ] || ln -s fusermount3 "$tmp/usr/bin/fusermount"
  [ "$(readlink "$tmp/usr/bin/fusermount")" = fusermount3 ] || die "/usr/bin/fusermount is not a symlink to fusermount3"
  touch "$tmp/.polyfs-base-complete"
  rm -rf "$BASE"
  mv "$tmp" "$BASE"
}

# cached LABEL DIR MARKER BUILDER KIND: runs BUILDER unless DIR holds MARKER (a finished
# build), then drops the older cache dirs of that KIND (another package set or versions).
cached() {
  if [ -f "$2/$3" ]; then
    log "$1: cached $(basename "$2")"
  else
    "$4"
  fi
  for old in "$CACHE"/"$5"-*; do
    [ "$old" = "$2" ] || rm -rf "$old"
  done
}

cached base "$BASE" .polyfs-base-complete build_base base

# ------------------------------------------------------------------ 3a. production node_modules
# Staged once per (lockfile, installed tree, patches, patched addon, recipe): copy node_modules,
# drop the build-only dependencies from the staged package.json, `npm prune --omit=dev` (offline,
# no scripts), then remove what linux-x64 never loads at run time.
MODULES_KEY=$( {
  echo "recipe=$MODULES_RECIPE"
  sha256sum package.json package-lock.json node_modules/.package-lock.json node_modules/fuse-native/build/Release/fuse.node patches/*.patch
} | sha256sum | cut -c1-16)
MODULES=$CACHE/modules-$MODULES_KEY

prune_modules() {
  local nm=$1 pkg
  # Other platforms' native code and loaders: fuse-shared-library requires only the -linux one on
  # linux x64; classic-level loads prebuilds/linux-x64/classic-level.node on glibc.
  rm -rf "$nm"/fuse-shared-library-darwin "$nm"/fuse-shared-library-linux-arm
  rm -rf "$nm"/typescript "$nm"/node-gyp "$nm"/patch-package "$nm"/.bin "$nm"/.polyfs-deps
  find "$nm/classic-level/prebuilds" -mindepth 1 -maxdepth 1 ! -name linux-x64 -exec rm -rf {} +
  rm -f "$nm"/classic-level/prebuilds/linux-x64/*.musl.node
  rm -rf "$nm"/classic-level/deps "$nm"/classic-level/binding.cc
  # fuse-native: only the patched addon built from source. With prebuilds/ gone node-gyp-build can
  # never fall back to the unpatched prebuilt addon; it loads build/Release/fuse.node or fails.
  rm -rf "$nm"/fuse-native/prebuilds
  find "$nm/fuse-native/build" -mindepth 1 ! -path '*/build/Release' ! -path '*/build/Release/fuse.node' -prune -exec rm -rf {} +
  rm -f "$nm"/fuse-native/fuse-native.c "$nm"/fuse-native/semaphore.h
  # fuse-shared-library-linux: its bundled libfuse, headers and binaries are for building and for
  # configure() (which copies fusermount into /usr/local); the plugin uses Debian's libfuse2 and
  # fusermount3. index.js (loaded by fuse-native) only needs the package itself.
  rm -rf "$nm"/fuse-shared-library-linux/libfuse/{lib,include,bin} "$nm"/fuse-shared-library-linux/example
  # Docs, typings, build files, sources for other toolchains.
  find "$nm" -type f \( -name '*.md' -o -name '*.markdown' -o -name '*.ts' -o -name '*.mts' -o -name '*.cts' \
    -o -name '*.map' -o -name '*.gyp' -o -name '*.gypi' -o -name '.travis.yml' -o -name '.eslintrc*' \
    -o -name '.editorconfig' -o -name '.npmignore' -o -name '.prettierrc*' -o -name 'tsconfig*.json' \) -delete
  # Tests, examples, docs and benchmarks at each package's top level (not deeper: a package may
  # have a runtime module in some lib/test/).
  for pkg in "$nm"/[!@]* "$nm"/@*/*; do
    [ -d "$pkg" ] || continue
    rm -rf "$pkg"/{test,tests,__tests__,example,examples,doc,docs,bench,benchmark,benchmarks,.github}
  done
  find "$nm" -mindepth 1 -type d -empty -delete
}

stage_modules() {
  local tmp=$MODULES.tmp d
  log "node_modules: staging production modules"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp -a node_modules package-lock.json "$tmp/"
  # The staged package.json: runtime dependencies only, no scripts (postinstall builds fuse-native).
  node -e '
    const fs = require("fs")
    const [src, dst, ...drop] = process.argv.slice(1)
    const p = JSON.parse(fs.readFileSync(src, "utf8"))
    for (const d of drop) delete p.dependencies[d]
    delete p.scripts
    fs.writeFileSync(dst, JSON.stringify(p, null, 2) + "\n")
  ' package.json "$tmp/package.json" "${BUILD_ONLY_DEPS[@]}"
  (cd "$tmp" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm prune failed in $tmp"
  prune_modules "$tmp/node_modules"
  for d in "${BUILD_ONLY_DEPS[@]}" typescript fuse-shared-library-darwin; do
    [ ! -e "$tmp/node_modules/$d" ] || die "node_modules/$d is still staged"
  done
  [ -f "$tmp/node_modules/fuse-native/build/Release/fuse.node" ] || die "staged node_modules lost fuse-native/build/Release/fuse.node"
  touch "$tmp/.polyfs-modules-complete"
  rm -rf "$MODULES"
  mv "$tmp" "$MODULES"
}

cached node_modules "$MODULES" .polyfs-modules-complete stage_modules modules

# ----------------------------------------------------------------------------------- assemble
log "assembling $ROOTFS"
mkdir -p "$OUT"
rm -rf "$ROOTFS"
cp -a "$BASE" "$ROOTFS"
rm -f "$ROOTFS/.polyfs-base-complete"
R=$ROOTFS
# Runs a command in the rootfs with the environment a plugin gets (only PATH), not this shell's.
in_root() { env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin chroot "$R" "$@"; }

# 2. Node: the host's binary needs only libc6, libstdc++6 and libgcc-s1 from the base.
install -m 0755 "$NODE_BIN" "$R/usr/bin/node"
if command -v strip >/dev/null; then
  cp "$R/usr/bin/node" "$R/usr/bin/node.stripped"
  if strip "$R/usr/bin/node.stripped" && [ "$(in_root /usr/bin/node.stripped --version 2>/dev/null)" = "$NODE_VERSION" ]; then
    mv "$R/usr/bin/node.stripped" "$R/usr/bin/node"
    log "node $NODE_VERSION: stripped"
  else
    rm -f "$R/usr/bin/node.stripped"
    log "node $NODE_VERSION: strip broke it, kept unstripped"
  fi
else
  log "node $NODE_VERSION: no strip (binutils), kept unstripped"
fi

# 3. The project. dist/src only (no maps: the .ts sources they point at are not shipped); proto/
# sits next to dist/ because src/rpc/schema.ts resolves it as dist/src/rpc/../../../proto.
P=$R/opt/polyfs
mkdir -p "$P/bin" "$P/dist" "$P/proto"
install -m 0755 bin/polyfs "$P/bin/polyfs"
cp package.json "$P/"
cp -a dist/src "$P/dist/src"
find "$P/dist" \( -name '*.map' -o -name '*.d.ts' \) -delete
(cd proto && find . -name '*.proto' -exec cp --parents {} "$P/proto/" \;)
cp -a "$MODULES/node_modules" "$P/node_modules"

# 4. The rest of the filesystem the plugin runs in. Docker supplies /etc/hosts and
# /etc/resolv.conf (host networking), and mounts /proc, /sys, /dev over the empty dirs.
install -d -m 1777 "$R/tmp"
install -d -m 0755 "$R/run/docker/plugins" "$R/mnt/polyfs" "$R/var/lib/polyfs" "$R/proc" "$R/sys" "$R/dev" "$R/etc"
install -d -m 0700 "$R/root"
cat > "$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat > "$R/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
cat > "$R/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF
# fusermount3 and libfuse2 leave /etc/mtab alone when it is a symlink (the kernel keeps it).
ln -sfn ../proc/self/mounts "$R/etc/mtab"
cp config.json "$OUT/config.json"

# --------------------------------------------------------------------------------- validation
# Every ELF file's NEEDED libraries must resolve inside the rootfs: ask the rootfs's own loader
# (what ldd does), in a chroot, so the host's libraries cannot stand in.
log "checking the shared libraries of every ELF file"
nelf=0
nstatic=0
while IFS= read -r -d '' line; do
  kind=${line%% *}; rel=${line#* }
  nelf=$((nelf + 1))
  # ld.so --list crashes on a static executable; those have nothing to resolve anyway.
  if [ "$kind" = static ]; then nstatic=$((nstatic + 1)); continue; fi
  out=$(in_root /lib64/ld-linux-x86-64.so.2 --list "$rel" 2>&1) || die "ld.so --list $rel failed:"$'\n'"$out"
  if grep -q 'not found' <<<"$out"; then
    die "$rel needs a library that is not in the rootfs:"$'\n'"$out"
  fi
done < <(node -e '
  // Regular files (not symlinks) that start with the ELF magic, as "dynamic PATH" or "static PATH"
  // (no PT_DYNAMIC program header), PATH inside the rootfs.
  const fs = require("fs"), path = require("path"), root = process.argv[1], buf = Buffer.alloc(64)
  const walk = d => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const f = path.join(d, e.name)
    if (e.isDirectory()) { walk(f); continue }
    if (!e.isFile()) continue
    const fd = fs.openSync(f, "r")
    try {
      if (fs.readSync(fd, buf, 0, 64, 0) < 64 || buf.readUInt32BE(0) !== 0x7f454c46) continue
      if (buf[4] !== 2 || buf[5] !== 1) throw new Error(f + ": not a 64-bit little-endian ELF file")
      const phoff = Number(buf.readBigUInt64LE(32)), phentsize = buf.readUInt16LE(54), phnum = buf.readUInt16LE(56)
      const ph = Buffer.alloc(phentsize * phnum)
      fs.readSync(fd, ph, 0, ph.length, phoff)
      let dynamic = false
      for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 2 /* PT_DYNAMIC */) dynamic = true
      process.stdout.write((dynamic ? "dynamic" : "static") + " /" + path.relative(root, f) + "\0")
    } finally { fs.closeSync(fd) }
  } }
  walk(root)' "$R")
log "  $nelf ELF files ($nstatic static): every NEEDED library resolves in the rootfs"

log "checking the binaries and modules in a chroot"
[ "$(in_root /usr/bin/node --version)" = "$NODE_VERSION" ] || die "node does not run in the rootfs"
in_root /usr/bin/tini --version >/dev/null || die "tini does not run in the rootfs"
in_root /usr/bin/fusermount3 -V >/dev/null || die "fusermount3 does not run in the rootfs"
in_root /usr/bin/fusermount -V >/dev/null || die "fusermount (-> fusermount3) does not run in the rootfs"
PATCH_VERSION=$(sed -n 's/^const PATCH_VERSION = \([0-9]*\).*/\1/p' scripts/build-fuse.js)
[ -n "$PATCH_VERSION" ] || die "cannot read PATCH_VERSION from scripts/build-fuse.js"
in_root /usr/bin/node -e "
  require('/opt/polyfs/node_modules/fuse-native'); require('/opt/polyfs/node_modules/classic-level')
  require('/opt/polyfs/node_modules/@grpc/grpc-js'); require('/opt/polyfs/node_modules/express')
  require('/opt/polyfs/node_modules/pino')
  // Every runtime dependency in package.json loads.
  const pkg = require('/opt/polyfs/package.json')
  const buildOnly = process.argv.slice(1, -1)
  for (const d of Object.keys(pkg.dependencies)) if (!buildOnly.includes(d)) require('/opt/polyfs/node_modules/' + d)
  // fuse-native loads the patched addon built from source.
  const dir = '/opt/polyfs/node_modules/fuse-native'
  const addon = require('/opt/polyfs/node_modules/node-gyp-build').path(dir)
  if (addon !== dir + '/build/Release/fuse.node') throw new Error('fuse-native would load ' + addon)
  const v = require(addon).polyfs_patch_version
  if (v !== Number(process.argv[process.argv.length - 1])) throw new Error('fuse-native addon has patch version ' + v)
" "${BUILD_ONLY_DEPS[@]}" "$PATCH_VERSION" || die "a runtime module does not load in the rootfs"
# Every compiled module of the project loads (a missing runtime dependency shows up here).
in_root /usr/bin/node -e "
  const fs = require('fs'), path = require('path')
  const walk = d => fs.readdirSync(d, { withFileTypes: true }).flatMap(e => e.isDirectory() ? walk(path.join(d, e.name)) : e.name.endsWith('.js') ? [path.join(d, e.name)] : [])
  for (const f of walk('/opt/polyfs/dist/src')) require(f)
  process.exit(0)
" || die "a module of dist/src does not load in the rootfs"
in_root /usr/bin/node /opt/polyfs/bin/polyfs --help >/dev/null || die "polyfs --help fails in the rootfs"

SIZE_MB=$(du -sm "$R" | cut -f1)
log "done in $(( $(date +%s) - T0 ))s: $ROOTFS is ${SIZE_MB} MB (node $(du -sm "$R/usr/bin/node" | cut -f1) MB, node_modules $(du -sm "$P/node_modules" | cut -f1) MB)"
if [ "$SIZE_MB" -gt "$SIZE_WARN_MB" ]; then
  log "WARNING: the rootfs is over ${SIZE_WARN_MB} MB"
fi
