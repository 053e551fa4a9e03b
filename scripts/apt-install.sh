#!/bin/bash
# Installs the Debian packages of the list that are not installed yet, without letting their
# install start a service: a /usr/sbin/policy-rc.d that exits 101 (made only when there is none,
# removed afterwards) stops invoke-rc.d and deb-systemd-invoke. Nothing running is stopped.
# With --disable-units, systemd units those packages brought are disabled too, so none starts at
# the next boot (the bench's peers: the harness runs its own daemons, bench/README.md).
#   usage: scripts/apt-install.sh [--disable-units] WHAT PACKAGE...
set -euo pipefail
disable=""
if [ "${1:-}" = "--disable-units" ]; then disable=1; shift; fi
what=$1
shift
missing=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages for $what: ${missing[*]}"
made=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# made by scripts/apt-install.sh for one install, then removed\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made=1
fi
trap '[ -n "$made" ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq "${missing[@]}" >/dev/null
if [ -n "$disable" ] && [ -d /run/systemd/system ]; then
  for u in $(dpkg -L "${missing[@]}" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/@]+\.service$' | xargs -r -n1 basename); do
    systemctl disable "$u" >/dev/null 2>&1 || true
  done
fi
