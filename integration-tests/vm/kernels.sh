#!/usr/bin/env bash
# Download (never install) the Debian kernel packages the VM suite boots.
#
#   kernels.sh [--list] [KERNEL...]     KERNEL: 6.1 | 6.12 (default: both)
#
# Prints the path of each .deb (one per line, in argument order) on stdout. The packages
# land in "$VMTEST_CACHE/debs" (default <repo>/target/vm-cache/debs), fetched with
# `apt-get download` from whatever this machine's apt sources offer:
#   6.1   newest linux-image-6.1.0-<N>-amd64 with a candidate (bookworm / bookworm-security)
#   6.12  the dependency of the meta package linux-image-6.12-amd64 (bookworm-security)
# Nothing is hard-coded beyond the series, so a new point release is picked up after
# `apt-get update`. Without network the newest matching .deb already in the cache is used.
# `--list` only resolves the package names (no download).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VMTEST_CACHE:-$repo/target/vm-cache}
debs="$cache/debs"
APT_LOCK=(-o DPkg::Lock::Timeout=300)

log() { printf 'kernels: %s\n' "$*" >&2; }

# Print the binary package name for a kernel series, or fail.
resolve() {
    local dep name
    case "$1" in
        6.1)
            # Generic flavour only (no -cloud/-rt: cloud lacks 9p, rt changes scheduling).
            # One `apt-cache policy` for all names (one call per name takes seconds).
            local names
            names=$(apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
                grep -E '^linux-image-6\.1\.0-[0-9]+-amd64$' || true)
            [[ -n "$names" ]] || return 1
            # shellcheck disable=SC2086
            name=$(apt-cache policy $names 2>/dev/null |
                awk '/^[^ ]/ { p = $1; sub(/:$/, "", p) } /^ *Candidate:/ && $2 != "(none)" { print p }' |
                sort -V | tail -n1)
            ;;
        6.12)
            dep=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
                sed -n 's/^ *Depends: *\(linux-image-6\.12[^ ]*-amd64\)$/\1/p' | head -n1)
            name=$dep
            ;;
        *)
            log "unknown kernel series '$1' (known: 6.1 6.12)"
            return 2
            ;;
    esac
    [[ -n "$name" ]] || return 1
    echo "$name"
}

# Newest cached .deb for a series (offline fallback).
cached() {
    local pat
    case "$1" in
        6.1) pat='linux-image-6.1.0-[0-9]*-amd64_*_amd64.deb' ;;
        6.12) pat='linux-image-6.12.*-amd64_*_amd64.deb' ;;
    esac
    # shellcheck disable=SC2086
    (cd "$debs" 2>/dev/null && ls -1 $pat 2>/dev/null | grep -v -e cloud -e '-rt-' | sort -V | tail -n1) |
        sed "s|^|$debs/|"
}

updated=0
apt_update() {
    [[ $updated == 1 ]] && return 0
    updated=1
    if [[ $(id -u) == 0 ]]; then
        log "apt-get update"
        apt-get "${APT_LOCK[@]}" -qq update >&2 || log "apt-get update failed"
    fi
}

fetch() {
    local series=$1 name file
    if ! name=$(resolve "$series"); then
        apt_update
        name=$(resolve "$series") || name=
    fi
    if [[ -z "$name" ]]; then
        file=$(cached "$series")
        if [[ -n "$file" ]]; then
            log "$series: no candidate in apt lists, using cached $(basename "$file")"
            echo "$file"
            return 0
        fi
        log "$series: no package found (apt sources: $(apt-cache policy 2>/dev/null | grep -c http) entries); need bookworm${series/6.12/-security}"
        return 1
    fi
    if [[ ${list_only:-0} == 1 ]]; then
        echo "$name"
        return 0
    fi
    mkdir -p "$debs"
    # The file name carries the version: reuse it when present.
    file=$(ls -1 "$debs/${name}_"*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -z "$file" ]]; then
        log "$series: apt-get download $name"
        if ! (cd "$debs" && apt-get "${APT_LOCK[@]}" -qq download "$name" >&2 2>&1); then
            apt_update
            (cd "$debs" && apt-get "${APT_LOCK[@]}" -qq download "$name" >&2 2>&1) || {
                file=$(cached "$series")
                [[ -n "$file" ]] || { log "$series: download of $name failed"; return 1; }
                log "$series: download failed, using cached $(basename "$file")"
                echo "$file"
                return 0
            }
        fi
        file=$(ls -1 "$debs/${name}_"*_amd64.deb | sort -V | tail -n1)
    fi
    echo "$file"
}

list_only=0
series=()
for a in "$@"; do
    case "$a" in
        --list) list_only=1 ;;
        -h | --help)
            sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) series+=("$a") ;;
    esac
done
[[ ${#series[@]} -gt 0 ]] || series=(6.1 6.12)
for s in "${series[@]}"; do
    fetch "$s"
done
