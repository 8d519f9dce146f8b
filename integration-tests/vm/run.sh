#!/usr/bin/env bash
# The VM suite: run the kernel-dependent integration tests on other kernels (pure cgroup v2,
# other Landlock ABIs), or any command with the sandbox binary on PATH.
#
#   run.sh [--quick] [--selftest] [--kernel K]...            the suite
#   run.sh [--kernel K]... [--user] [--file F]... -- CMD...  CMD in each kernel (default 6.12)
#
#   --kernel K   6.1 (Landlock ABI 2) or 6.12 (ABI 6); repeatable; suite default: both
#   --quick      suite as uid 1000 only (one boot per kernel) instead of root and uid 1000
#   --selftest   run the C stand-in (selftest/selftest.c) instead of the real test binary
#   --user       (with CMD) run CMD as uid 1000 in the delegated cgroup, not as root
#   --file F     (with CMD) also copy F into /vm (e.g. a policy file); repeatable
#   --no-build   use the binaries already in target/vm-build
#   --no-install do not try to install qemu/busybox-static/cpio
#
# The suite builds static binaries into target/vm-build (sandbox, probe and the `sandbox`
# integration-test binary), then per kernel and user boots one VM (boot.sh) running
#   env SANDBOX_BIN=/vm/sandbox SANDBOX_PROBE=/vm/probe SANDBOX_MUST_WORK=1 \
#       EXPECT_LANDLOCK_ABI=<2|6> /vm/sandbox-tests --test-threads=2 FILTER
# once per FILTER in cgroup:: landlock:: userns:: seccomp:: core:: (libtest-mimic takes one),
# and prints a kernel x user x result table. Exit 1 if any run failed, 0 otherwise; when no
# VM can be booted here it prints `skipped: vm: <why>` and exits 0.
# Environment: VMTEST_CACHE, VMTEST_TIMEOUT (per boot, default 300 s), VMTEST_MEM (MiB,
# default 1024), VMTEST_MUST_WORK (default 1), VMTEST_FILTERS (override the filters),
# VMTEST_LEAK_LAUNCHES (launches of cgroup::no_leftovers_after_many_launches, default 300),
# plus boot.sh's (VMTEST_ACCEL, VMTEST_VERBOSE, ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export VMTEST_CACHE=${VMTEST_CACHE:-$repo/target/vm-cache}
cache=$VMTEST_CACHE
build_dir="$repo/target/vm-build"
stage="$build_dir/stage"
triple=x86_64-unknown-linux-gnu
timeout=${VMTEST_TIMEOUT:-300}
mem=${VMTEST_MEM:-1024}
filters=${VMTEST_FILTERS:-"cgroup:: landlock:: userns:: seccomp:: core::"}

log() { printf 'vm: %s\n' "$*" >&2; }
skip() { printf 'skipped: vm: %s\n' "$*"; exit 0; }
usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }

quick=0 selftest=0 build=1 install=1 as_user=0
kernels=()
extra_files=()
cmd=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kernel) kernels+=("${2:?}"); shift 2 ;;
        --kernel=*) kernels+=("${1#*=}"); shift ;;
        --quick) quick=1; shift ;;
        --selftest) selftest=1; shift ;;
        --user) as_user=1; shift ;;
        --file) extra_files+=("${2:?}"); shift 2 ;;
        --no-build) build=0; shift ;;
        --no-install) install=0; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; cmd=("$@"); break ;;
        *) usage >&2; exit 2 ;;
    esac
done

t0=$(date +%s)
now() { echo $(($(date +%s) - t0)); }

# ---- tools, kernels ----

mkdir -p "$cache"
if [[ $install == 1 ]]; then
    "$here/install-tools.sh" 2>"$cache/install-tools.err" || {
        cat "$cache/install-tools.err" >&2
        why=$(tail -n1 "$cache/install-tools.err")
        skip "${why#install-tools: }"
    }
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not installed"

if [[ ${#kernels[@]} == 0 ]]; then
    if [[ ${#cmd[@]} -gt 0 ]]; then kernels=(6.12); else kernels=(6.1 6.12); fi
fi
declare -A deb abi=([6.1]=2 [6.12]=6)
for k in "${kernels[@]}"; do
    [[ -n "${abi[$k]:-}" ]] || { log "unknown kernel '$k' (known: 6.1 6.12)"; exit 2; }
    deb[$k]=$("$here/kernels.sh" "$k") || skip "cannot download the $k kernel package (see above)"
done
log "kernels ready after $(now)s"

# ---- binaries ----

cargo_env=(env RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR="$build_dir")
mkdir -p "$stage"
if [[ $selftest == 1 ]]; then
    # Its own directory: the stand-in must not replace the real test binary in $stage.
    mkdir -p "$build_dir/selftest"
    gcc -O2 -static -o "$build_dir/selftest/sandbox-tests" "$here/selftest/selftest.c" ||
        skip "cannot build the selftest (gcc with static libc needed)"
    bins=("$build_dir/selftest/sandbox-tests")
    [[ -x "$stage/sandbox" ]] && bins+=("$stage/sandbox")
elif [[ $build == 1 ]]; then
    log "building static binaries into target/vm-build"
    (cd "$repo" && "${cargo_env[@]}" cargo build --release --target "$triple" \
        -p sandbox-cli -p integration-tests --bins) >&2
    cp "$build_dir/$triple/release/sandbox" "$build_dir/$triple/release/probe" "$stage/"
    if [[ ${#cmd[@]} == 0 ]]; then
        json=$(cd "$repo" && "${cargo_env[@]}" cargo test --release --target "$triple" \
            -p integration-tests --test sandbox --no-run --message-format=json)
        exe=$(grep '"reason":"compiler-artifact"' <<<"$json" | grep '"kind":\["test"\]' |
            grep '"name":"sandbox"' | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | tail -n1)
        [[ -n "$exe" && -x "$exe" ]] || { log "no integration test executable in cargo's output"; exit 1; }
        cp "$exe" "$stage/sandbox-tests"
    fi
    log "binaries built after $(now)s"
fi
if [[ $selftest == 0 ]]; then
    bins=("$stage/sandbox" "$stage/probe")
    [[ ${#cmd[@]} == 0 ]] && bins+=("$stage/sandbox-tests")
    for b in "${bins[@]}"; do
        [[ -x "$b" ]] || { log "missing $b (run without --no-build)"; exit 1; }
    done
fi
boot_files=()
for b in "${bins[@]}"; do boot_files+=(-i "$b"); done
[[ -d "$repo/policies" ]] && boot_files+=(-i "$repo/policies")
for f in "${extra_files[@]+"${extra_files[@]}"}"; do boot_files+=(-i "$f"); done

# A VM that died (125) before printing anything: can qemu boot at all here?
check_boot() {
    "$here/boot.sh" -t 120 -k "$1" -- true >/dev/null 2>"$cache/bootcheck.log" && return 0
    skip "qemu cannot boot the $2 kernel here: $(grep -v '^ *|' "$cache/bootcheck.log" | tail -n1)"
}

# ---- an arbitrary command ----

if [[ ${#cmd[@]} -gt 0 ]]; then
    rc=0
    for k in "${kernels[@]}"; do
        u=(); [[ $as_user == 1 ]] && u=(-u)
        log "kernel $k ($(basename "${deb[$k]}")), $([[ $as_user == 1 ]] && echo uid 1000 || echo root): ${cmd[*]}"
        r=0
        "$here/boot.sh" "${u[@]+"${u[@]}"}" -t "$timeout" -m "$mem" "${boot_files[@]}" -k "${deb[$k]}" -- \
            env SANDBOX_BIN=/vm/sandbox SANDBOX_PROBE=/vm/probe "${cmd[@]}" || r=$?
        log "kernel $k: exit $r"
        [[ $r == 125 ]] && check_boot "${deb[$k]}" "$k"
        [[ $r != 0 ]] && rc=$r
    done
    exit "$rc"
fi

# ---- the suite ----

# libtest-mimic 0.8 takes a single FILTER argument: one run of the binary per filter, all in
# the same boot. Exit status: the last failing run's (101), else 0.
guest_loop='rc=0; for f in "$@"; do /vm/sandbox-tests --color=never --test-threads=2 "$f" || rc=$?; done; exit $rc'
users=(root user)
[[ $quick == 1 ]] && users=(user)
logs="$cache/logs"
mkdir -p "$logs"
rows=()
failed=0
for k in "${kernels[@]}"; do
    for who in "${users[@]}"; do
        u=(); [[ $who == user ]] && u=(-u)
        name="$k-$who"
        log "=== kernel $k as $([[ $who == user ]] && echo 'uid 1000 (delegated cgroup)' || echo root) ==="
        s=$(date +%s)
        r=0
        # shellcheck disable=SC2086 # the filters are separate words
        "$here/boot.sh" "${u[@]+"${u[@]}"}" -t "$timeout" -m "$mem" "${boot_files[@]}" -k "${deb[$k]}" -- \
            env SANDBOX_BIN=/vm/sandbox SANDBOX_PROBE=/vm/probe \
            SANDBOX_MUST_WORK="${VMTEST_MUST_WORK:-1}" EXPECT_LANDLOCK_ABI="${abi[$k]}" \
            SANDBOX_LEAK_LAUNCHES="${VMTEST_LEAK_LAUNCHES:-300}" \
            RUST_BACKTRACE=1 sh -c "$guest_loop" sh $filters \
            2>&1 | tee "$logs/$name.log" || r=${PIPESTATUS[0]}
        secs=$(($(date +%s) - s))
        [[ $r == 125 && ! -s "$logs/$name.log" ]] && check_boot "${deb[$k]}" "$k"
        counts=$(grep -ao 'test result: .*' "$logs/$name.log" |
            sed -E 's/.*\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/' |
            awk '{ p += $1; f += $2; i += $3; n++ } END { if (n) printf "%d passed, %d failed, %d ignored", p, f, i }' || true)
        case "$r" in
            0) res=ok; [[ -z "$counts" ]] && res="ok (no tests ran)" ;;
            124) res="TIMEOUT"; failed=1 ;;
            125) res="VM DIED"; failed=1 ;;
            *) res="FAILED ($r)"; failed=1 ;;
        esac
        rows+=("$(printf '%-8s %-6s %-18s %-36s %4ss' "$k" "$([[ $who == user ]] && echo 1000 || echo root)" "$res" "${counts:--}" "$secs")")
    done
done

echo
echo "VM suite ($([[ $selftest == 1 ]] && echo selftest || echo integration tests), $(now)s total, logs in ${logs#"$repo"/})"
printf '%-8s %-6s %-18s %-36s %5s\n' kernel user result tests time
for row in "${rows[@]}"; do echo "$row"; done
exit "$failed"
