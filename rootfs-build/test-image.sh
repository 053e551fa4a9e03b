#!/usr/bin/env bash
# Usage: rootfs-build/test-image.sh NAME
# Builds a tiny local image NAME for test containers without any registry: Debian's busybox-static
# (apt-get download, checked against apt's signed indexes, into the same cache as build.sh), its
# applets as symlinks in /bin, /tmp and an /etc/passwd with root, imported with `docker import`.
# Does nothing when the image NAME already exists.
set -euo pipefail

NAME=${1:?usage: $0 NAME}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEBS=$HERE/cache/debs
log() { echo "test-image: $*" >&2; }
die() { echo "test-image: error: $*" >&2; exit 1; }

if docker image inspect "$NAME" >/dev/null 2>&1; then
  log "$NAME exists"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root"

candidate() {
  apt-cache show --no-all-versions busybox-static 2>/dev/null | awk '$1 == "Version:" { v = $2 } $1 == "SHA256:" { s = $2 } END { print v, s }'
}
read -r VERSION SHA < <(candidate) || true
if [ -z "${VERSION:-}" ]; then
  apt-get update -qq
  read -r VERSION SHA < <(candidate) || true
fi
[ -n "${VERSION:-}" ] && [ -n "${SHA:-}" ] || die "apt knows no version of busybox-static"
ARCH=$(dpkg --print-architecture)

mkdir -p "$DEBS"
if id _apt >/dev/null 2>&1; then chown _apt "$DEBS"; fi
(cd "$DEBS" && apt-get download -q=2 "busybox-static=$VERSION") || die "apt-get download busybox-static failed"
DEB=$DEBS/busybox-static_${VERSION//:/%3a}_$ARCH.deb
[ -f "$DEB" ] || die "$DEB not found after download"
[ "$(sha256sum < "$DEB" | cut -d' ' -f1)" = "$SHA" ] || die "$DEB does not match the SHA256 in apt's index"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
dpkg-deb -x "$DEB" "$WORK/deb"
BB=$WORK/deb/bin/busybox
[ -x "$BB" ] || die "no bin/busybox in $DEB"

ROOT=$WORK/root
install -d -m 0755 "$ROOT/bin" "$ROOT/etc" "$ROOT/root" "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"
install -d -m 1777 "$ROOT/tmp"
install -m 0755 "$BB" "$ROOT/bin/busybox"
# Static, so it runs on the host to list its applets.
for applet in $("$BB" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$ROOT/bin/$applet"
done
cat > "$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat > "$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF

tar --numeric-owner --owner=0 --group=0 -C "$ROOT" -c . \
  | docker import --change 'CMD ["/bin/sh"]' \
      --message "busybox-static $VERSION from the Debian archive (rootfs-build/test-image.sh)" - "$NAME" >/dev/null
log "$NAME: busybox-static $VERSION, $("$BB" --list | wc -l) applets"
