//! Unit tests on fake cgroup trees in a `TempDir`, and real tests on this host's cgroups
//! (root only; they print `skipped: …` otherwise).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::host::{decide, Host, Leaf};
use super::*;

const MIB: u64 = 1 << 20;

fn touch(path: &Path, content: &str) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap();
    }
    fs::write(path, content).unwrap();
}

/// A pure-v2 root with `<root>/user.slice/app.scope` offering `offered`.
fn fake_v2(root: &Path, offered: &str) {
    touch(
        &root.join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma\n",
    );
    touch(&root.join("cgroup.procs"), "");
    touch(&root.join("cgroup.subtree_control"), "cpu memory pids\n");
    let own = root.join("user.slice/app.scope");
    touch(&own.join("cgroup.controllers"), offered);
    touch(&own.join("cgroup.procs"), "");
    touch(&own.join("cgroup.subtree_control"), "");
}

fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid)).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        std::os::unix::fs::chown(e.unwrap().path(), Some(uid), Some(uid)).unwrap();
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// An ordinary uid that owns `dir`: 1000 after a chown when we are root, else ourselves.
fn delegate_to_user(dir: &Path) -> u32 {
    if euid() == 0 {
        chown_tree(dir, 1000);
        1000
    } else {
        euid()
    }
}

fn limits(memory: Option<u64>, cpus: Option<f64>, pids: Option<u64>) -> Limits {
    Limits {
        memory,
        cpus,
        pids,
        ..Limits::default()
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap().trim().to_owned()
}

#[test]
fn no_limit_no_cgroup() {
    let setup = prepare(&Limits::default(), true).unwrap();
    assert!(setup.cgroup.is_none());
    assert_eq!(setup.enforcement.backend, "none");
    assert_eq!(
        setup.enforcement.core,
        Some(Enforced::Rlimit {
            resource: "RLIMIT_CORE",
            value: 0,
            caveat: None
        })
    );
    assert_eq!(setup.enforcement.memory, None);
}

#[test]
fn v2_as_root_in_root_cgroup() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/\n",
        euid: 0,
        egid: 0,
    });
    let Layout::V2(h) = &layout else {
        panic!("expected v2, got {layout:?}")
    };
    assert_eq!(h.leaf, Leaf::RootCgroup);
    assert_eq!(h.base, root);
    assert_eq!(probe_of(&layout).version, "v2");

    let state = Mutex::new(None);
    let lim = limits(Some(100_000_000), Some(1.5), Some(64));
    let setup = prepare_with(&layout, &state, &lim, 4242, true).unwrap();
    let cg = setup.cgroup.unwrap();
    let dir = cg.path().to_path_buf();
    assert!(dir.starts_with(root));
    assert!(dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("sandbox-4242-"));
    // The kernel keeps whole pages: 100_000_000 → 99_999_744.
    assert_eq!(read(&dir.join("memory.max")), "99999744");
    assert_eq!(read(&dir.join("cpu.max")), "150000 100000");
    assert_eq!(read(&dir.join("pids.max")), "64");
    assert!(cg.clone_into_fd().is_some());
    let r = &setup.enforcement;
    assert_eq!(r.backend, "cgroup2");
    assert_eq!(
        r.memory,
        Some(Enforced::cgroup("memory.max", "99999744".into()))
    );
    assert!(matches!(r.swap, Some(Enforced::NotEnforced { .. })));
    assert!(r.degraded.is_none());
    // The root cgroup needs no supervisor leaf.
    assert!(!root.join("supervisor").exists());
    cg.remove().unwrap();
    assert!(!dir.exists());
}

#[test]
fn v2_delegated_moves_supervisor_into_leaf_first() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let own = root.join("user.slice/app.scope");
    let uid = delegate_to_user(&own);
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/user.slice/app.scope\n",
        euid: uid,
        egid: uid,
    });
    let Layout::V2(h) = &layout else {
        panic!("expected v2, got {layout:?}")
    };
    assert_eq!(h.leaf, Leaf::Move(own.join("supervisor")));
    assert!(probe_of(&layout).usable);

    let state = Mutex::new(None);
    let setup = prepare_with(
        &layout,
        &state,
        &limits(Some(64 * MIB), None, None),
        4242,
        true,
    )
    .unwrap();
    assert_eq!(read(&own.join("supervisor/cgroup.procs")), "4242");
    // Only the needed controller is enabled (the fake file keeps the last write).
    assert_eq!(read(&own.join("cgroup.subtree_control")), "+memory");
    let cg = setup.cgroup.unwrap();
    assert_eq!(cg.path().parent(), Some(own.as_path()));
    assert!(!cg.path().join("pids.max").exists());

    // A second launch needing pids enables it, without moving the supervisor again.
    fs::write(own.join("supervisor/cgroup.procs"), "").unwrap();
    let setup2 = prepare_with(&layout, &state, &limits(None, None, Some(8)), 4242, true).unwrap();
    assert_eq!(read(&own.join("supervisor/cgroup.procs")), "");
    assert_eq!(read(&own.join("cgroup.subtree_control")), "+pids");
    let base = state.lock().unwrap().clone().unwrap();
    assert_eq!(
        base.enabled,
        Ctrls::NONE.with(Ctrl::Memory).with(Ctrl::Pids)
    );
    drop(setup2);
    let path = cg.path().to_path_buf();
    drop(cg);
    assert!(!path.exists(), "Drop removes the cgroup");
}

#[test]
fn v2_process_in_supervisor_leaf_reuses_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/user.slice/app.scope/supervisor\n",
        euid: 0,
        egid: 0,
    });
    let Layout::V2(h) = &layout else {
        panic!("expected v2")
    };
    assert_eq!(h.leaf, Leaf::AlreadyThere);
    assert_eq!(h.base, root.join("user.slice/app.scope"));
}

#[test]
fn v2_missing_controller_is_named_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "memory pids");
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/user.slice/app.scope\n",
        euid: 0,
        egid: 0,
    });
    let state = Mutex::new(None);
    let err = prepare_with(
        &layout,
        &state,
        &limits(Some(64 * MIB), Some(1.0), None),
        1,
        true,
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(matches!(
        err,
        CgroupError::MissingController {
            controller: "cpu",
            ..
        }
    ));
    assert!(msg.contains("the cpu controller is not available"), "{msg}");
    assert!(msg.contains("available: memory pids"), "{msg}");
    assert!(
        msg.contains("systemd-run --user --scope -p Delegate=yes"),
        "{msg}"
    );
    // Nothing was created or moved.
    assert!(!root.join("user.slice/app.scope/supervisor").exists());
    let probe = probe_of(&layout);
    assert!(!probe.usable);
    assert!(probe.why_not.unwrap().contains("cpu"));

    // best_effort: memory by the cgroup, cpus reported as not enforced.
    let mut lim = limits(Some(64 * MIB), Some(1.0), None);
    lim.best_effort = true;
    let setup = prepare_with(&layout, &state, &lim, 1, true).unwrap();
    let r = &setup.enforcement;
    assert_eq!(r.backend, "cgroup2");
    assert!(matches!(
        r.memory,
        Some(Enforced::Cgroup {
            file: "memory.max",
            ..
        })
    ));
    assert!(matches!(r.cpus, Some(Enforced::NotEnforced { .. })));
    assert!(r.degraded.as_deref().unwrap().contains("cpu controller"));
    assert!(setup.rlimits.get("RLIMIT_AS").is_none());
}

#[test]
fn v2_not_delegated_fails_or_falls_back_to_rlimits() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    // Owned by us, but we pose as another ordinary uid: mode 0644 gives it no write.
    let other = euid() + 1000;
    let own = root.join("user.slice/app.scope");
    fs::set_permissions(&own, fs::Permissions::from_mode(0o755)).unwrap();
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/user.slice/app.scope\n",
        euid: other,
        egid: other,
    });
    assert!(
        matches!(&layout, Layout::Unusable { version: "v2", why: Unusable::V2NotDelegated { cgroup, .. } } if *cgroup == own),
        "{layout:?}"
    );
    let state = Mutex::new(None);
    let lim = limits(Some(64 * MIB), Some(1.0), Some(10));
    let err = prepare_with(&layout, &state, &lim, 1, true).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("is not delegated to uid"), "{msg}");
    assert!(msg.contains("hint: run it in a delegated cgroup: systemd-run --user --scope -p Delegate=yes sandbox run"), "{msg}");

    let lim = Limits {
        best_effort: true,
        timeout: Some(Duration::from_secs(4)),
        ..lim
    };
    let setup = prepare_with(&layout, &state, &lim, 1, true).unwrap();
    assert!(setup.cgroup.is_none());
    let r = &setup.enforcement;
    assert_eq!(r.backend, "rlimit");
    assert!(
        matches!(r.memory, Some(Enforced::Rlimit { resource: "RLIMIT_AS", value, .. }) if value == 64 * MIB)
    );
    assert!(matches!(
        r.pids,
        Some(Enforced::Rlimit {
            resource: "RLIMIT_NPROC",
            value: 10,
            caveat: Some(_)
        })
    ));
    assert!(matches!(
        r.cpus,
        Some(Enforced::Rlimit {
            resource: "RLIMIT_CPU",
            value: 4,
            ..
        })
    ));
    assert!(r.degraded.as_deref().unwrap().contains("not delegated"));
}

#[test]
fn v2_root_cgroup_is_never_delegated_to_a_user() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/\n",
        euid: euid() + 1000,
        egid: 12345,
    });
    assert!(matches!(
        layout,
        Layout::Unusable {
            why: Unusable::V2NotDelegated { .. },
            ..
        }
    ));
}

#[test]
fn v2_readback_mismatch_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Writes vanish, reads give nothing: as a limit the kernel did not take.
    symlink("/dev/null", dir.join("memory.max")).unwrap();
    let mut report = LimitsReport::new("cgroup2");
    let err = v2::write_limits(
        dir,
        &limits(Some(64 * MIB), None, None),
        Ctrls::LIMITS,
        &mut report,
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, CgroupError::ReadBack { read, .. } if read.is_empty()),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("wrote \"67108864\" but read back \"\""));
}

#[test]
fn v2_swap_is_turned_off_when_the_file_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    touch(&dir.join("memory.swap.max"), "max\n");
    let mut report = LimitsReport::new("cgroup2");
    v2::write_limits(
        dir,
        &limits(Some(64 * MIB), None, None),
        Ctrls::LIMITS,
        &mut report,
    )
    .unwrap();
    assert_eq!(read(&dir.join("memory.swap.max")), "0");
    assert_eq!(
        report.swap,
        Some(Enforced::cgroup("memory.swap.max", "0".into()))
    );
}

#[test]
fn v2_usage_reads_oom_and_peaks() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/\n",
        euid: 0,
        egid: 0,
    });
    let state = Mutex::new(None);
    let setup = prepare_with(
        &layout,
        &state,
        &limits(Some(64 * MIB), None, None),
        7,
        true,
    )
    .unwrap();
    let cg = setup.cgroup.unwrap();
    let d = cg.path().to_path_buf();
    touch(&d.join("memory.peak"), "1234\n");
    touch(
        &d.join("memory.events"),
        "low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\noom_group_kill 0\n",
    );
    touch(&d.join("pids.peak"), "5\n");
    touch(
        &d.join("cpu.stat"),
        "usage_usec 30\nuser_usec 20\nsystem_usec 10\n",
    );
    let u = cg.usage();
    assert_eq!(u.memory_peak_bytes, Some(1234));
    assert!(u.oom_killed);
    assert_eq!(u.oom_kills, Some(1));
    assert_eq!(u.pids_peak, Some(5));
    assert_eq!(u.pids_current, None);
    assert_eq!((u.cpu_user_usec, u.cpu_system_usec), (Some(20), Some(10)));
}

/// A v1 tree like this host's: separate hierarchies, and one co-mounted `cpu,cpuacct`.
fn fake_v1(root: &Path, hybrid: bool) -> &'static str {
    for h in ["memory", "pids", "cpu,cpuacct", "freezer", "devices"] {
        touch(&root.join(h).join("cgroup.procs"), "");
    }
    symlink("cpu,cpuacct", root.join("cpu")).unwrap();
    symlink("cpu,cpuacct", root.join("cpuacct")).unwrap();
    fs::create_dir_all(root.join("memory/process_api/abc")).unwrap();
    if hybrid {
        touch(&root.join("unified/cgroup.controllers"), "hugetlb\n");
    }
    "9:name=systemd:/\n8:pids:/\n6:freezer:/\n5:devices:/\n4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/\n"
}

#[test]
fn v1_hybrid_as_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let self_cgroup = fake_v1(root, true);
    let layout = decide(&Host {
        root,
        self_cgroup,
        euid: 0,
        egid: 0,
    });
    let Layout::V1(h) = &layout else {
        panic!("expected v1, got {layout:?}")
    };
    assert!(h.hybrid);
    assert_eq!(h.hierarchies.len(), 4);
    let probe = probe_of(&layout);
    assert_eq!(probe.version, "v1 hybrid");
    assert!(probe.usable);
    assert_eq!(probe.own_cgroup, Some(root.join("memory/process_api/abc")));

    let state = Mutex::new(None);
    let setup = prepare_with(
        &layout,
        &state,
        &limits(Some(32 * MIB), Some(0.5), Some(16)),
        99,
        true,
    )
    .unwrap();
    let cg = setup.cgroup.unwrap();
    assert!(cg.clone_into_fd().is_none());
    let name = cg.path().file_name().unwrap().to_owned();
    let mem = root.join("memory/process_api/abc").join(&name);
    let cpu = root.join("cpu,cpuacct").join(&name);
    let pids = root.join("pids").join(&name);
    let freezer = root.join("freezer").join(&name);
    assert_eq!(
        read(&mem.join("memory.limit_in_bytes")),
        (32 * MIB).to_string()
    );
    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(&pids.join("pids.max")), "16");
    assert!(freezer.is_dir());
    assert!(!root.join("devices").join(&name).exists());
    let r = &setup.enforcement;
    assert_eq!(r.backend, "cgroup1");
    assert_eq!(
        r.cpus,
        Some(Enforced::cgroup(
            "cpu.cfs_quota_us",
            "50000 per 100000".into()
        ))
    );

    // attach writes the pid in every hierarchy.
    cg.attach(31337).unwrap();
    for d in [&mem, &cpu, &pids, &freezer] {
        assert_eq!(read(&d.join("cgroup.procs")), "31337");
    }
    for d in [&mem, &cpu, &pids, &freezer] {
        fs::write(d.join("cgroup.procs"), "").unwrap();
    }
    cg.remove().unwrap();
    for d in [&mem, &cpu, &pids, &freezer] {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn v1_memsw_written_when_present() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    touch(
        &dir.join("memory.memsw.limit_in_bytes"),
        "9223372036854771712\n",
    );
    let mut report = LimitsReport::new("cgroup1");
    v1::write_limits(
        dir,
        &limits(Some(32 * MIB), None, None),
        Ctrls::LIMITS,
        &mut report,
    )
    .unwrap();
    assert_eq!(
        read(&dir.join("memory.memsw.limit_in_bytes")),
        (32 * MIB).to_string()
    );
    assert!(matches!(
        report.swap,
        Some(Enforced::Cgroup {
            file: "memory.memsw.limit_in_bytes",
            ..
        })
    ));
}

#[test]
fn v1_not_root_is_refused_with_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let self_cgroup = fake_v1(root, true);
    let layout = decide(&Host {
        root,
        self_cgroup,
        euid: 1000,
        egid: 1000,
    });
    assert_eq!(
        layout,
        Layout::Unusable {
            version: "v1 hybrid",
            why: Unusable::V1NotRoot { euid: 1000 }
        }
    );
    let err = prepare_with(
        &layout,
        &Mutex::new(None),
        &limits(Some(MIB), None, None),
        1,
        true,
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "cgroup limits are not available: cgroup v1 limits need root and this process runs as uid 1000; hint: {}",
            host::HINT_V1
        )
    );
}

#[test]
fn no_cgroupfs() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = decide(&Host {
        root: tmp.path(),
        self_cgroup: "",
        euid: 0,
        egid: 0,
    });
    assert_eq!(layout.version(), "none");
    let probe = probe_of(&layout);
    assert!(!probe.usable);
    assert!(probe.why_not.unwrap().contains("no cgroup filesystem"));
}

#[test]
fn bad_values_are_refused() {
    assert!(matches!(
        memory_bytes(100),
        Err(CgroupError::MemoryTooSmall { .. })
    ));
    assert!(matches!(
        cpu_quota(0.001),
        Err(CgroupError::CpusTooSmall { .. })
    ));
    assert_eq!(cpu_quota(2.0).unwrap(), (200_000, 100_000));
}

#[test]
fn report_serializes() {
    let mut r = LimitsReport::new("cgroup1");
    r.memory = Some(Enforced::cgroup("memory.limit_in_bytes", "1048576".into()));
    let v = toml::Value::try_from(&r).unwrap();
    let mem = v.get("memory").unwrap();
    assert_eq!(mem.get("by").unwrap().as_str(), Some("cgroup"));
    assert_eq!(
        mem.get("file").unwrap().as_str(),
        Some("memory.limit_in_bytes")
    );
}

// ---------------------------------------------------------------------------------------
// Real cgroups on this host (root only).

/// The host's layout when a real test can run here, else why not (printed as skipped).
fn real_host(test: &str) -> Option<&'static Layout> {
    let layout = layout();
    match layout {
        Layout::V1(_) | Layout::V2(_) => Some(layout),
        Layout::Unusable { version, why } => {
            let feature = match *version {
                "none" => "cgroups",
                "v2" => "cgroup v2",
                _ => "cgroup v1",
            };
            let why = match why {
                Unusable::V1NotRoot { .. } => "not root".to_owned(),
                w => w.to_string(),
            };
            println!("skipped: {feature}: {why} ({test})");
            None
        }
    }
}

/// Serialises the real tests: they fork, and the OOM test must not starve the others.
static REAL: Mutex<()> = Mutex::new(());

/// Fork a child that blocks until released, then runs `body` (async-signal-safe only) and
/// `_exit`s with its result. Returns the pid and the release fd.
fn fork_held(body: fn() -> i32) -> (libc::pid_t, libc::c_int) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child only makes raw syscalls before _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw syscalls in the forked child.
        unsafe {
            let mut b = 0u8;
            libc::close(fds[1]);
            libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(body());
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(fds[0]) };
    (pid, fds[1])
}

fn release(fd: libc::c_int) {
    // SAFETY: writing one byte from a valid buffer to our pipe, then closing it.
    unsafe {
        libc::write(fd, b"x".as_ptr().cast(), 1);
        libc::close(fd);
    }
}

fn wait(pid: libc::pid_t) -> libc::c_int {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    status
}

/// After `kill()` `cgroup.procs` is empty; `pids.current` still counts the killed orphans
/// until their new parent (here the host's pid 1) reaps them.
fn assert_pids_drain(cg: &Cgroup) {
    for p in all_dirs(cg) {
        assert!(fsio::pids(&p.join("cgroup.procs")).is_empty());
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while cg.usage().pids_current != Some(0) {
        assert!(Instant::now() < deadline, "{:?}", cg.usage());
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn all_dirs(cg: &Cgroup) -> Vec<std::path::PathBuf> {
    match &cg.inner {
        Inner::V2(c) => vec![c.dir().to_path_buf()],
        Inner::V1(c) => c.dirs().map(Path::to_path_buf).collect(),
    }
}

#[test]
fn real_memory_limit_oom_kills_and_is_reported() {
    let Some(layout) = real_host("oom") else {
        return;
    };
    let probe = cgroup_probe();
    assert_eq!(probe.version, layout.version());
    assert!(probe.usable, "{probe:?}");
    let _g = REAL.lock().unwrap_or_else(|p| p.into_inner());
    let setup = prepare(&limits(Some(32 * MIB), None, None), true).unwrap();
    let cg = setup.cgroup.unwrap();
    let (pid, go) = fork_held(|| {
        // Touch 128 MiB, a page at a time: far past the 32 MiB limit.
        let len = 128 << 20;
        // SAFETY: anonymous private mapping; pages written within its bounds.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return 3;
            }
            let mut off = 0;
            while off < len {
                *(p as *mut u8).add(off) = 1;
                off += 4096;
            }
        }
        0
    });
    cg.attach(pid).unwrap();
    release(go);
    let status = wait(pid);
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
        "status {status:#x}"
    );
    let u = cg.usage();
    assert!(u.oom_killed, "{u:?}");
    assert!(u.memory_peak_bytes.unwrap() > 16 * MIB, "{u:?}");
    assert!(u.memory_peak_bytes.unwrap() <= 32 * MIB, "{u:?}");
    let dirs = all_dirs(&cg);
    cg.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn real_pids_limit_makes_fork_fail_and_kill_cleans_up() {
    let Some(_) = real_host("pids") else { return };
    let _g = REAL.lock().unwrap_or_else(|p| p.into_inner());
    let setup = prepare(&limits(None, None, Some(4)), true).unwrap();
    let cg = setup.cgroup.unwrap();
    let (pid, go) = fork_held(|| {
        // Up to 10 children that wait forever; the 4th process in the cgroup must fail.
        let mut refused = 0;
        for _ in 0..10 {
            // SAFETY: raw fork; the grandchild only pauses.
            match unsafe { libc::fork() } {
                0 => loop {
                    // SAFETY: pause has no preconditions.
                    unsafe { libc::pause() };
                },
                -1 => refused += 1,
                _ => {}
            }
        }
        // 4 processes allowed: this one + 3 children.
        if refused == 7 {
            0
        } else {
            10 + refused
        }
    });
    cg.attach(pid).unwrap();
    release(go);
    let status = wait(pid);
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0, "10 + forks refused");
    // The 3 orphaned grandchildren are still in the cgroup; kill() ends them.
    assert_eq!(cg.usage().pids_current, Some(3));
    cg.kill().unwrap();
    assert_pids_drain(&cg);
    cg.remove().unwrap();
}

#[test]
fn real_kill_ends_a_process_tree() {
    let Some(_) = real_host("kill") else { return };
    let _g = REAL.lock().unwrap_or_else(|p| p.into_inner());
    let setup = prepare(&limits(None, Some(0.5), Some(64)), true).unwrap();
    let cg = setup.cgroup.unwrap();
    let (pid, go) = fork_held(|| {
        // 3 children, each with a child of its own, in new sessions (a daemon's escape),
        // all ignoring SIGTERM.
        for _ in 0..3 {
            // SAFETY: raw syscalls in the forked children.
            unsafe {
                if libc::fork() == 0 {
                    libc::setsid();
                    libc::signal(libc::SIGTERM, libc::SIG_IGN);
                    libc::fork();
                    loop {
                        libc::pause();
                    }
                }
            }
        }
        loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        }
    });
    cg.attach(pid).unwrap();
    release(go);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cg.usage().pids_current != Some(7) {
        assert!(Instant::now() < deadline, "tree never reached 7 processes");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    cg.kill().unwrap();
    let killed_in = t.elapsed();
    let status = wait(pid);
    assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL);
    assert_pids_drain(&cg);
    let dirs = all_dirs(&cg);
    cg.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    println!("kill of a 7-process tree: {killed_in:?}");
}

/// Launch-path costs: prepare (memory + cpus + pids), attach after an idle second and
/// back-to-back, remove. `cargo test -p sandbox-core measure_cgroup_costs -- --ignored --nocapture`
#[test]
#[ignore = "measurement: sleeps for seconds"]
fn measure_cgroup_costs() {
    let Some(layout) = real_host("measure") else {
        return;
    };
    let _g = REAL.lock().unwrap_or_else(|p| p.into_inner());
    println!("layout: {}", layout.version());
    let lim = limits(Some(256 * MIB), Some(1.0), Some(128));
    let lim_pids = limits(None, None, Some(128));
    for (label, lim) in [("memory+cpus+pids", &lim), ("pids only", &lim_pids)] {
        for idle in [false, true] {
            let mut prep = Vec::new();
            let mut att = Vec::new();
            let mut rm = Vec::new();
            for _ in 0..5 {
                if idle {
                    std::thread::sleep(Duration::from_millis(1100));
                }
                let t = Instant::now();
                let setup = prepare(lim, true).unwrap();
                prep.push(t.elapsed());
                let cg = setup.cgroup.unwrap();
                let (pid, go) = fork_held(|| 0);
                let t = Instant::now();
                cg.attach(pid).unwrap();
                att.push(t.elapsed());
                release(go);
                wait(pid);
                let t = Instant::now();
                cg.remove().unwrap();
                rm.push(t.elapsed());
            }
            println!(
                "{label}, {}: prepare {prep:?}\n  attach {att:?}\n  remove {rm:?}",
                if idle {
                    "after 1.1 s idle"
                } else {
                    "back-to-back"
                }
            );
        }
    }
}

/// The real tree seen by an ordinary user: refused, naming why and the fix.
#[test]
fn real_tree_refuses_an_ordinary_user() {
    let self_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap();
    let uid = if euid() == 0 { 54321 } else { euid() };
    let layout = decide(&Host {
        root: Path::new(ROOT),
        self_cgroup: &self_cgroup,
        euid: uid,
        egid: uid,
    });
    match &layout {
        Layout::Unusable {
            why: Unusable::V1NotRoot { euid },
            ..
        } => assert_eq!(*euid, uid),
        Layout::Unusable {
            why: Unusable::V2NotDelegated { .. },
            ..
        } => {}
        Layout::Unusable { why, .. } => {
            println!("skipped: cgroups: {why}");
            return;
        }
        // A delegated v2 subtree (the VM's user run): usable, as it should be.
        Layout::V2(_) if euid() != 0 => return,
        other => panic!("uid {uid} should be refused: {other:?}"),
    }
    let err = prepare_with(
        &layout,
        &Mutex::new(None),
        &limits(Some(64 * MIB), None, None),
        1,
        true,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("hint: "), "{err}");
    assert!(
        err.to_string()
            .contains("systemd-run --user --scope -p Delegate=yes"),
        "{err}"
    );
}

#[test]
fn stale_owner_parses_only_launch_cgroups() {
    assert_eq!(super::stale_owner("sandbox-1234-0"), Some(1234));
    assert_eq!(super::stale_owner("sandbox-77-12"), Some(77));
    assert_eq!(super::stale_owner("sandbox-1-0"), None);
    assert_eq!(super::stale_owner("sandbox-x-0"), None);
    assert_eq!(super::stale_owner("sandbox-12"), None);
    assert_eq!(super::stale_owner("supervisor"), None);
    assert_eq!(super::stale_owner("sandbox-12-a"), None);
}

#[test]
fn v2_failed_enable_moves_the_supervisor_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fake_v2(root, "cpu memory pids");
    let own = root.join("user.slice/app.scope");
    // Enabling the controller fails (EISDIR here; EBUSY on a shared cgroup).
    fs::remove_file(own.join("cgroup.subtree_control")).unwrap();
    fs::create_dir(own.join("cgroup.subtree_control")).unwrap();
    let uid = delegate_to_user(&own);
    let layout = decide(&Host {
        root,
        self_cgroup: "0::/user.slice/app.scope\n",
        euid: uid,
        egid: uid,
    });
    let state = Mutex::new(None);
    let err = prepare_with(
        &layout,
        &state,
        &limits(Some(64 * MIB), None, None),
        4242,
        true,
    )
    .err()
    .unwrap();
    assert!(matches!(err, CgroupError::Read { .. }), "{err:?}");
    assert_eq!(read(&own.join("cgroup.procs")), "4242", "moved back");
    assert!(
        state.lock().unwrap().is_none(),
        "the next launch starts over"
    );
}

/// This host's v1 tree has `cpu` and `cpuacct` as hierarchies of their own: a launch with a
/// pid namespace (pid 1 reaps and accounts everything) joins neither `cpuacct` nor `freezer`.
#[test]
fn v1_joins_cpuacct_and_freezer_only_without_a_pid_namespace() {
    for no_pid_namespace in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for h in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
            touch(&root.join(h).join("cgroup.procs"), "");
        }
        let layout = decide(&Host {
            root,
            self_cgroup: "5:pids:/\n4:freezer:/\n3:memory:/\n2:cpuacct:/\n1:cpu:/\n0::/\n",
            euid: 0,
            egid: 0,
        });
        let state = Mutex::new(None);
        let lim = limits(Some(32 * MIB), Some(0.5), Some(16));
        let setup = prepare_with(&layout, &state, &lim, 7, no_pid_namespace).unwrap();
        let cg = setup.cgroup.unwrap();
        let name = cg.path().file_name().unwrap().to_owned();
        for h in ["memory", "pids", "cpu"] {
            assert!(root.join(h).join(&name).is_dir(), "{h}");
        }
        for h in ["cpuacct", "freezer"] {
            let joined = root.join(h).join(&name).is_dir();
            assert_eq!(
                joined, no_pid_namespace,
                "{h} (no_pid_namespace {no_pid_namespace})"
            );
        }
        cg.remove().unwrap();
    }
}

#[test]
fn usage_files_read_through_open_files_or_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    touch(
        &d.join("cpu.stat"),
        "usage_usec 900\nuser_usec 600\nsystem_usec 300\nnr_periods x\n",
    );
    touch(&d.join("pids.peak"), "5\n");
    let mut files = fsio::UsageFiles::default();
    files.open(d, &["cpu.stat", "pids.peak", "memory.peak"]);
    // Opened files are read afresh from the start, as cgroupfs generates them per read.
    touch(&d.join("pids.peak"), "7\n");
    assert_eq!(files.u64(d, "pids.peak"), Some(7));
    assert_eq!(
        files.keys(
            d,
            "cpu.stat",
            ["system_usec", "user_usec", "missing", "nr_periods"]
        ),
        [Some(300), Some(600), None, None]
    );
    // Missing when the files were opened: read by path once it exists.
    assert_eq!(files.u64(d, "memory.peak"), None);
    touch(&d.join("memory.peak"), "1234\n");
    assert_eq!(files.u64(d, "memory.peak"), Some(1234));
    // Longer than one read chunk.
    let long: String = (0..100).map(|i| format!("key{i} {i}\n")).collect();
    touch(&d.join("memory.stat"), &long);
    let mut more = fsio::UsageFiles::default();
    more.open(d, &["memory.stat"]);
    assert_eq!(
        more.keys(d, "memory.stat", ["key0", "key99"]),
        [Some(0), Some(99)]
    );
}
