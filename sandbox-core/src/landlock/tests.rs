//! Plans for sample policies, and real restrictions checked in forked children.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use landlock::{AccessFs, BitFlags, RulesetAttr, RulesetCreatedAttr, ABI};
use tempfile::TempDir;

use super::rules::{self, HostRule, Rights};
use super::*;
use crate::policy::*;

// ---- a counting allocator, armed only inside forked children ----

struct Counting;
static ARMED: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; the counters are lock-free atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- helpers ----

fn policy() -> ResolvedPolicy {
    ResolvedPolicy {
        description: String::new(),
        isolation: Isolation::Namespaces,
        process: ResolvedProcess {
            cwd: PathBuf::from("/"),
            env_set: Vec::new(),
            env_pass: Vec::new(),
            uid: None,
            gid: None,
            capabilities: Vec::new(),
            hostname: "sandbox".into(),
        },
        filesystem: ResolvedFilesystem::default(),
        network: ResolvedNetwork::default(),
        seccomp: SeccompSettings::default(),
        landlock: LandlockSettings::default(),
        limits: Limits::default(),
    }
}

fn rule(p: &Path) -> PathRule {
    PathRule {
        path: p.to_path_buf(),
        optional: false,
    }
}

fn optional(p: &str) -> PathRule {
    PathRule {
        path: PathBuf::from(p),
        optional: true,
    }
}

/// System directories a dynamically linked program needs, read-only.
fn system_ro() -> Vec<PathRule> {
    ["/usr", "/lib", "/lib64", "/bin", "/etc"]
        .into_iter()
        .map(optional)
        .collect()
}

fn input<'a>(p: &'a ResolvedPolicy) -> LandlockInput<'a> {
    LandlockInput {
        policy: p,
        child_paths: &[],
        extra_read_write: &[],
    }
}

fn host_abi() -> Option<u32> {
    match probe() {
        Ok(abi) => Some(abi),
        Err(why) => {
            println!("skipped: landlock: {why}");
            None
        }
    }
}

/// A test tree: ro/a, rw/b, outside/secret, ws/{a, sub/}.
fn tree() -> TempDir {
    let t = tempfile::tempdir().unwrap();
    for d in ["ro", "rw", "outside", "ws/sub", "drop"] {
        std::fs::create_dir_all(t.path().join(d)).unwrap();
    }
    for f in ["ro/a", "rw/b", "outside/secret", "ws/a"] {
        std::fs::write(t.path().join(f), "data").unwrap();
    }
    t
}

/// Fork; the child applies `plan`, runs `check` and exits with its result (0 = pass).
fn in_restricted_child(plan: &mut LandlockPlan, check: impl FnOnce() -> i32) -> i32 {
    // SAFETY: test-only fork; the child only runs `apply` and `check`, then `_exit`s.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", io::Error::last_os_error()),
        0 => {
            // SAFETY: we are the child of a fork, as `apply` expects.
            let code = match unsafe { apply(plan) } {
                Ok(()) => check(),
                Err(e) => 100 + e as i32 % 100,
            };
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            assert!(libc::WIFEXITED(status), "child died: {status:#x}");
            libc::WEXITSTATUS(status)
        }
    }
}

/// 0 when `r` failed with EACCES (or EPERM), else `code`.
fn denied<T>(r: io::Result<T>, code: i32) -> i32 {
    match r {
        Err(e) if e.kind() == ErrorKind::PermissionDenied => 0,
        _ => code,
    }
}

fn ok<T>(r: io::Result<T>, code: i32) -> i32 {
    if r.is_ok() {
        0
    } else {
        code
    }
}

/// The first non-zero code.
fn all(codes: &[i32]) -> i32 {
    codes.iter().copied().find(|&c| c != 0).unwrap_or(0)
}

fn rules_for(p: &ResolvedPolicy, abi: ABI) -> Vec<HostRule> {
    let rights = Rights::new(abi, !p.filesystem.exec.is_empty());
    rules::host_rules(&input(p), &rights).unwrap()
}

fn access_of(rules: &[HostRule], path: &Path) -> Option<BitFlags<AccessFs>> {
    rules
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.access)
        .reduce(|a, b| a | b)
}

// ---- plans (no restriction) ----

#[test]
fn plain_policy_gives_one_rule_per_path() {
    let t = tree();
    let mut p = policy();
    p.filesystem.read_only = vec![rule(&t.path().join("ro"))];
    p.filesystem.read_write = vec![rule(&t.path().join("rw"))];
    let rules = rules_for(&p, ABI::V7);
    assert_eq!(rules.len(), 2);
    assert_eq!(
        access_of(&rules, &t.path().join("ro")),
        Some(AccessFs::from_read(ABI::V7))
    );
    assert_eq!(
        access_of(&rules, &t.path().join("rw")),
        Some(AccessFs::from_all(ABI::V7))
    );
}

#[test]
fn missing_deny_in_read_write_tree_withholds_make_on_its_parent() {
    let t = tree();
    let ws = t.path().join("ws");
    let mut p = policy();
    p.filesystem.read_write = vec![rule(&ws)];
    p.filesystem.deny = vec![ws.join(".env")];
    let rules = rules_for(&p, ABI::V7);
    let all = AccessFs::from_all(ABI::V7);
    let on_ws = access_of(&rules, &ws).unwrap();
    assert!(!on_ws.contains(AccessFs::MakeReg) && on_ws.contains(AccessFs::ReadDir));
    assert_eq!(access_of(&rules, &ws.join("sub")), Some(all));
    assert_eq!(
        access_of(&rules, &ws.join("a")),
        Some(AccessFs::from_file(ABI::V7))
    );
    assert_eq!(access_of(&rules, &ws.join(".env")), None);
}

#[test]
fn missing_deny_under_read_only_needs_no_carve_out() {
    let t = tree();
    let mut p = policy();
    p.filesystem.read_only = vec![rule(&t.path().join("ro"))];
    p.filesystem.deny = vec![t.path().join("ro/new")];
    assert_eq!(rules_for(&p, ABI::V7).len(), 1);
}

#[test]
fn existing_deny_is_carved_only_in_landlock_isolation() {
    let t = tree();
    let ws = t.path().join("ws");
    let mut p = policy();
    p.filesystem.read_only = vec![rule(&ws)];
    p.filesystem.deny = vec![ws.join("a")];
    // Namespaces: the mount layer masks it; one plain rule.
    assert_eq!(rules_for(&p, ABI::V7).len(), 1);
    p.isolation = Isolation::Landlock;
    let rules = rules_for(&p, ABI::V7);
    assert_eq!(access_of(&rules, &ws.join("a")), None);
    assert_eq!(
        access_of(&rules, &ws),
        Some(BitFlags::from(AccessFs::ReadDir))
    );
    assert!(access_of(&rules, &ws.join("sub")).is_some());
}

#[test]
fn exec_allowlist_drops_execute_elsewhere_and_adds_the_loader() {
    let mut p = policy();
    p.filesystem.read_only = system_ro();
    p.filesystem.exec = vec![PathBuf::from("/bin/sh")];
    let rules = rules_for(&p, ABI::V7);
    let with_exec: Vec<&HostRule> = rules
        .iter()
        .filter(|r| r.access.contains(AccessFs::Execute))
        .collect();
    assert!(with_exec.len() >= 2, "{with_exec:?}");
    assert!(with_exec.iter().all(|r| r.key == "filesystem.exec"));
    assert!(with_exec
        .iter()
        .any(|r| r.path.to_string_lossy().contains("ld-")));
}

#[test]
fn feature_gaps_on_old_kernels() {
    let mut p = policy();
    // The default-like policy on 6.1 (ABI 2): runs, partially.
    let gaps = rules::feature_gaps(&p, 2);
    assert!(gaps.requested.is_empty());
    assert!(gaps.baseline.iter().any(|g| g.needs == 3));
    assert!(rules::feature_gaps(&p, 7).baseline.is_empty());
    // Ports with a shared network need ABI 4.
    p.network.mode = NetworkMode::Host;
    p.network.connect_tcp = vec![443];
    let gaps = rules::feature_gaps(&p, 3);
    assert_eq!(gaps.requested[0].needs, 4);
    assert!(gaps.baseline.iter().any(|g| g.needs == 6));
}

#[test]
fn requested_feature_fails_closed_unless_best_effort() {
    if host_abi().is_none() {
        return;
    }
    let mut p = policy();
    p.network.mode = NetworkMode::Host;
    p.network.connect_tcp = vec![443];
    let err = prepare_with_abi(&input(&p), 3).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("network.connect_tcp"), "{msg}");
    assert!(msg.contains("ABI 4 (linux 6.7)"), "{msg}");
    assert!(
        msg.contains("hint: set [landlock] best_effort = true"),
        "{msg}"
    );
    p.landlock.best_effort = true;
    let (_, status) = prepare_with_abi(&input(&p), 3).unwrap();
    match status {
        LayerStatus::Partial(what) => assert!(what.contains("connect_tcp"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn default_like_policy_runs_on_abi_2_partially_and_on_this_kernel_fully() {
    let Some(abi) = host_abi() else { return };
    let t = tree();
    let mut p = policy();
    p.filesystem.read_only = system_ro();
    p.filesystem.read_write = vec![rule(&t.path().join("ws"))];
    let (_, status) = prepare_with_abi(&input(&p), 2).unwrap();
    assert!(matches!(status, LayerStatus::Partial(ref s) if s.contains("linux 6.2")));
    let (_, status) = prepare(&input(&p)).unwrap();
    if abi >= 5 {
        assert_eq!(status, LayerStatus::Enforced);
    }
}

#[test]
fn net_rules_follow_the_mode() {
    let mut p = policy();
    assert_eq!(rules::net_rules(&p, 7), rules::NetPlan::default());
    p.isolation = Isolation::Landlock;
    assert_eq!(rules::net_rules(&p, 7).handled, tcp_rights());
    p.network.mode = NetworkMode::Host;
    assert!(rules::net_rules(&p, 7).handled.is_empty());
    p.network.connect_tcp = vec![443, 80];
    p.network.bind_tcp = vec![80];
    let plan = rules::net_rules(&p, 7);
    assert_eq!(plan.handled, tcp_rights());
    assert_eq!(plan.ports.len(), 2);
    assert_eq!(plan.ports[1].access, tcp_rights());
}

#[test]
fn abi_version_matches_probe() {
    assert_eq!(abi_version(), probe().ok());
    if let Ok(expected) = std::env::var("EXPECT_LANDLOCK_ABI") {
        assert_eq!(abi_version(), expected.parse().ok());
    }
}

#[test]
fn prepare_cost_for_a_default_like_policy() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let mut p = policy();
    p.filesystem.read_only = system_ro();
    p.filesystem.read_write = vec![rule(&t.path().join("ws"))];
    p.filesystem.deny = vec![t.path().join("ws/.env")];
    let child = [
        (PathBuf::from("/"), ChildAccess::RootDir),
        (PathBuf::from("/proc"), ChildAccess::Proc),
        (PathBuf::from("/dev"), ChildAccess::Dev),
        (PathBuf::from("/tmp"), ChildAccess::ReadWrite),
    ];
    let input = LandlockInput {
        policy: &p,
        child_paths: &child,
        extra_read_write: &[],
    };
    let runs = 200;
    let start = Instant::now();
    for _ in 0..runs {
        let (plan, _) = prepare(&input).unwrap();
        drop(plan);
    }
    let each = start.elapsed() / runs;
    println!("prepare() for a default-like policy (+ one deny carve-out): {each:?} per launch");
    assert!(each.as_millis() < 50, "{each:?}");
}

// ---- real restrictions, in forked children ----

#[test]
fn filesystem_rules_hold_in_a_restricted_child() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let root = t.path().to_path_buf();
    let mut p = policy();
    p.filesystem.read_only = vec![rule(&root.join("ro"))];
    p.filesystem.read_write = vec![rule(&root.join("rw"))];
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let code = in_restricted_child(&mut plan, || {
        all(&[
            ok(std::fs::read(root.join("ro/a")), 1),
            denied(std::fs::read(root.join("outside/secret")), 2),
            denied(std::fs::write(root.join("ro/a"), "x"), 3),
            ok(std::fs::write(root.join("rw/new"), "x"), 4),
            ok(std::fs::read(root.join("rw/new")), 5),
            denied(std::fs::read_dir(root.join("outside")), 6),
            denied(std::fs::create_dir(root.join("ro/d")), 7),
        ])
    });
    assert_eq!(code, 0);
}

#[test]
fn child_side_rules_are_added_and_do_not_allocate() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let root = t.path().to_path_buf();
    let p = policy();
    // Stands in for a path that exists only after pivot_root.
    let child = [(root.join("rw"), ChildAccess::ReadWrite)];
    let input = LandlockInput {
        policy: &p,
        child_paths: &child,
        extra_read_write: &[],
    };
    let (mut plan, _) = prepare(&input).unwrap();
    // SAFETY: test-only fork; the child applies the plan with the counter armed and `_exit`s.
    let code = match unsafe { libc::fork() } {
        0 => {
            ARMED.store(true, Ordering::SeqCst);
            // SAFETY: we are the child of a fork.
            let r = unsafe { apply(&mut plan) };
            ARMED.store(false, Ordering::SeqCst);
            let code = if r.is_err() {
                1
            } else if ALLOCATIONS.load(Ordering::SeqCst) != 0 {
                2
            } else {
                all(&[
                    ok(std::fs::write(root.join("rw/x"), "x"), 3),
                    denied(std::fs::read(root.join("ro/a")), 4),
                ])
            };
            // SAFETY: ends the forked child.
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            libc::WEXITSTATUS(status)
        }
    };
    assert_eq!(
        code, 0,
        "1: apply failed, 2: apply allocated, 3/4: rules wrong"
    );
}

#[test]
fn exec_allowlist_blocks_other_binaries() {
    if host_abi().is_none() {
        return;
    }
    let mut p = policy();
    p.filesystem.read_only = system_ro();
    p.filesystem.exec = vec![PathBuf::from("/usr/bin/true")];
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let loader = elf::interpreter(Path::new("/usr/bin/true"))
        .unwrap()
        .unwrap();
    let code = in_restricted_child(&mut plan, || {
        let run = |bin: &str| std::process::Command::new(bin).status();
        // The documented limit: the loader stays executable and loads any readable ELF.
        let via_loader = std::process::Command::new(&loader)
            .arg("/usr/bin/false")
            .status();
        all(&[
            match run("/usr/bin/true") {
                Ok(s) if s.success() => 0,
                _ => 1,
            },
            denied(run("/usr/bin/false"), 2),
            denied(run("/bin/sh"), 3),
            match via_loader {
                Ok(s) if s.code() == Some(1) => 0,
                _ => 4,
            },
        ])
    });
    assert_eq!(code, 0);
}

#[test]
fn exec_allowlist_needs_the_interpreter() {
    // The experiment behind the module docs: execve needs Execute on the binary and on its
    // ELF interpreter, and ReadFile on the binary; shared libraries need only ReadFile.
    if host_abi().is_none() {
        return;
    }
    let interp = elf::interpreter(Path::new("/usr/bin/true"))
        .unwrap()
        .unwrap();
    let build = |loader_exec: bool, binary_readable: bool| {
        let abi = ABI::V1;
        let mut rs = landlock::Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .unwrap()
            .create()
            .unwrap();
        let readable: &[&str] = if binary_readable {
            &["/usr", "/lib", "/lib64"]
        } else {
            &["/usr/lib", "/lib", "/lib64"]
        };
        for d in readable {
            if let Ok(fd) = landlock::PathFd::new(d) {
                rs = rs
                    .add_rule(landlock::PathBeneath::new(
                        fd,
                        AccessFs::ReadFile | AccessFs::ReadDir,
                    ))
                    .unwrap();
            }
        }
        let mut exec = vec![PathBuf::from("/usr/bin/true")];
        if loader_exec {
            exec.push(interp.clone());
        }
        for e in exec {
            rs = rs
                .add_rule(landlock::PathBeneath::new(
                    landlock::PathFd::new(e).unwrap(),
                    AccessFs::Execute,
                ))
                .unwrap();
        }
        LandlockPlan {
            ruleset: rs.into(),
            child_rules: Vec::new(),
        }
    };
    let run_true = || match std::process::Command::new("/usr/bin/true").status() {
        Ok(s) if s.success() => 0,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => 1,
        _ => 2,
    };
    assert_eq!(in_restricted_child(&mut build(false, true), run_true), 1);
    assert_eq!(in_restricted_child(&mut build(true, false), run_true), 1);
    assert_eq!(in_restricted_child(&mut build(true, true), run_true), 0);
}

#[test]
fn write_only_drop_box_accepts_but_does_not_give_back() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let root = t.path().to_path_buf();
    let mut p = policy();
    p.filesystem.read_write = vec![rule(&root.join("ws"))];
    p.filesystem.write_only = vec![rule(&root.join("drop")), rule(&root.join("ws/sub"))];
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let code = in_restricted_child(&mut plan, || {
        all(&[
            ok(std::fs::write(root.join("drop/f"), "x"), 1),
            denied(std::fs::read(root.join("drop/f")), 2),
            denied(std::fs::read_dir(root.join("drop")), 3),
            // Nested in a read-write tree (carve-out).
            ok(std::fs::write(root.join("ws/sub/f"), "x"), 4),
            denied(std::fs::read(root.join("ws/sub/f")), 5),
            ok(std::fs::read(root.join("ws/a")), 6),
            ok(std::fs::write(root.join("ws/a"), "y"), 7),
        ])
    });
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(root.join("drop/f")).unwrap(), b"x");
}

#[test]
fn missing_denied_path_cannot_be_created() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let root = t.path().to_path_buf();
    let ws = root.join("ws");
    let mut p = policy();
    p.filesystem.read_write = vec![rule(&ws)];
    p.filesystem.deny = vec![ws.join(".env"), ws.join(".git/hooks")];
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let code = in_restricted_child(&mut plan, || {
        all(&[
            denied(std::fs::write(ws.join(".env"), "x"), 1),
            denied(std::fs::create_dir(ws.join(".git")), 2),
            denied(std::os::unix::fs::symlink("/etc", ws.join(".env")), 3),
            ok(std::fs::write(ws.join("a"), "y"), 4),
            ok(std::fs::read(ws.join("a")), 5),
            ok(std::fs::write(ws.join("sub/new"), "x"), 6),
            ok(std::fs::read_dir(&ws), 7),
            ok(std::fs::remove_file(ws.join("sub/new")), 8),
        ])
    });
    assert_eq!(code, 0);
    assert!(!ws.join(".env").exists() && !ws.join(".git").exists());
}

#[test]
fn existing_denied_paths_are_inaccessible_in_landlock_isolation() {
    if host_abi().is_none() {
        return;
    }
    let t = tree();
    let root = t.path().to_path_buf();
    let ws = root.join("ws");
    std::fs::create_dir(ws.join(".ssh")).unwrap();
    std::fs::write(ws.join(".ssh/id"), "key").unwrap();
    std::fs::write(ws.join(".env"), "TOKEN").unwrap();
    let mut p = policy();
    p.isolation = Isolation::Landlock;
    p.filesystem.read_write = vec![rule(&ws)];
    p.filesystem.deny = vec![ws.join(".env"), ws.join("sub/.ssh"), ws.join(".ssh")];
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let code = in_restricted_child(&mut plan, || {
        all(&[
            denied(std::fs::read(ws.join(".env")), 1),
            denied(std::fs::write(ws.join(".env"), "x"), 2),
            denied(std::fs::remove_file(ws.join(".env")), 3),
            denied(std::fs::read(ws.join(".ssh/id")), 4),
            denied(std::fs::read_dir(ws.join(".ssh")), 5),
            denied(std::fs::write(ws.join(".ssh/authorized_keys"), "x"), 6),
            ok(std::fs::read(ws.join("a")), 7),
            ok(std::fs::write(ws.join("a"), "x"), 8),
            denied(std::fs::create_dir(ws.join("sub/.ssh")), 9),
            // The documented trade-offs: a chain directory of an existing denied directory
            // cannot be listed, one of a missing denied path takes no new entries.
            denied(std::fs::read_dir(&ws), 10),
            denied(std::fs::write(ws.join("sub/f"), "x"), 11),
        ])
    });
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(ws.join(".env")).unwrap(), b"TOKEN");
}

#[test]
fn tcp_ports_are_restricted_with_a_shared_network() {
    let Some(abi) = host_abi() else { return };
    if abi < 4 {
        println!("skipped: landlock tcp rules: ABI {abi} < 4");
        return;
    }
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed_port = allowed.local_addr().unwrap().port();
    let other_port = other.local_addr().unwrap().port();
    let mut p = policy();
    p.network.mode = NetworkMode::Host;
    p.network.connect_tcp = vec![allowed_port];
    let (mut plan, status) = prepare(&input(&p)).unwrap();
    assert!(!matches!(status, LayerStatus::Partial(ref s) if s.contains("connect_tcp")));
    let code = in_restricted_child(&mut plan, || {
        let connect = |port| std::net::TcpStream::connect(("127.0.0.1", port));
        all(&[ok(connect(allowed_port), 1), denied(connect(other_port), 2)])
    });
    assert_eq!(code, 0);
}

#[test]
fn signals_to_the_parent_are_scoped() {
    let Some(abi) = host_abi() else { return };
    if abi < 6 {
        println!("skipped: landlock scoping: ABI {abi} < 6");
        return;
    }
    use std::os::linux::net::SocketAddrExt;
    let name = format!("sandbox-landlock-test-{}", std::process::id());
    let abstract_addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&abstract_addr).unwrap();
    let mut p = policy();
    p.network.mode = NetworkMode::Host;
    let (mut plan, _) = prepare(&input(&p)).unwrap();
    let code = in_restricted_child(&mut plan, || {
        // SAFETY: plain syscalls; signal 0 only checks permission.
        let (to_parent, to_self) = unsafe {
            (
                libc::kill(libc::getppid(), 0),
                libc::kill(libc::getpid(), 0),
            )
        };
        let err = io::Error::last_os_error().raw_os_error();
        let abstract_socket = std::os::unix::net::UnixStream::connect_addr(&abstract_addr);
        match (to_parent, to_self) {
            (-1, 0) if err == Some(libc::EPERM) => denied(abstract_socket, 4),
            (0, _) => 1,
            (-1, 0) => 2,
            _ => 3,
        }
    });
    assert_eq!(
        code, 0,
        "1: the parent could be signalled, 4: abstract socket reachable"
    );
    // Positive control: unrestricted, the same abstract socket is reachable.
    assert!(std::os::unix::net::UnixStream::connect_addr(&abstract_addr).is_ok());
}

#[test]
fn missing_required_path_is_an_error_naming_the_key() {
    let mut p = policy();
    p.filesystem.read_only = vec![rule(Path::new("/nonexistent/x"))];
    let rights = Rights::new(ABI::V7, false);
    let err = rules::host_rules(&input(&p), &rights).unwrap_err();
    assert_eq!(
        err.to_string(),
        "filesystem.read_only: /nonexistent/x: no such file or directory"
    );
    let mut p = policy();
    let t = tree();
    let f = t.path().join("ro/a");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    p.filesystem.read_only = vec![optional("/nonexistent/x"), rule(&f)];
    assert_eq!(rules::host_rules(&input(&p), &rights).unwrap().len(), 1);
}

#[test]
fn a_rule_whose_path_was_swapped_for_a_link_is_refused() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let (tree, other) = (dir.join("tree"), dir.join("other"));
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::create_dir_all(other.join("sub")).unwrap();
    // As the compile resolved them: real paths open.
    open_rule_path(&tree, true).expect("unchanged");
    open_rule_path(&tree.join("sub"), true).expect("unchanged");
    // Swapped for a link since: the rule's path, or a directory above it, now names another
    // tree; refused, where following the link (the exec allowlist's way) reaches it.
    std::fs::rename(&tree, dir.join("tree.old")).unwrap();
    std::os::unix::fs::symlink(&other, &tree).unwrap();
    for path in [tree.clone(), tree.join("sub")] {
        let err = open_rule_path(&path, true).unwrap_err();
        assert!(err.to_string().contains("changed"), "{path:?}: {err}");
        open_rule_path(&path, false).expect("followed");
    }
}
