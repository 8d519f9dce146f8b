#!/usr/bin/env bash
# Make sure qemu-system-x86_64, cpio and a static busybox are available for boot.sh.
#
#   install-tools.sh        exit 0 when the tools are there (installed now or before),
#                           exit 1 with the reason on stderr otherwise
#
# Wanted: `apt-get install --no-install-recommends qemu-system-x86 busybox-static cpio`.
# Pitfall on these machine images: a qemu-utils from bookworm-backports (10.0.x) is
# preinstalled, and the stock bookworm qemu-system-x86 (7.2) would REMOVE it (version-locked
# qemu-system-common/qemu-utils). So the install is simulated first; if it would remove any
# package, the same install is done from bookworm-backports (the matching 10.0.x) through a
# private apt source list under the cache dir. /etc/apt is never modified, nothing is removed.
# VMTEST_FORCE_INSTALL=1 runs the install even when the tools are present (to test this script).
# Both qemu 7.2 and 10.0 boot the kernels identically (see shared/notes/vm-testing.md).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VMTEST_CACHE:-$repo/target/vm-cache}
APT_LOCK=(-o DPkg::Lock::Timeout=300)
PKGS=(qemu-system-x86 busybox-static cpio)

log() { printf 'install-tools: %s\n' "$*" >&2; }
mkdir -p "$cache"
ilog="$cache/install-tools.log"
# Run an apt-get install quietly; on failure show the end of its output.
quiet() { "$@" >"$ilog" 2>&1 || { tail -n 15 "$ilog" >&2; return 1; }; }

static_busybox() {
    [[ -x /bin/busybox ]] && ! ldd /bin/busybox >/dev/null 2>&1
}
have_all() {
    command -v qemu-system-x86_64 >/dev/null && command -v cpio >/dev/null && static_busybox
}

[[ ${VMTEST_FORCE_INSTALL:-0} == 1 ]] || { have_all && exit 0; }
if [[ $(id -u) != 0 ]]; then
    log "qemu-system-x86_64/cpio/busybox-static missing and not root; run: sudo apt-get install --no-install-recommends ${PKGS[*]}"
    exit 1
fi
command -v apt-get >/dev/null || { log "no apt-get on this host; install qemu-system-x86_64, cpio and a static busybox"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
apt-get "${APT_LOCK[@]}" -qq update >&2 || log "apt-get update failed (continuing with current lists)"

sim=$(apt-get "${APT_LOCK[@]}" -s install -y --no-install-recommends "${PKGS[@]}" 2>&1) || {
    log "apt-get -s install failed: $(tail -n3 <<<"$sim")"
    exit 1
}
removes=$(sed -n 's/^Remv \([^ ]*\) .*/\1/p' <<<"$sim" | tr '\n' ' ')
if [[ -z "$removes" ]]; then
    log "apt-get install ${PKGS[*]}"
    quiet apt-get "${APT_LOCK[@]}" -qq install -y --no-install-recommends "${PKGS[@]}" || exit 1
    have_all && exit 0
    log "tools still missing after install"
    exit 1
fi

# The stock install would remove packages (e.g. a backports qemu-utils): use backports.
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n "$codename" ]] || { log "stock install would remove: $removes; unknown release, not installing"; exit 1; }
log "stock install would remove: $removes-> installing qemu from $codename-backports instead"
adir="$cache/apt"
mkdir -p "$adir/lists/partial" "$adir/archives/partial"
cat >"$adir/sources.list" <<EOF
deb http://deb.debian.org/debian $codename main
deb http://deb.debian.org/debian $codename-updates main
deb http://deb.debian.org/debian-security $codename-security main
deb http://deb.debian.org/debian $codename-backports main
EOF
APTO=(-o "Dir::Etc::sourcelist=$adir/sources.list" -o Dir::Etc::sourceparts=-
    -o "Dir::State::lists=$adir/lists" -o "Dir::Cache::archives=$adir/archives"
    -o APT::Sandbox::User=root)
quiet apt-get "${APTO[@]}" "${APT_LOCK[@]}" -qq update || exit 1
# Upgrade exactly the already-installed qemu packages alongside, so versions stay in lockstep.
extra=()
for p in $removes; do extra+=("$p"); done
sim=$(apt-get "${APTO[@]}" "${APT_LOCK[@]}" -s install -y --no-install-recommends \
    -t "$codename-backports" qemu-system-x86 "${extra[@]}" busybox-static cpio 2>&1) || {
    log "backports install not possible: $(tail -n3 <<<"$sim")"
    exit 1
}
if grep -q '^Remv ' <<<"$sim"; then
    log "backports install would also remove: $(sed -n 's/^Remv \([^ ]*\) .*/\1/p' <<<"$sim" | tr '\n' ' ')- not installing"
    exit 1
fi
quiet apt-get "${APTO[@]}" "${APT_LOCK[@]}" -qq install -y --no-install-recommends \
    -t "$codename-backports" qemu-system-x86 "${extra[@]}" busybox-static cpio || exit 1
have_all && exit 0
log "tools still missing after backports install"
exit 1
