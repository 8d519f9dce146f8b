#!/usr/bin/env bash
# Boot a Debian kernel .deb in a throw-away QEMU VM and run one command inside.
#
#   boot.sh -k DEB [-i FILE]... [-u] [-t SECS] [-m MB] [-c CPUS] [-A ARGS] [-l LOG] -- CMD [ARG]...
#
#   -k DEB    kernel package (linux-image-*.deb, see kernels.sh); unpacked (never installed)
#             into the cache; the uncompressed vmlinux is booted through its PVH entry
#   -i FILE   copy FILE (or a directory) into /vm in the guest (/vm is first on PATH); for a
#             dynamically linked ELF the libraries `ldd` lists are copied too. Repeatable
#   -u        run CMD as uid/gid 1000 (vmuser) via su, inside the delegated cgroup
#             /sys/fs/cgroup/user.slice/vmuser (owned by 1000; CMD starts in its leaf .../shell)
#   -t SECS   wall-clock timeout for the whole VM (default 300) -> exit 124
#   -m MB     guest RAM in MiB (default 1024);  -c CPUS  vCPUs (default 2)
#   -A ARGS   extra kernel command line (e.g. "lsm=yama,apparmor" to disable Landlock)
#   -l LOG    keep the kernel console (ttyS0) in LOG
#
# The guest: busybox-static initramfs (plain cpio) that switch_roots into a tmpfs (pivot_root(2)
# fails on an initramfs root), mounts proc/sys/devtmpfs/devpts/shm/mqueue/tmp/run, pure cgroup2
# at /sys/fs/cgroup (cgroup_no_v1=all, nsdelegate) with every controller enabled in the root
# subtree_control, brings up lo. As root, CMD runs in the root cgroup. CMD starts in /work
# (empty, owned by the user CMD runs as); the guest has a Debian-like merged-/usr layout.
# CMD's stdout+stderr go to ttyS1 and are streamed to our stdout. Exit status: CMD's status,
# 124 on timeout, 125 if the VM died without reporting one (panic, crash, qemu error).
#
# Environment: VMTEST_CACHE (default <repo>/target/vm-cache), VMTEST_ACCEL=kvm|tcg (default:
# kvm only when /dev/kvm is usable and is not the nested PVM device, else tcg), VMTEST_QEMU
# (qemu binary), VMTEST_KEEP=1 (keep the run directory), VMTEST_VERBOSE=1 (timings on stderr).
# Needs no root: /dev/kvm access only matters for KVM.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${VMTEST_CACHE:-$repo/target/vm-cache}
qemu=${VMTEST_QEMU:-qemu-system-x86_64}

die() { printf 'boot.sh: %s\n' "$*" >&2; exit 125; }
note() { [[ ${VMTEST_VERBOSE:-0} == 1 ]] && printf 'boot.sh: %s\n' "$*" >&2; return 0; }
usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; }

deb= as_user=0 timeout=300 mem=1024 cpus=2 append_extra= console_log=
files=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -k) deb=${2:?}; shift 2 ;;
        -i) files+=("${2:?}"); shift 2 ;;
        -u) as_user=1; shift ;;
        -t) timeout=${2:?}; shift 2 ;;
        -m) mem=${2:?}; shift 2 ;;
        -c) cpus=${2:?}; shift 2 ;;
        -A) append_extra=${2:?}; shift 2 ;;
        -l) console_log=${2:?}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ -n "$deb" ]] || { usage >&2; die "-k DEB is required"; }
[[ -f "$deb" ]] || die "kernel package not found: $deb"
[[ $# -gt 0 ]] || set -- true
[[ "$timeout" =~ ^[0-9]+$ && "$mem" =~ ^[0-9]+$ && "$cpus" =~ ^[0-9]+$ ]] ||
    die "-t, -m and -c take whole numbers"
command -v "$qemu" >/dev/null || die "$qemu not found (integration-tests/vm/install-tools.sh installs it)"
command -v cpio >/dev/null || die "cpio not found"

t_start=$(date +%s.%N)

# ---- kernel: unpack the bzImage from the .deb, extract the uncompressed vmlinux (cached) ----

kdir="$cache/kernels/$(basename "$deb" .deb)"
# Pull the raw vmlinux out of a bzImage: the setup header says where the compressed payload
# starts (payload_offset, relative to the protected-mode code after the setup sectors) and
# how long it is; its magic says which decompressor. Like scripts/extract-vmlinux, exact.
extract_vmlinux() {
    local bz=$1 out=$2 setup_sects off len magic
    setup_sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$bz" | tr -d ' ')
    [[ $setup_sects == 0 ]] && setup_sects=4
    off=$(od -An -tu4 -j $((0x248)) -N4 "$bz" | tr -d ' ')
    len=$(od -An -tu4 -j $((0x24c)) -N4 "$bz" | tr -d ' ')
    off=$(((setup_sects + 1) * 512 + off))
    magic=$(od -An -tx1 -j "$off" -N4 "$bz" | tr -d ' ')
    local dec
    case "$magic" in
        28b52ffd) dec="zstd -dcq" ;;
        fd377a58) dec="xz -dc --single-stream" ;;
        1f8b08*) dec="gzip -dc" ;;
        04224d18 | 02214c18) dec="lz4 -dc" ;;
        425a68*) dec="bzip2 -dc" ;;
        5d00*) dec="xz -dc --format=lzma" ;;
        *) return 1 ;;
    esac
    # The payload may carry a 4-byte size trailer; decompressors complain but emit everything.
    tail -c +$((off + 1)) "$bz" | head -c "$len" | $dec >"$out.tmp" 2>/dev/null || true
    [[ "$(head -c4 "$out.tmp" | od -An -tx1 | tr -d ' ')" == 7f454c46 ]] || { rm -f "$out.tmp"; return 1; }
    mv "$out.tmp" "$out"
}
if [[ ! -s "$kdir/vmlinux" && ! -s "$kdir/vmlinuz" ]]; then
    note "unpacking $(basename "$deb")"
    mkdir -p "$kdir.tmp"
    # dpkg-deb is dpkg -x restricted to the kernel image: the modules are not needed.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$kdir.tmp" --wildcards './boot/vmlinuz-*' ||
        die "cannot unpack $deb"
    bz=$(ls "$kdir.tmp"/boot/vmlinuz-* 2>/dev/null | head -n1)
    [[ -n "$bz" ]] || die "no /boot/vmlinuz-* in $deb"
    rm -rf "$kdir"
    mkdir -p "$kdir"
    if extract_vmlinux "$bz" "$kdir/vmlinux"; then
        note "extracted vmlinux (PVH boot)"
    else
        note "could not extract vmlinux, booting the bzImage"
        mv "$bz" "$kdir/vmlinuz"
    fi
    rm -rf "$kdir.tmp"
fi
if [[ -s "$kdir/vmlinux" ]]; then kernel="$kdir/vmlinux"; else kernel="$kdir/vmlinuz"; fi

# ---- busybox-static (host package, else downloaded into the cache) ----

busybox=${VMTEST_BUSYBOX:-/bin/busybox}
if [[ ! -x "$busybox" ]] || ldd "$busybox" >/dev/null 2>&1; then
    busybox="$cache/busybox/bin/busybox"
    if [[ ! -x "$busybox" ]]; then
        note "downloading busybox-static"
        mkdir -p "$cache/busybox/deb"
        (cd "$cache/busybox/deb" && apt-get -qq download busybox-static >&2) ||
            die "need a static busybox: apt-get install busybox-static"
        dpkg -x "$cache"/busybox/deb/busybox-static_*.deb "$cache/busybox/x"
        cp "$cache/busybox/x/bin/busybox" "$busybox"
    fi
fi

# ---- initramfs ----

mkdir -p "$cache/runs"
run=$(mktemp -d "$cache/runs/run.XXXXXX")
qemu_pid=
tail_pid=
cleanup() {
    [[ -n "$qemu_pid" ]] && kill "$qemu_pid" 2>/dev/null || true
    [[ -n "$tail_pid" ]] && kill "$tail_pid" 2>/dev/null || true
    [[ ${VMTEST_KEEP:-0} == 1 ]] && { echo "boot.sh: kept $run" >&2; return; }
    rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

root="$run/root"
# A merged-/usr layout as on Debian, so policies that bind /usr, /bin, /lib, /etc work.
mkdir -p "$root"/{usr/bin,usr/lib,usr/lib64,vm,etc,proc,sys,dev,tmp,run,root,home/vmuser,newroot} \
    "$root"/{mnt,media,srv,opt,boot,var/tmp,work}
chmod 1777 "$root/var/tmp"
for l in bin:usr/bin sbin:usr/bin lib:usr/lib lib64:usr/lib64; do ln -s "${l#*:}" "$root/${l%%:*}"; done
cp "$busybox" "$root/usr/bin/busybox"
ln -s busybox "$root/usr/bin/sh"

copy_libs() { # copy the shared libraries of a dynamic ELF to the same paths in the guest
    local f=$1 lib
    { ldd "$f" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | sort -u | while read -r lib; do
        [[ -e "$root$lib" ]] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
for f in "${files[@]+"${files[@]}"}"; do
    [[ -e "$f" ]] || die "-i: no such file: $f"
    cp -a "$f" "$root/vm/"
    if [[ -f "$f" ]] && head -c4 "$f" | grep -q $'^\x7fELF'; then
        copy_libs "$f"
    elif [[ -d "$f" ]]; then
        while IFS= read -r -d '' g; do
            head -c4 "$g" | grep -q $'^\x7fELF' && copy_libs "$g"
        done < <(find "$f" -type f -perm -u+x -print0)
    fi
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
vmuser:x:1000:1000:vmuser:/home/vmuser:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
vmuser:x:1000:
nogroup:x:65534:
EOF
printf 'root:*:19000:0:99999:7:::\nvmuser:*:19000:0:99999:7:::\n' >"$root/etc/shadow"
chmod 0640 "$root/etc/shadow"
echo 'vm' >"$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"

# The command, as a shell script with every argument single-quoted.
{
    printf 'export PATH=/vm:/usr/bin:/bin\ncd /work\nexec'
    for a in "$@"; do
        printf " '%s'" "${a//\'/\'\\\'\'}"
    done
    printf '\n'
} >"$root/cmd"

# /init runs twice: first as PID 1 on the initramfs rootfs (stage 1: copy everything into a
# tmpfs and switch_root, because pivot_root(2) fails on the rootfs), then in the tmpfs.
cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/usr/bin:/bin
/bin/busybox --install -s /bin 2>/dev/null
if [ ! -e /.stage2 ]; then
    mount -t tmpfs -o mode=0755 root /newroot
    for f in /*; do
        [ "$f" = /newroot ] || cp -a "$f" /newroot/
    done
    touch /newroot/.stage2
    exec switch_root /newroot /init
fi

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,gid=5,mode=620 devpts /dev/pts
ln -sf pts/ptmx /dev/ptmx 2>/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
mount -t tmpfs -o mode=1777,nosuid,nodev tmp /tmp
mount -t tmpfs -o mode=0755,nosuid,nodev run /run
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || echo "vm-init: cannot mount cgroup2" >&2
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
hostname vm
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr

# A delegated subtree for uid 1000, as systemd's Delegate=yes: the directory and its
# cgroup.procs/subtree_control/threads belong to the user; controllers are enabled down to
# vmuser, and the user's shell sits in the leaf vmuser/shell.
cg=/sys/fs/cgroup
mkdir -p $cg/user.slice/vmuser/shell
for c in $(cat $cg/user.slice/cgroup.controllers); do
    echo "+$c" >$cg/user.slice/cgroup.subtree_control 2>/dev/null
done
for c in $(cat $cg/user.slice/vmuser/cgroup.controllers); do
    echo "+$c" >$cg/user.slice/vmuser/cgroup.subtree_control 2>/dev/null
done
for d in $cg/user.slice/vmuser $cg/user.slice/vmuser/shell; do
    chown 1000:1000 $d $d/cgroup.procs $d/cgroup.subtree_control $d/cgroup.threads
done
chown -R 1000:1000 /home/vmuser
# The command's working directory: a project directory owned by whoever runs it (sandboxes
# refuse to share $HOME or / read-write).
grep -q ' vmtest.user=1' /proc/cmdline && chown 1000:1000 /work
chmod 0755 /vm

stty -F /dev/ttyS1 raw -echo 2>/dev/null
if grep -q ' vmtest.user=1' /proc/cmdline; then
    # `su` keeps the caller's cgroup: a child shell moves itself into the leaf, then becomes
    # the user's command (su and sh exec), so the leaf holds only the command, as in a
    # systemd scope. PID 1 stays in the root cgroup.
    sh -c 'echo $$ >/sys/fs/cgroup/user.slice/vmuser/shell/cgroup.procs &&
        exec su vmuser -c "HOME=/home/vmuser; export HOME; . /cmd"' </dev/null >/dev/ttyS1 2>&1
    rc=$?
else
    (HOME=/root; export HOME; . /cmd) </dev/null >/dev/ttyS1 2>&1
    rc=$?
fi
# /dev/kmsg is printed synchronously on the console (ttyS0); the last close of ttyS1 above
# waited for its output to drain.
echo "<2>VMTEST_EXIT_CODE=$rc" >/dev/kmsg
poweroff -f
INIT
chmod 0755 "$root/init"

(cd "$root" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet >"$run/initramfs.cpio") ||
    die "cpio failed"

# ---- qemu ----

accel=${VMTEST_ACCEL:-}
if [[ -z "$accel" ]]; then
    accel=tcg
    if [[ -r /dev/kvm && -w /dev/kvm && ! -e /sys/module/kvm_pvm ]] &&
        grep -qwE 'vmx|svm' /proc/cpuinfo; then
        accel=kvm
    fi
fi
case "$accel" in
    kvm) accel_args=(-accel kvm -cpu host) ;;
    tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
    *) die "VMTEST_ACCEL must be kvm or tcg" ;;
esac
note "accel=$accel kernel=$(basename "$kernel") initramfs=$(du -h "$run/initramfs.cpio" | cut -f1)"

cmdline="console=ttyS0 quiet loglevel=3 panic=-1 oops=panic cgroup_no_v1=all rdinit=/init"
cmdline+=" mitigations=off random.trust_cpu=on"
[[ $as_user == 1 ]] && cmdline+=" vmtest.user=1"
[[ -n "$append_extra" ]] && cmdline+=" $append_extra"

console="$run/console.log"
out="$run/out.log"
: >"$out"
t_qemu=$(date +%s.%N)
"$qemu" -M pc -nodefaults -no-user-config -display none -no-reboot \
    "${accel_args[@]}" -smp "$cpus" -m "$mem" \
    -kernel "$kernel" -initrd "$run/initramfs.cpio" -append "$cmdline" \
    -serial "file:$console" -serial "file:$out" \
    </dev/null >"$run/qemu.log" 2>&1 &
qemu_pid=$!
tail -n +1 -f --pid="$qemu_pid" "$out" &
tail_pid=$!

# Wait for qemu, at most $timeout seconds.
rc=
deadline=$(($(date +%s) + timeout))
while kill -0 "$qemu_pid" 2>/dev/null; do
    if (($(date +%s) >= deadline)); then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
        rc=124
        break
    fi
    sleep 0.2
done
[[ -n "$rc" ]] || { wait "$qemu_pid" 2>/dev/null || true; }
qemu_pid=
wait "$tail_pid" 2>/dev/null || true
tail_pid=
t_end=$(date +%s.%N)

[[ -n "$console_log" ]] && cp "$console" "$console_log"
if [[ -z "$rc" ]]; then
    code=$(grep -ao 'VMTEST_EXIT_CODE=[0-9]*' "$console" 2>/dev/null | tail -n1 | cut -d= -f2 || true)
    if [[ -n "$code" ]]; then
        rc=$code
    else
        rc=125
        {
            echo "boot.sh: the VM died without reporting an exit code; last console lines:"
            tail -n 25 "$console" 2>/dev/null | sed 's/^/  | /'
            sed 's/^/  qemu: /' "$run/qemu.log"
        } >&2
    fi
else
    echo "boot.sh: timeout after ${timeout}s" >&2
fi
note "$(printf 'prepare %.1fs, vm %.1fs, total %.1fs, exit %s' \
    "$(awk "BEGIN{print $t_qemu - $t_start}")" "$(awk "BEGIN{print $t_end - $t_qemu}")" \
    "$(awk "BEGIN{print $t_end - $t_start}")" "$rc")"
exit "$rc"
