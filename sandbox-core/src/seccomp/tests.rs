use std::collections::HashSet;
use std::time::Instant;

use super::*;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// An ioctl request as a syscall argument (`Ioctl` is `c_ulong` on glibc, `c_int` on musl).
#[allow(clippy::unnecessary_cast)]
fn req(request: libc::Ioctl) -> u64 {
    request as u64
}

fn settings(profile: SeccompProfile) -> SeccompSettings {
    SeccompSettings {
        profile,
        ..SeccompSettings::default()
    }
}

fn nr(arch: &Arch, name: &str) -> u32 {
    match arch.table.iter().find(|(n, _)| *n == name) {
        Some((_, nr)) => *nr,
        None => panic!("{name} not in the {} table", arch.name),
    }
}

fn decide(program: &[sock_filter], arch: &Arch, name: &str, args: [u64; 6]) -> u32 {
    bpf::run(program, arch.audit, nr(arch, name), args).0
}

fn compiled(arch: &Arch, s: &SeccompSettings) -> Vec<sock_filter> {
    match compile(
        arch,
        s,
        &ResolvedNetwork::default(),
        Isolation::Namespaces,
        false,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn tables_are_sorted_and_unique() {
    for arch in [&X86_64, &AARCH64] {
        let mut names = HashSet::new();
        let mut last = None;
        for (name, nr) in arch.table {
            assert!(names.insert(*name), "{}: duplicate {name}", arch.name);
            assert!(last < Some(*nr), "{}: {name} out of order", arch.name);
            last = Some(*nr);
        }
        assert!(arch.table.len() > 300, "{}", arch.table.len());
    }
}

#[test]
fn aarch64_spot_checks() {
    // asm-generic/unistd.h numbering.
    for (name, want) in [
        ("ioctl", 29),
        ("openat", 56),
        ("close", 57),
        ("personality", 92),
        ("unshare", 97),
        ("getpid", 172),
        ("socket", 198),
        ("clone", 220),
        ("execve", 221),
        ("io_uring_setup", 425),
        ("clone3", 435),
        ("mseal", 462),
    ] {
        assert_eq!(nr(&AARCH64, name), want, "{name}");
    }
    // x86_64-only legacy calls do not exist on aarch64.
    for name in ["open", "fork", "stat", "renameat", "getrlimit"] {
        assert!(AARCH64.table.iter().all(|(n, _)| *n != name), "{name}");
    }
}

#[test]
fn x86_64_spot_checks() {
    for (name, want) in [
        ("read", 0),
        ("ioctl", 16),
        ("getpid", 39),
        ("socket", 41),
        ("clone", 56),
        ("fork", 57),
        ("execve", 59),
        ("personality", 135),
        ("unshare", 272),
        ("io_uring_setup", 425),
        ("clone3", 435),
        ("file_setattr", 469),
    ] {
        assert_eq!(nr(&X86_64, name), want, "{name}");
    }
}

#[test]
fn profile_lists_are_consistent() {
    let known = |name: &str| {
        [tables::X86_64, tables::AARCH64]
            .iter()
            .any(|t| t.iter().any(|(n, _)| *n == name))
    };
    let lists: [(&str, &[&str]); 6] = [
        ("DEFAULT_ALLOW", profile::DEFAULT_ALLOW),
        ("CROSS_PROCESS", profile::CROSS_PROCESS),
        ("STRICT_DROPS", profile::STRICT_DROPS),
        ("ALWAYS_DENIED", profile::ALWAYS_DENIED),
        ("ARGUMENT_RULES", profile::ARGUMENT_RULES),
        ("NOT_IMPLEMENTED", profile::NOT_IMPLEMENTED),
    ];
    for (list, names) in lists {
        for name in names {
            assert!(known(name), "{list}: {name} is in no table");
        }
    }
    let allow: HashSet<&str> = profile::DEFAULT_ALLOW.iter().copied().collect();
    assert_eq!(allow.len(), profile::DEFAULT_ALLOW.len(), "duplicates");
    for name in profile::ALWAYS_DENIED
        .iter()
        .chain(profile::ARGUMENT_RULES)
        .chain(profile::NOT_IMPLEMENTED)
    {
        assert!(!allow.contains(name), "{name} must not be in DEFAULT_ALLOW");
    }
    for name in profile::CROSS_PROCESS.iter().chain(profile::STRICT_DROPS) {
        assert!(allow.contains(name), "{name} is dropped but never allowed");
    }
}

/// The decisions issue 3 asks for, on both architectures, through the reference interpreter.
#[test]
fn default_profile_decisions_on_both_arches() {
    for arch in [&X86_64, &AARCH64] {
        let p = compiled(arch, &settings(SeccompProfile::Default));
        let d = |name: &str, args: [u64; 6]| decide(&p, arch, name, args);
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        let none = [0; 6];
        for name in [
            "read",
            "write",
            "openat",
            "close",
            "execve",
            "exit_group",
            "getpid",
            "ptrace",
        ] {
            assert_eq!(d(name, none), ALLOW, "{}: {name}", arch.name);
        }
        for name in profile::ALWAYS_DENIED {
            if arch.table.iter().any(|(n, _)| n == name) {
                assert_eq!(d(name, none), EPERM, "{}: {name}", arch.name);
            }
        }
        assert_eq!(d("clone3", none), RET_ENOSYS);
        assert_eq!(d("clone", a0(libc::SIGCHLD as u64)), ALLOW);
        assert_eq!(
            d("clone", a0((libc::CLONE_NEWUSER | libc::SIGCHLD) as u64)),
            EPERM
        );
        assert_eq!(d("unshare", a0(libc::CLONE_NEWNET as u64)), EPERM);
        assert_eq!(d("unshare", a0(libc::CLONE_FILES as u64)), ALLOW);
        assert_eq!(d("ioctl", [0, req(libc::TIOCSTI), 0, 0, 0, 0]), EPERM);
        assert_eq!(d("ioctl", [0, req(libc::FIONREAD), 0, 0, 0, 0]), ALLOW);
        assert_eq!(d("personality", a0(0x0040_0000)), EPERM);
        assert_eq!(d("personality", a0(0xffff_ffff)), ALLOW);
        assert_eq!(d("socket", a0(libc::AF_PACKET as u64)), EPERM);
        assert_eq!(d("socket", a0(libc::AF_INET as u64)), ALLOW);
        // Unknown numbers: gaps, just above the table, far above.
        let highest = arch.table.iter().map(|(_, n)| *n).max().unwrap_or(0);
        for unknown in [400, highest + 1, 999, 0x3fff_ffff] {
            assert_eq!(
                bpf::run(&p, arch.audit, unknown, none).0,
                RET_ENOSYS,
                "{unknown}"
            );
        }
        // Every number reaches its decision quickly.
        let worst = (0..=highest + 2)
            .map(|n| bpf::run(&p, arch.audit, n, none).1)
            .max()
            .unwrap_or(0);
        assert!(worst <= 16, "{}: {worst} steps", arch.name);
        // Foreign architectures are killed.
        assert_eq!(bpf::run(&p, 0x4000_0003, 20, none).0, KILL); // AUDIT_ARCH_I386
        assert_eq!(bpf::run(&p, 0x4000_0028, 20, none).0, KILL); // AUDIT_ARCH_ARM
        println!(
            "{}: default profile: {} instructions, worst path {worst}",
            arch.name,
            p.len()
        );
        assert!(p.len() < 300, "{}: {} instructions", arch.name, p.len());
    }
    let p = compiled(&X86_64, &settings(SeccompProfile::Default));
    assert_eq!(bpf::run(&p, X86_64.audit, 0x4000_0000 | 39, [0; 6]).0, KILL);
}

#[test]
fn every_table_entry_gets_the_profile_decision() {
    for arch in [&X86_64, &AARCH64] {
        let p = compiled(arch, &settings(SeccompProfile::Default));
        for (name, _) in arch.table {
            let got = decide(&p, arch, name, [0; 6]);
            let want = if profile::DEFAULT_ALLOW.contains(name) {
                ALLOW
            } else if profile::NOT_IMPLEMENTED.contains(name) {
                RET_ENOSYS
            } else if profile::ARGUMENT_RULES.contains(name) {
                got // checked above with arguments
            } else {
                EPERM
            };
            assert_eq!(got, want, "{}: {name}", arch.name);
        }
    }
}

#[test]
fn strict_and_landlock_drop_cross_process_calls() {
    let arch = &X86_64;
    let strict = compiled(arch, &settings(SeccompProfile::Strict));
    for name in [
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "vmsplice",
    ] {
        assert_eq!(decide(&strict, arch, name, [0; 6]), EPERM, "{name}");
    }
    assert_eq!(decide(&strict, arch, "personality", [0; 6]), EPERM);
    assert_eq!(decide(&strict, arch, "read", [0; 6]), ALLOW);

    let no_net = ResolvedNetwork::default();
    let landlock = match compile(
        arch,
        &settings(SeccompProfile::Default),
        &no_net,
        Isolation::Landlock,
        false,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(decide(&landlock, arch, "ptrace", [0; 6]), EPERM);
    let inet = [libc::AF_INET as u64, 0, 0, 0, 0, 0];
    let unix = [libc::AF_UNIX as u64, 0, 0, 0, 0, 0];
    assert_eq!(decide(&landlock, arch, "socket", inet), EPERM);
    assert_eq!(decide(&landlock, arch, "socket", unix), ALLOW);
    let host = ResolvedNetwork {
        mode: NetworkMode::Host,
        ..ResolvedNetwork::default()
    };
    let landlock_host = match compile(
        arch,
        &settings(SeccompProfile::Default),
        &host,
        Isolation::Landlock,
        false,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(decide(&landlock_host, arch, "socket", inet), ALLOW);
}

#[test]
fn actions_and_overrides() {
    let arch = &AARCH64;
    let kill = SeccompSettings {
        action: SeccompAction::Kill,
        ..settings(SeccompProfile::Default)
    };
    let p = compiled(arch, &kill);
    assert_eq!(decide(&p, arch, "bpf", [0; 6]), KILL);
    assert_eq!(decide(&p, arch, "clone3", [0; 6]), RET_ENOSYS);
    let log = SeccompSettings {
        action: SeccompAction::Log,
        ..settings(SeccompProfile::Default)
    };
    let p = compiled(arch, &log);
    assert_eq!(decide(&p, arch, "bpf", [0; 6]), libc::SECCOMP_RET_LOG);

    let adjusted = SeccompSettings {
        allow: vec!["bpf".into(), "getpid".into(), "open".into()],
        deny: vec!["getpid".into(), "uname".into()],
        ..settings(SeccompProfile::Default)
    };
    let p = compiled(arch, &adjusted);
    assert_eq!(decide(&p, arch, "bpf", [0; 6]), ALLOW);
    assert_eq!(decide(&p, arch, "getpid", [0; 6]), EPERM, "deny wins");
    assert_eq!(decide(&p, arch, "uname", [0; 6]), EPERM);
    // `open` exists on x86_64 only: accepted, and ignored on aarch64.
    assert!(prepare(
        &adjusted,
        &ResolvedNetwork::default(),
        Isolation::Namespaces,
        false
    )
    .is_ok());
}

#[test]
fn unknown_names_are_errors_naming_the_key() {
    for (key, s) in [
        (
            "seccomp.allow",
            SeccompSettings {
                allow: vec!["frobnicate".into()],
                ..SeccompSettings::default()
            },
        ),
        (
            "seccomp.deny",
            SeccompSettings {
                deny: vec!["getpid".into(), "Open".into()],
                profile: SeccompProfile::None,
                ..SeccompSettings::default()
            },
        ),
    ] {
        match prepare(
            &s,
            &ResolvedNetwork::default(),
            Isolation::Namespaces,
            false,
        ) {
            Err(e @ SeccompError::UnknownSyscall { .. }) => {
                let msg = e.to_string();
                assert!(msg.starts_with(key), "{msg}");
                assert!(
                    msg.contains("frobnicate") || msg.contains("`Open`"),
                    "{msg}"
                );
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn profile_none_is_disabled_and_default_is_cached() {
    let none = settings(SeccompProfile::None);
    let net = ResolvedNetwork::default();
    let plan = prepare(&none, &net, Isolation::Namespaces, false).map_err(|e| e.to_string());
    assert_eq!(plan.as_ref().map(status), Ok(LayerStatus::Disabled));

    let default = settings(SeccompProfile::Default);
    let a = prepare(&default, &net, Isolation::Namespaces, false).map_err(|e| e.to_string());
    let b = prepare(&default, &net, Isolation::Namespaces, false).map_err(|e| e.to_string());
    let (Ok(a), Ok(b)) = (a, b) else {
        panic!("prepare failed")
    };
    assert_eq!(status(&a), LayerStatus::Enforced);
    match (&a.program, &b.program) {
        (Some(x), Some(y)) => assert!(Arc::ptr_eq(x, y)),
        _ => panic!("no program"),
    }
    let c = prepare(&default, &net, Isolation::Landlock, false).map_err(|e| e.to_string());
    match (&a.program, c.as_ref().map(|c| &c.program)) {
        (Some(x), Ok(Some(y))) => assert!(!Arc::ptr_eq(x, y), "landlock variant is separate"),
        _ => panic!("no program"),
    }
}

#[test]
fn prepare_timing() {
    let s = settings(SeccompProfile::Strict);
    let net = ResolvedNetwork::default();
    let arch = NATIVE.unwrap_or(&X86_64);
    let rounds = 200u32;
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(compile(arch, &s, &net, Isolation::Namespaces, false).is_ok());
    }
    let compile_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let _ = prepare(&s, &net, Isolation::Namespaces, false);
    let start = Instant::now();
    for _ in 0..rounds {
        assert!(prepare(&s, &net, Isolation::Namespaces, false).is_ok());
    }
    let cached_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("prepare: compile {compile_us:.1} us, cached {cached_us:.2} us");
    assert!(compile_us < 2_000.0, "compile took {compile_us} us");
}

// ---- Real filters, installed in a forked child -------------------------------------------

/// Fork; in the child install `plan`, run `body`, exit with its code. `body` may write
/// numbers to the pipe fd it gets. Returns the wait status and the numbers.
fn in_child(plan: &SeccompPlan, body: fn(libc::c_int) -> i32) -> (libc::c_int, Vec<u64>) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw syscalls (no allocation, no locks) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::close(fds[0]);
            let t0 = now_ns();
            let applied = apply(plan);
            let t1 = now_ns();
            write_u64(fds[1], t1 - t0);
            let code = match applied {
                Ok(()) => body(fds[1]),
                Err(_) => 100,
            };
            libc::_exit(code);
        }
    }
    // SAFETY: closing our copy of the write end; reading into a local buffer.
    unsafe { libc::close(fds[1]) };
    let mut bytes = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: plain close and waitpid on our own child.
    let mut wstatus = 0;
    unsafe {
        libc::close(fds[0]);
        libc::waitpid(pid, &mut wstatus, 0);
    }
    let numbers = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    (wstatus, numbers)
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills ts.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn write_u64(fd: libc::c_int, v: u64) {
    let b = v.to_ne_bytes();
    // SAFETY: b is valid for 8 bytes.
    unsafe { libc::write(fd, b.as_ptr().cast(), b.len()) };
}

/// `(return value, errno)` of a raw syscall.
fn sys(nr: libc::c_long, a: [libc::c_long; 4]) -> (libc::c_long, i32) {
    // SAFETY: the callers pass arguments that make the syscalls fail or have no lasting effect.
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3]) };
    (rc, if rc == -1 { Errno::last_raw() } else { 0 })
}

fn plan_for(profile: SeccompProfile) -> SeccompPlan {
    match prepare(
        &settings(profile),
        &ResolvedNetwork::default(),
        Isolation::Namespaces,
        false,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn exit_code(wstatus: libc::c_int) -> Option<i32> {
    libc::WIFEXITED(wstatus).then(|| libc::WEXITSTATUS(wstatus))
}

fn native_or_skip() -> bool {
    if NATIVE.is_none() {
        println!(
            "skipped: seccomp: no syscall table for {}",
            std::env::consts::ARCH
        );
        return false;
    }
    true
}

/// Each failing check exits with its own code, so a failure names the check.
fn default_profile_body(_fd: libc::c_int) -> i32 {
    use libc::*;
    let eperm = |r: (c_long, i32)| r == (-1, EPERM);
    // SAFETY (whole body): raw syscalls whose arguments make them fail or are harmless.
    unsafe {
        if getpid() <= 0 {
            return 1;
        }
        if unshare(CLONE_NEWUSER) != -1 || Errno::last_raw() != EPERM {
            return 2;
        }
        if !eperm(sys(SYS_io_uring_setup, [1, 0, 0, 0])) {
            return 3;
        }
        if sys(999, [0; 4]) != (-1, ENOSYS) {
            return 4;
        }
        if personality(0x0040_0000) != -1 || Errno::last_raw() != EPERM {
            return 5;
        }
        if personality(0xffff_ffff) == -1 {
            return 6;
        }
        if socket(AF_PACKET, SOCK_RAW, 0) != -1 || Errno::last_raw() != EPERM {
            return 7;
        }
        if socket(AF_VSOCK, SOCK_STREAM, 0) != -1 || Errno::last_raw() != EPERM {
            return 8;
        }
        if socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT) != -1 || Errno::last_raw() != EPERM {
            return 9;
        }
        let s = socket(AF_UNIX, SOCK_STREAM, 0);
        if s < 0 {
            return 10;
        }
        close(s);
        let c: c_char = b'x' as c_char;
        if ioctl(0, TIOCSTI, &c) != -1 || Errno::last_raw() != EPERM {
            return 11;
        }
        if sys(SYS_clone3, [0, 0, 0, 0]) != (-1, ENOSYS) {
            return 12;
        }
        let raw = sys(SYS_clone, [(CLONE_NEWUSER | SIGCHLD) as c_long, 0, 0, 0]);
        if raw.0 == 0 {
            _exit(99); // a child escaped into a new user namespace
        }
        if raw != (-1, EPERM) {
            return 13;
        }
        let child = fork();
        if child == 0 {
            _exit(7);
        }
        let mut st = 0;
        if child < 0
            || waitpid(child, &mut st, 0) != child
            || !WIFEXITED(st)
            || WEXITSTATUS(st) != 7
        {
            return 14;
        }
        for (i, nr) in [
            SYS_bpf,
            SYS_perf_event_open,
            SYS_keyctl,
            SYS_add_key,
            SYS_userfaultfd,
            SYS_kexec_load,
            SYS_init_module,
            SYS_mount,
            SYS_pivot_root,
            SYS_setns,
        ]
        .into_iter()
        .enumerate()
        {
            if !eperm(sys(nr, [0; 4])) {
                return 20 + i as i32;
            }
        }
        // ptrace is allowed (ESRCH: not tracing the parent), so debuggers work.
        if sys(
            SYS_ptrace,
            [PTRACE_PEEKDATA as c_long, getppid() as c_long, 0, 0],
        )
        .1 == EPERM
        {
            return 40;
        }
        let fd = open(c"/proc/self/status".as_ptr(), O_RDONLY | O_CLOEXEC);
        if fd < 0 || close(fd) != 0 {
            return 41;
        }
    }
    0
}

#[test]
fn default_filter_in_forked_child() {
    if !native_or_skip() {
        return;
    }
    let plan = plan_for(SeccompProfile::Default);
    let (st, numbers) = in_child(&plan, default_profile_body);
    assert_eq!(
        exit_code(st),
        Some(0),
        "failed check (exit code), wait status {st:#x}"
    );
    println!(
        "default profile: {} instructions, apply (prctl + seccomp) took {} us",
        plan.instructions(),
        numbers.first().copied().unwrap_or(0) / 1000
    );
}

/// Positive control: without a filter the same checks fail (here at check 2: as root the
/// child may create a user namespace), so the test above cannot pass by accident.
#[test]
fn default_checks_fail_without_filter() {
    if !native_or_skip() {
        return;
    }
    let (st, _) = in_child(&plan_for(SeccompProfile::None), default_profile_body);
    let code = exit_code(st);
    assert!(code.is_some_and(|c| c != 0), "wait status {st:#x}");
    println!("without a filter the checks stop at {code:?}");
}

#[test]
fn strict_filter_in_forked_child() {
    if !native_or_skip() {
        return;
    }
    fn body(_fd: libc::c_int) -> i32 {
        // SAFETY: failing syscalls.
        unsafe {
            let r = sys(
                libc::SYS_ptrace,
                [libc::PTRACE_PEEKDATA as libc::c_long, 1, 0, 0],
            );
            if r != (-1, libc::EPERM) {
                return 1;
            }
            if libc::personality(0) != -1 {
                return 2;
            }
            if libc::getppid() <= 0 {
                return 3;
            }
        }
        0
    }
    let (st, _) = in_child(&plan_for(SeccompProfile::Strict), body);
    assert_eq!(exit_code(st), Some(0), "wait status {st:#x}");
}

#[test]
fn kill_action_and_x32_kill_the_process() {
    if !native_or_skip() {
        return;
    }
    let kill = SeccompSettings {
        action: SeccompAction::Kill,
        ..settings(SeccompProfile::Default)
    };
    let plan = match prepare(
        &kill,
        &ResolvedNetwork::default(),
        Isolation::Namespaces,
        false,
    ) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    fn body(_fd: libc::c_int) -> i32 {
        let _ = sys(libc::SYS_bpf, [0; 4]);
        1
    }
    let (st, _) = in_child(&plan, body);
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSYS,
        "{st:#x}"
    );

    #[cfg(target_arch = "x86_64")]
    {
        fn x32(_fd: libc::c_int) -> i32 {
            let _ = sys(0x4000_0000 | libc::SYS_getpid, [0; 4]);
            1
        }
        let (st, _) = in_child(&plan_for(SeccompProfile::Default), x32);
        assert!(
            libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSYS,
            "{st:#x}"
        );

        fn i386(_fd: libc::c_int) -> i32 {
            // getpid through the i386 entry point.
            let mut ret: i64 = 20;
            // SAFETY: int 0x80 with eax = 20 (i386 getpid) touches no memory.
            unsafe { std::arch::asm!("int 0x80", inout("rax") ret, options(nostack)) };
            if ret > 0 {
                2
            } else {
                1
            }
        }
        let (st, _) = in_child(&plan_for(SeccompProfile::Default), i386);
        if libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSEGV {
            println!("skipped: ia32 emulation: int 0x80 faults on this kernel");
        } else {
            assert!(
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSYS,
                "{st:#x}"
            );
        }
    }
}

/// Runtime cost of the filter on allowed syscalls (cached) and on `ioctl` (argument check).
#[test]
fn runtime_overhead() {
    if !native_or_skip() {
        return;
    }
    fn loops(fd: libc::c_int) -> i32 {
        const N: u64 = 200_000;
        let bench = |f: &dyn Fn()| {
            let t0 = now_ns();
            for _ in 0..N {
                f();
            }
            (now_ns() - t0) / (N / 1000) // ps per call
        };
        // SAFETY: harmless syscalls.
        let getppid = || unsafe {
            libc::syscall(libc::SYS_getppid);
        };
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let wsp: *mut libc::winsize = &mut ws;
        // SAFETY: TIOCGWINSZ on fd 0 writes at most a winsize (or fails with ENOTTY).
        let ioctl = || unsafe {
            libc::ioctl(0, libc::TIOCGWINSZ, wsp);
        };
        write_u64(fd, bench(&getppid));
        write_u64(fd, bench(&ioctl));
        0
    }
    let plans = [
        ("no filter", plan_for(SeccompProfile::None)),
        ("ret-allow", allow_all_plan()),
        ("default", plan_for(SeccompProfile::Default)),
        ("seccompiler", seccompiler_plan()),
    ];
    let mut best = [(u64::MAX, u64::MAX); 4];
    for _ in 0..3 {
        for (i, (_, plan)) in plans.iter().enumerate() {
            let (_, n) = in_child(plan, loops);
            best[i] = (best[i].0.min(n[1]), best[i].1.min(n[2]));
        }
    }
    let line: Vec<String> = plans
        .iter()
        .zip(best)
        .map(|((name, _), (g, i))| {
            format!(
                "{name}: getppid {:.0} ns, ioctl {:.0} ns",
                g as f64 / 1000.0,
                i as f64 / 1000.0
            )
        })
        .collect();
    println!("runtime: {}", line.join("; "));
    assert!(best.iter().all(|(g, i)| *g > 0 && *i > 0));
}

/// A plan for a 1-instruction `ret allow` filter: the fixed cost of having any filter.
fn allow_all_plan() -> SeccompPlan {
    SeccompPlan {
        program: Some(Arc::from(vec![sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: ALLOW,
        }])),
    }
}

/// seccompiler's linear chain for the same allowlist (no argument rules): the comparison.
fn seccompiler_plan() -> SeccompPlan {
    use std::collections::BTreeMap;
    let Some(arch) = NATIVE else {
        return allow_all_plan();
    };
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = arch
        .table
        .iter()
        .filter(|(name, _)| profile::DEFAULT_ALLOW.contains(name))
        .map(|(_, nr)| (i64::from(*nr), vec![]))
        .collect();
    let target = if cfg!(target_arch = "aarch64") {
        seccompiler::TargetArch::aarch64
    } else {
        seccompiler::TargetArch::x86_64
    };
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Errno(libc::EPERM as u32),
        seccompiler::SeccompAction::Allow,
        target,
    );
    let program: Result<seccompiler::BpfProgram, _> = filter.and_then(|f| f.try_into());
    match program {
        Ok(p) => SeccompPlan {
            program: Some(
                p.iter()
                    .map(|i| sock_filter {
                        code: i.code,
                        jt: i.jt,
                        jf: i.jf,
                        k: i.k,
                    })
                    .collect(),
            ),
        },
        Err(e) => panic!("{e}"),
    }
}

/// Median `apply` time in a fresh child, for our filter, a trivial one and seccompiler's.
#[test]
fn attach_cost() {
    if !native_or_skip() {
        return;
    }
    fn nothing(_fd: libc::c_int) -> i32 {
        0
    }
    let plans = [
        ("default profile", plan_for(SeccompProfile::Default)),
        ("ret-allow (1 insn)", allow_all_plan()),
        ("seccompiler linear chain", seccompiler_plan()),
    ];
    let mut report = Vec::new();
    for (name, plan) in &plans {
        let mut times: Vec<u64> = (0..15)
            .map(|_| {
                let (st, n) = in_child(plan, nothing);
                assert_eq!(exit_code(st), Some(0));
                n[0]
            })
            .collect();
        times.sort_unstable();
        report.push(format!(
            "{name}: {} insns, apply median {:.1} us",
            plan.instructions(),
            times[times.len() / 2] as f64 / 1000.0
        ));
    }
    println!("attach cost: {}", report.join("; "));
}

/// The verdicts as the profile lists define them, by name: what `packed` resolves at build
/// time, spelled out the slow way.
fn reference_ranges(
    arch: &Arch,
    s: &SeccompSettings,
    isolation: Isolation,
    ptrace_confined: bool,
) -> Vec<(u32, Leaf)> {
    use std::collections::HashMap;
    let rules = rules(s, &ResolvedNetwork::default(), isolation);
    let allow = Leaf::Ret(ALLOW);
    let deny = Leaf::Ret(rules.deny);
    let strict = s.profile == SeccompProfile::Strict;
    let mut map: HashMap<&str, Leaf> = profile::DEFAULT_ALLOW.iter().map(|n| (*n, allow)).collect();
    if strict || (isolation == Isolation::Landlock && !ptrace_confined) {
        for name in profile::CROSS_PROCESS {
            map.remove(name);
        }
    }
    if strict {
        for name in profile::STRICT_DROPS {
            map.remove(name);
        }
    }
    for name in profile::NOT_IMPLEMENTED {
        map.insert(name, Leaf::Ret(RET_ENOSYS));
    }
    map.insert("clone", Leaf::Check(bpf::Rule::NamespaceFlags));
    map.insert("unshare", Leaf::Check(bpf::Rule::NamespaceFlags));
    map.insert("ioctl", Leaf::Check(bpf::Rule::Ioctl));
    map.insert("personality", Leaf::Check(bpf::Rule::Personality));
    map.insert("socket", Leaf::Check(bpf::Rule::Socket));
    for table in [tables::X86_64, tables::AARCH64] {
        for (name, _) in table {
            if s.allow.iter().any(|n| n == name) {
                map.insert(name, allow);
            }
            if s.deny.iter().any(|n| n == name) {
                map.insert(name, deny);
            }
        }
    }
    ranges(arch, |name, _| {
        let name = std::str::from_utf8(name).expect("ascii names");
        map.get(name).copied().unwrap_or(deny)
    })
}

#[test]
fn packed_tables_match_the_lists() {
    for arch in [&X86_64, &AARCH64] {
        let entries: Vec<(Vec<u8>, u32)> = arch
            .packed
            .entries()
            .map(|(name, nr, _)| (name.to_vec(), nr))
            .collect();
        let source: Vec<(Vec<u8>, u32)> = arch
            .table
            .iter()
            .map(|(name, nr)| (name.as_bytes().to_vec(), *nr))
            .collect();
        assert_eq!(entries, source, "{}", arch.name);
        assert!(arch.packed.knows("read") && !arch.packed.knows("no_such_call"));
    }
    for name in profile::ARGUMENT_RULES {
        assert!(
            !matches!(
                packed::class_of_name(name),
                packed::Class::Allowed | packed::Class::Denied
            ),
            "{name}"
        );
    }
}

#[test]
fn packed_verdicts_match_the_lists() {
    let lists: [(&[&str], &[&str]); 4] = [
        (&[], &[]),
        (&["ptrace", "reboot"], &[]),
        (&[], &["getpid", "uname", "clone3"]),
        (&["bpf", "getpid"], &["getpid", "ioctl"]),
    ];
    let mut checked = 0;
    for arch in [&X86_64, &AARCH64] {
        for profile in [SeccompProfile::Default, SeccompProfile::Strict] {
            for action in [
                SeccompAction::Errno,
                SeccompAction::Kill,
                SeccompAction::Log,
            ] {
                for isolation in [Isolation::Namespaces, Isolation::Landlock] {
                    for ptrace_confined in [false, true] {
                        for (allow, deny) in lists {
                            let s = SeccompSettings {
                                profile,
                                action,
                                allow: allow.iter().map(|n| n.to_string()).collect(),
                                deny: deny.iter().map(|n| n.to_string()).collect(),
                            };
                            let rules = rules(&s, &ResolvedNetwork::default(), isolation);
                            let no_pid = isolation == Isolation::Landlock && !ptrace_confined;
                            let packed = ranges(arch, |name, class| {
                                verdict(name, class, &s, &rules, no_pid)
                            });
                            let reference = reference_ranges(arch, &s, isolation, ptrace_confined);
                            assert_eq!(packed, reference, "{} {s:?} {isolation:?}", arch.name);
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 3 * 2 * 2 * 4);
}
