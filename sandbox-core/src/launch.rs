//! The launch sequence of DESIGN.md, one line per stage, each a call into its layer.
//!
//! Privilege at each phase boundary:
//! - parent (the caller, unprivileged or root on the host): resolves, compiles, creates the
//!   cgroup, clones, writes the id maps, attaches the cgroup, releases the child;
//! - child = pid 1 of the sandbox: every capability inside its own user namespace, none on the
//!   host; clones the command at once, then creates the network namespace, hostname and
//!   loopback while the command builds the mounts (two CPUs, two jobs, when a CPU is idle:
//!   `CpuSpread`), gives up its ids,
//!   capabilities and new privileges before the command may exec, and stays as init;
//! - command before exec (sharing pid 1's memory until then, inheriting its capabilities in
//!   the user namespace): builds the mounts and `pivot_root`s, sets no_new_privs, restricts
//!   itself with Landlock, joins pid 1's network namespace, switches to the policy's uid/gid,
//!   drops every capability, waits until pid 1 is done, installs seccomp last, and execs.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::capabilities::{self, CapabilityPlan};
use crate::cgroup::{self, CgroupSetup};
use crate::error::{Error, Result};
use crate::landlock::{self, ChildAccess, LandlockInput, LandlockPlan};
use crate::limits;
use crate::mounts::{self, MountPlan};
use crate::namespaces::{self, IdMapping};
use crate::plan::LayerStatus;
use crate::policy::{Isolation, NetworkMode, ResolvedPolicy};
use crate::seccomp::{self, SeccompPlan};
use crate::trace::stamp;
use crate::{init, network, sys};

/// The child-side stages, reported to the parent as `{stage, index, errno}` on failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Stdio = 1,
    Sync,
    Session,
    Groups,
    Mount,
    Hostname,
    NetNamespace,
    Loopback,
    Fork,
    Affinity,
    Ids,
    Rlimits,
    Capabilities,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Chdir,
    Exec,
}

impl Stage {
    const ALL: [Stage; 18] = [
        Stage::Stdio,
        Stage::Sync,
        Stage::Session,
        Stage::Groups,
        Stage::Mount,
        Stage::Hostname,
        Stage::NetNamespace,
        Stage::Loopback,
        Stage::Fork,
        Stage::Affinity,
        Stage::Ids,
        Stage::Rlimits,
        Stage::Capabilities,
        Stage::NoNewPrivs,
        Stage::Landlock,
        Stage::Seccomp,
        Stage::Chdir,
        Stage::Exec,
    ];

    fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.iter().copied().find(|s| *s as u32 == v)
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Stdio => "setting up stdio",
            Stage::Sync => "waiting for the parent",
            Stage::Session => "setsid",
            Stage::Groups => "dropping supplementary groups",
            Stage::Mount => "mount",
            Stage::Hostname => "sethostname",
            Stage::NetNamespace => "creating the network namespace",
            Stage::Loopback => "bringing up loopback",
            Stage::Fork => "forking the command",
            Stage::Affinity => "restoring the CPU affinity",
            Stage::Ids => "switching uid/gid",
            Stage::Rlimits => "setting rlimits",
            Stage::Capabilities => "dropping capabilities",
            Stage::NoNewPrivs => "no_new_privs",
            Stage::Landlock => "landlock restrict_self",
            Stage::Seccomp => "installing the seccomp filter",
            Stage::Chdir => "changing to the working directory",
            Stage::Exec => "execve",
        }
    }
}

/// The fixed-size record the child writes on failure.
const RECORD_LEN: usize = 12;

fn record(stage: Stage, index: u32, errno: Errno) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[0..4].copy_from_slice(&(stage as u32).to_ne_bytes());
    r[4..8].copy_from_slice(&index.to_ne_bytes());
    r[8..12].copy_from_slice(&(errno as i32).to_ne_bytes());
    r
}

/// Where each of the command's standard streams comes from, as fds owned by the parent.
pub(crate) struct StdioFds {
    pub(crate) fds: [Option<OwnedFd>; 3],
}

/// Everything the child needs, compiled in the parent. Nothing here allocates when used.
pub(crate) struct Plan {
    isolation: Isolation,
    ns_flags: u64,
    ids: IdMapping,
    mounts: Option<MountPlan>,
    hostname: CString,
    /// pid 1 creates the network namespace itself (not `clone3`), in parallel with the mounts.
    new_netns: bool,
    loopback: bool,
    /// The stack of the command until it execs (it shares pid 1's memory meanwhile).
    child_stack: Option<sys::ChildStack>,
    capabilities: CapabilityPlan,
    landlock: LandlockPlan,
    seccomp: SeccompPlan,
    cwd: CString,
    program: OsString,
    /// execve candidates: the program itself if it contains a `/`, else each `$PATH` entry.
    exec_candidates: Vec<CString>,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// The layers' status, for the report.
    pub(crate) layers: Vec<(&'static str, LayerStatus)>,
    pub(crate) cgroup: CgroupSetup,
    /// Landlock mode: the private temporary directory to remove when the sandbox ends.
    pub(crate) private_tmp: Option<PathBuf>,
    /// stdin is the command's own pseudo-terminal: make it the session's controlling terminal.
    pub(crate) controlling_terminal: bool,
}

/// A launched plan, kept until its sandbox's handle goes: pid 1 starts as a copy of this
/// process, so every page the plan's frees would write while pid 1 lives gets copied first
/// (~2 µs each, a dozen or more per launch).
pub(crate) struct RetainedPlan(#[allow(dead_code)] Plan);

// SAFETY: the plan's raw pointers (argv/envp) point into its own strings and are never
// dereferenced again once the launch is over; nothing in it is shared.
unsafe impl Send for RetainedPlan {}
// SAFETY: as above; there is no interior mutability.
unsafe impl Sync for RetainedPlan {}

impl RetainedPlan {
    pub(crate) fn new(plan: Plan) -> RetainedPlan {
        RetainedPlan(plan)
    }
}

impl std::fmt::Debug for RetainedPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetainedPlan")
    }
}

fn cstr(what: &str, s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::NulByte { what: what.into() })
}

/// What the command asks for on top of the policy.
pub(crate) struct CommandSpec<'a> {
    pub(crate) program: &'a OsStr,
    pub(crate) args: &'a [OsString],
    pub(crate) env: &'a [(OsString, OsString)],
    pub(crate) cwd: Option<&'a Path>,
    /// The host path of the command's own pseudo-terminal, if it gets one.
    pub(crate) console: Option<&'a Path>,
}

/// The scrubbed environment: PATH, HOME, TERM, LANG, LC_* from the caller, then the policy's
/// pass-through and set lists, then the command's own `env()` calls.
fn environment(policy: &ResolvedPolicy, spec: &CommandSpec) -> Vec<(OsString, OsString)> {
    fn set(env: &mut Vec<(OsString, OsString)>, k: OsString, v: OsString) {
        env.retain(|(ek, _)| ek != &k);
        env.push((k, v));
    }
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    for (k, v) in std::env::vars_os() {
        let name = k.as_bytes();
        let kept = matches!(name, b"PATH" | b"HOME" | b"TERM" | b"LANG")
            || name.starts_with(b"LC_")
            || policy.process.env_pass.iter().any(|p| p.as_bytes() == name);
        if kept {
            set(&mut env, k, v);
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        set(
            &mut env,
            "PATH".into(),
            "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".into(),
        );
    }
    for (k, v) in &policy.process.env_set {
        set(&mut env, k.into(), v.into());
    }
    for (k, v) in spec.env {
        set(&mut env, k.clone(), v.clone());
    }
    env
}

/// The paths execve will try, like execvp: a name with a `/` as is, else each PATH entry.
fn exec_candidates(program: &OsStr, env: &[(OsString, OsString)]) -> Result<Vec<CString>> {
    if program.as_bytes().contains(&b'/') || program.is_empty() {
        return Ok(vec![cstr("program", program)?]);
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(program.as_bytes());
        out.push(cstr("program", OsStr::from_bytes(&full))?);
    }
    Ok(out)
}

/// Parent, steps 3–4: compile everything the child will need; with `create_cgroup`, also
/// create the cgroup and write its limits (so the child never runs unlimited).
pub(crate) fn compile(
    policy: &ResolvedPolicy,
    spec: &CommandSpec,
    create_cgroup: bool,
) -> Result<Plan> {
    stamp("compile");
    let _canonical = sys::CanonicalCache::start();
    let (ns_flags, ids) = namespaces::prepare(policy);
    let namespaced = policy.isolation == Isolation::Namespaces;
    refuse_grants_inside_denials(policy)?;
    let mounts = if namespaced {
        Some(mounts::prepare(policy, spec.console)?)
    } else {
        None
    };

    stamp("compiled-mountplan");
    if namespaced {
        refuse_carves_under_tmpfs(policy)?;
    }
    let mut child_paths: Vec<(PathBuf, ChildAccess)> = Vec::new();
    if let Some(m) = &mounts {
        // ReadDir on the new root lets `ls /` work, but a Landlock rule covers everything
        // beneath it: with a write-only drop box anywhere, the root stays unlisted instead.
        if policy.filesystem.write_only.is_empty() {
            child_paths.push(("/".into(), ChildAccess::RootDir));
        }
        child_paths.push(("/proc".into(), ChildAccess::Proc));
        child_paths.push(("/dev".into(), ChildAccess::Dev));
        child_paths.push(("/dev/pts".into(), ChildAccess::Dev));
        for t in &m.tmpfs_paths {
            child_paths.push((t.clone(), ChildAccess::ReadWrite));
        }
    }
    // Without namespaces the command sees the host's /proc and /dev: Landlock opens only
    // procfs (read) and the harmless device nodes; /tmp becomes a private directory (TMPDIR).
    let mut extra_read_write = Vec::new();
    let mut private_tmp = None;
    if !namespaced {
        child_paths.push(("/proc".into(), ChildAccess::Proc));
        for dev in [
            "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts",
        ] {
            let p = Path::new("/dev").join(dev);
            // A rule on a file may only carry file rights: `pts` is a directory, the rest
            // are device nodes (`ptmx` may be a link to one).
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => child_paths.push((p, ChildAccess::Dev)),
                Ok(_) => child_paths.push((p, ChildAccess::DevNode)),
                Err(_) => {}
            }
        }
        if !policy.filesystem.tmpfs.is_empty() && create_cgroup {
            let dir = private_tmp_dir(ids.inside_uid, ids.inside_gid)?;
            extra_read_write.push(dir.clone());
            private_tmp = Some(dir);
        }
    }
    stamp("compiled-mounts");
    let (landlock, landlock_status) = landlock::prepare(&LandlockInput {
        policy,
        child_paths: &child_paths,
        extra_read_write: &extra_read_write,
    })?;
    stamp("compiled-landlock");
    // ptrace stays usable by debuggers where something else confines it to the sandbox.
    let ptrace_confined = namespaced
        || !matches!(
            landlock_status,
            LayerStatus::Unavailable(_) | LayerStatus::Disabled
        );
    let seccomp = seccomp::prepare(
        &policy.seccomp,
        &policy.network,
        policy.isolation,
        ptrace_confined,
    )?;
    stamp("compiled-seccomp");
    let capabilities =
        capabilities::prepare(&policy.process.capabilities).map_err(Error::Capability)?;
    // Made here, on the way to the clone. (A thread that made it while the plan compiled
    // cost more than it hid: bench/README.md, item 33.) Stale cgroups are swept once the
    // command runs (`Command::spawn`).
    let cgroup = if create_cgroup {
        cgroup::prepare(&policy.limits, !namespaced)?
    } else {
        cgroup::check(&policy.limits)?
    };

    stamp("compiled-caps-cgroup");
    let cwd = spec.cwd.unwrap_or(&policy.process.cwd);
    let mut env = environment(policy, spec);
    if let Some(dir) = &private_tmp {
        env.retain(|(k, _)| k != "TMPDIR");
        env.push(("TMPDIR".into(), dir.clone().into_os_string()));
    }
    let exec_candidates = exec_candidates(spec.program, &env)?;

    let argv: Vec<CString> = std::iter::once(spec.program)
        .chain(spec.args.iter().map(OsString::as_os_str))
        .map(|a| cstr("argument", a))
        .collect::<Result<_>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr("environment variable", OsStr::from_bytes(&kv))
        })
        .collect::<Result<_>>()?;
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let layers = vec![
        (
            "namespaces",
            if namespaced {
                LayerStatus::Enforced
            } else {
                LayerStatus::Disabled
            },
        ),
        ("landlock", landlock_status),
        ("seccomp", seccomp::status(&seccomp)),
    ];
    Ok(Plan {
        isolation: policy.isolation,
        ns_flags,
        ids,
        mounts,
        hostname: cstr("hostname", OsStr::new(&policy.process.hostname))?,
        new_netns: ns_flags & libc::CLONE_NEWNET as u64 != 0,
        loopback: namespaced && policy.network.mode == NetworkMode::None,
        child_stack: if namespaced {
            Some(
                sys::ChildStack::new(CHILD_STACK_SIZE)
                    .map_err(Error::launch("allocating the child stack"))?,
            )
        } else {
            None
        },
        capabilities,
        landlock,
        seccomp,
        cwd: cstr("working directory", cwd.as_os_str())?,
        program: spec.program.to_os_string(),
        exec_candidates,
        argv_ptrs: ptrs(&argv),
        _argv: argv,
        envp_ptrs: ptrs(&envp),
        _envp: envp,
        layers,
        cgroup,
        private_tmp,
        controlling_terminal: false,
    })
}

/// A grant inside a denied directory is refused: the mount plan's mask hides the whole
/// directory while Landlock alone would grant the inner path, so the two isolation modes
/// would disagree about it. Compared by real paths, so a link does not hide the nesting.
fn refuse_grants_inside_denials(policy: &ResolvedPolicy) -> Result<()> {
    let fs = &policy.filesystem;
    let denied: Vec<PathBuf> = fs
        .deny
        .iter()
        .filter_map(|d| sys::canonicalize(d).ok())
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let grants = [
        ("filesystem.read_only", &fs.read_only),
        ("filesystem.read_write", &fs.read_write),
        ("filesystem.write_only", &fs.write_only),
    ];
    for (key, rules) in grants {
        for rule in rules.iter() {
            let Ok(real) = sys::canonicalize(&rule.path) else {
                continue;
            };
            if let Some(dir) = denied.iter().find(|d| sys::is_strictly_within(&real, d)) {
                return Err(Error::Path {
                    key,
                    path: rule.path.clone(),
                    reason: format!(
                        "is inside the denied {}: a denied directory hides everything beneath it; drop the grant or narrow the denial",
                        dir.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Fail closed where Landlock cannot do what the policy asks: a rule on a fresh tmpfs (the
/// sandbox's `/tmp`) grants everything beneath it, host directories bound there included, and
/// Landlock has no way to subtract. So a `write_only` drop box, or a missing `deny` path inside
/// a shared directory, beneath a tmpfs would silently be readable / creatable.
fn refuse_carves_under_tmpfs(policy: &ResolvedPolicy) -> Result<()> {
    let fs = &policy.filesystem;
    let binds: Vec<&Path> = fs
        .read_only
        .iter()
        .chain(&fs.read_write)
        .chain(&fs.write_only)
        .map(|r| r.path.as_path())
        .collect();
    let refuse = |key: &'static str, path: &Path, what: &str| -> Result<()> {
        for t in &fs.tmpfs {
            let host_backed = binds
                .iter()
                .any(|b| sys::is_strictly_within(b, t) && sys::is_within(path, b));
            if sys::is_strictly_within(path, t) && host_backed {
                return Err(Error::Path {
                    key,
                    path: path.to_path_buf(),
                    reason: format!(
                        "{what} beneath the tmpfs {}: Landlock's rule on that tmpfs covers every directory bound beneath it, so this cannot be enforced there; move the shared directory out of {}, or drop {} from filesystem.tmpfs",
                        t.display(),
                        t.display(),
                        t.display()
                    ),
                });
            }
        }
        Ok(())
    };
    for w in &fs.write_only {
        refuse("filesystem.write_only", &w.path, "a write-only drop box")?;
    }
    for d in &fs.deny {
        // Only a path beneath a tmpfs can be refused: stat just those.
        let beneath_tmpfs = fs.tmpfs.iter().any(|t| sys::is_strictly_within(d, t));
        if beneath_tmpfs && std::fs::symlink_metadata(d).is_err() {
            refuse(
                "filesystem.deny",
                d,
                "a denied path that does not exist yet (Landlock must refuse its creation)",
            )?;
        }
    }
    Ok(())
}

/// Landlock mode's stand-in for a fresh /tmp: a new mode-0700 directory owned by the caller
/// (or, for a root caller, by the id the command runs as), removed when the sandbox ends.
fn private_tmp_dir(uid: u32, gid: u32) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = std::env::temp_dir();
    sweep_stale_private_tmp(&base);
    let mut tries = 0;
    let dir = loop {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = base.join(format!("sandbox-tmp-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => break dir,
            // Left by an earlier process that had our pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(source) => {
                return Err(Error::Path {
                    key: "filesystem.tmpfs",
                    path: dir,
                    reason: format!("cannot create the private temporary directory: {source}"),
                })
            }
        }
    };
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        let _ = std::os::unix::fs::chown(&dir, Some(uid), Some(gid));
    }
    Ok(dir)
}

/// Remove, once per process, the private temporary directories of sandboxes whose supervisor
/// died without cleaning up (SIGKILL): `sandbox-tmp-<pid>-<n>` in `base` whose `<pid>` is gone,
/// owned by us (or, for root, by nobody, the id a root caller's command runs as by default).
fn sweep_stale_private_tmp(base: &Path) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::Relaxed) {
        sweep_private_tmp(base);
    }
}

/// The sweep itself (see [`sweep_stale_private_tmp`]).
fn sweep_private_tmp(base: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let Some(pid) = stale_tmp_owner(&entry.file_name().to_string_lossy()) else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let ours = meta.uid() == me || (me == 0 && meta.uid() == namespaces::NOBODY);
        if meta.is_dir() && ours && sys::pid_is_gone(pid) {
            // std's remove_dir_all does not follow symlinks planted inside.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The supervisor pid in a private temporary directory's name `sandbox-tmp-<pid>-<n>`.
fn stale_tmp_owner(name: &str) -> Option<u32> {
    sys::owner_pid(name, "sandbox-tmp-")
}

/// What `spawn` hands to the supervisor.
pub(crate) struct Spawned {
    pub(crate) pid: libc::pid_t,
    pub(crate) pidfd: Option<OwnedFd>,
    /// Read end of the status pipe: pid 1 writes the command's wait status here.
    pub(crate) status: Option<OwnedFd>,
}

/// Move an fd above 2 so dup2 onto 0..2 in the child can never clobber it.
fn high(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new owned fd.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(Error::launch("duplicating a pipe")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: new is a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// The fds the child uses, by number (all above 2).
#[derive(Clone, Copy)]
struct ChildFds {
    stdio: [RawFd; 3],
    sync_read: RawFd,
    error_write: RawFd,
    status_write: RawFd,
}

/// Parent, steps 4–7: clone, maps, cgroup, release, wait for exec.
pub(crate) fn spawn(plan: &Plan, stdio: StdioFds) -> Result<Spawned> {
    let (sync_r, sync_w) = sys::pipe().map_err(Error::launch("creating the sync pipe"))?;
    let (err_r, err_w) = sys::pipe().map_err(Error::launch("creating the error pipe"))?;
    let (status_r, status_w) = sys::pipe().map_err(Error::launch("creating the status pipe"))?;
    let (sync_r, err_w, status_w) = (high(sync_r)?, high(err_w)?, high(status_w)?);
    let stdio_fds: Vec<Option<OwnedFd>> = stdio
        .fds
        .into_iter()
        .map(|f| f.map(high).transpose())
        .collect::<Result<_>>()?;
    let raw = |i: usize| stdio_fds[i].as_ref().map_or(-1, |f| f.as_raw_fd());
    let fds = ChildFds {
        stdio: [raw(0), raw(1), raw(2)],
        sync_read: sync_r.as_raw_fd(),
        error_write: err_w.as_raw_fd(),
        status_write: status_w.as_raw_fd(),
    };
    let cgroup_fd = plan
        .cgroup
        .cgroup
        .as_ref()
        .and_then(|c| c.clone_into_fd())
        .map(|fd| fd.as_raw_fd());

    // Step 5: clone into the new namespaces (and straight into the cgroup on v2).
    stamp("clone");
    // SAFETY: the child runs only `child_main`, which is async-signal-safe and never returns.
    let clone_flags = plan.ns_flags & !(libc::CLONE_NEWNET as u64);
    let forked = unsafe { sys::clone_fork(clone_flags, true, cgroup_fd) };
    let (pid, pidfd) = match forked {
        Ok(sys::Forked::Child) => {
            // SAFETY: we are the freshly cloned child.
            unsafe { child_main(plan, fds) }
        }
        Ok(sys::Forked::Parent { pid, pidfd }) => (pid, pidfd),
        Err(e)
            if plan.ns_flags & libc::CLONE_NEWUSER as u64 != 0
                && matches!(
                    e,
                    Errno::EPERM | Errno::ENOSPC | Errno::EINVAL | Errno::EACCES
                ) =>
        {
            return Err(Error::Unsupported {
                feature: "user namespaces",
                why: format!("{} ({e})", namespaces::userns_unavailable_reason()),
                hint: "run with `--isolation landlock` (Landlock + seccomp, no namespaces), or allow unprivileged user namespaces on this host".into(),
            });
        }
        Err(e) => return Err(Error::launch("clone")(e.into())),
    };
    stamp("cloned");
    // SAFETY: the pidfd returned by clone3 is ours.
    let pidfd = pidfd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    drop((sync_r, err_w, status_w, stdio_fds));

    let abort = |e: Error| -> Error {
        // SAFETY: kill/waitpid on our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        e
    };
    // Step 6: id maps, then the cgroup (v1, or v2 without clone3).
    if plan.ns_flags & libc::CLONE_NEWUSER as u64 != 0 {
        namespaces::write_id_maps(pid, &plan.ids).map_err(abort)?;
    }
    if let Some(cg) = &plan.cgroup.cgroup {
        if cgroup_fd.is_none() {
            cg.attach(pid).map_err(|e| abort(e.into()))?;
            stamp("cgroup-attached");
        }
    }
    // Step 7: release the child and wait for execve (EOF on the CLOEXEC error pipe).
    stamp("maps-written");
    sys::write_all(sync_w.as_raw_fd(), b"x")
        .map_err(|e| abort(Error::launch("releasing the sandbox")(e.into())))?;
    drop(sync_w);
    let mut buf = [0u8; RECORD_LEN];
    let n = sys::read_full(err_r.as_raw_fd(), &mut buf)
        .map_err(|e| abort(Error::launch("reading the error pipe")(e.into())))?;
    stamp("exec-seen");
    if n == RECORD_LEN {
        let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
        let index = u32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let errno = i32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        return Err(abort(child_error(plan, stage, index, errno)));
    }
    Ok(Spawned {
        pid,
        pidfd,
        status: Some(status_r),
    })
}

/// Turn the child's `{stage, index, errno}` into an [`Error`] that names the step.
fn child_error(plan: &Plan, stage: u32, index: u32, errno: i32) -> Error {
    let source = std::io::Error::from_raw_os_error(errno);
    let program = plan.program.to_string_lossy().into_owned();
    match Stage::from_u32(stage) {
        Some(Stage::Exec) if errno == libc::ENOENT => Error::NotFound { program },
        Some(Stage::Exec) => Error::NotExecutable { program, source },
        Some(Stage::Mount) => {
            let path = plan
                .mounts
                .as_ref()
                .map(|m| m.describe(index as usize))
                .unwrap_or_default();
            let shared = plan.mounts.as_ref().is_some_and(|m| {
                matches!(
                    m.ops.get(index as usize),
                    Some(mounts::MountOp::Share { .. })
                )
            });
            let reason = if shared && errno == libc::ESTALE {
                "changed while the sandbox was being set up (replaced, or a component swapped for a link): it is not shared".to_owned()
            } else {
                format!("cannot be mounted in the sandbox (step {index}): {source}")
            };
            Error::Path {
                key: "filesystem",
                path,
                reason,
            }
        }
        Some(Stage::Chdir) => Error::Path {
            key: "process.cwd",
            path: PathBuf::from(OsStr::from_bytes(plan.cwd.as_bytes())),
            reason: format!("is not usable inside the sandbox: {source}"),
        },
        Some(s) => Error::Setup {
            stage: s.name(),
            source,
        },
        None => Error::Setup {
            stage: "unknown stage",
            source,
        },
    }
}

/// Report `{stage, index, errno}` to the parent and exit.
fn fail(fd: RawFd, stage: Stage, index: u32, errno: Errno) -> ! {
    let _ = sys::write_all(fd, &record(stage, index, errno));
    sys::exit(if stage == Stage::Exec {
        if errno == Errno::ENOENT {
            127
        } else {
            126
        }
    } else {
        125
    })
}

/// Close every fd above 2 except those in `keep` (at most a handful, any order).
fn close_fds_except(keep: &[RawFd]) {
    let mut sorted = [i32::MAX; 4];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    sorted[..n].sort_unstable();
    let mut first = 3;
    for &k in &sorted[..n] {
        if k > first {
            // SAFETY: close_range on integers.
            unsafe { libc::syscall(libc::SYS_close_range, first as u32, (k - 1) as u32, 0) };
        }
        first = first.max(k + 1);
    }
    let _ = sys::close_range(first as u32, 0);
}

/// Become the command's uid/gid inside the user namespace.
///
/// # Safety
/// Child only: raw syscalls.
fn switch_ids(plan: &Plan, err: RawFd) {
    if let Err(e) = sys::setresgid(plan.ids.inside_gid) {
        fail(err, Stage::Ids, 0, e);
    }
    if let Err(e) = sys::setresuid(plan.ids.inside_uid) {
        fail(err, Stage::Ids, 1, e);
    }
}

/// Whether the caller has exited: its read end of the error pipe is then closed, which poll
/// reports as POLLERR on our write end.
fn caller_gone(error_write: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: error_write,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd, no timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// Child steps 1–6 (pid 1 of the sandbox in namespaces mode; the command itself in landlock
/// mode, which has no pid namespace to be init of).
///
/// # Safety
/// Called once, in the freshly cloned child. Async-signal-safe only (`CommandExt::pre_exec`
/// contract): raw syscalls on the prepared plan, no allocation, no locks, no panics.
unsafe fn child_main(plan: &Plan, fds: ChildFds) -> ! {
    let err = fds.error_write;
    // SAFETY: raw syscalls on integers and the plan's C strings throughout.
    unsafe {
        stamp("pid1-start");
        // 1. Die with the caller; the sync read below returns EOF if it is already gone.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        for (target, fd) in fds.stdio.iter().enumerate() {
            if *fd >= 0 && libc::dup2(*fd, target as RawFd) < 0 {
                fail(err, Stage::Stdio, target as u32, Errno::last());
            }
        }
        // While the parent writes the id maps: work the command would otherwise do on the
        // critical path, inherited by every process cloned from here on.
        let bounding_dropped = plan.isolation == Isolation::Namespaces
            && capabilities::drop_bounding(&plan.capabilities);
        let mut byte = [0u8; 1];
        match sys::read_full(fds.sync_read, &mut byte) {
            Ok(1) => {}
            Ok(_) => sys::exit(125),
            Err(e) => fail(err, Stage::Sync, 0, e),
        }
        stamp("pid1-released");
        // 2. A new session: no controlling terminal, so no TIOCSTI into the caller's tty.
        if libc::setsid() < 0 {
            fail(err, Stage::Session, 0, Errno::last());
        }
        // Only ever the sandbox's own pseudo-terminal, never the caller's.
        if plan.controlling_terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
            fail(err, Stage::Session, 1, Errno::last());
        }
        if plan.isolation == Isolation::Landlock {
            init::reset_signals();
            command_main(plan, err, -1, None, false);
        }
        // A root caller's supplementary groups (root, disk, …) would still grant access.
        if !plan.ids.deny_setgroups {
            if let Err(e) = sys::clear_groups() {
                fail(err, Stage::Groups, 0, e);
            }
        }
        // An unprivileged caller becomes its mapped ids now, so files pid 1 creates on the new
        // root have a mapped owner; that id is not the namespace's root, so the kernel keeps the
        // capabilities this process holds over its namespaces. A root caller's pid 1 stays
        // (mapped) uid 0 until the command is forked (see `IdMapping::setup_as_root`).
        if !plan.ids.setup_as_root {
            switch_ids(plan, err);
        }
        // Changing credentials clears the parent-death signal: set it again, then make sure
        // the caller did not die in between (its end of the error pipe would be closed).
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if caller_gone(err) {
            sys::exit(125);
        }
        // 3–4. Two CPUs, two jobs: the command, cloned now and sharing our memory and fs root
        // (on its own stack), builds the mounts (a private tree, the new root, pivot_root) and
        // its own confinement, while pid 1 creates the network namespace (the largest kernel
        // cost of a launch). pid 1 sends the namespace to the command as an fd, which the
        // command joins before it drops its capabilities, then sets the hostname and brings lo
        // up; the command execs only after that. Until the command has exec'd, pid 1 makes
        // only errno-free syscalls (`sys::direct`): the command shares its errno.
        let Some(stack) = &plan.child_stack else {
            sys::exit(125)
        };
        // pid 1 is not dumpable: /proc/1/{exe,mem,fd} stay out of the command's reach (the
        // command shares the flag until its exec, which gives it its own).
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Every inherited fd closes at the command's exec (the Landlock ruleset fd is still
        // needed until then); pid 1 closes all but its status pipe once the command has exec'd.
        let _ = sys::close_range(3, libc::CLOSE_RANGE_CLOEXEC);
        init::block_signals();
        // `chan`: pid 1 → command: the network namespace as an fd (when there is a new one),
        // then one byte once pid 1 is done — loopback up, pid 1's own privileges given up — and
        // the command may exec (EOF instead: pid 1 failed, reported it, and ends the sandbox).
        // `execed`: EOF for pid 1 once the command has exec'd or exited (CLOEXEC write end).
        let (ours, theirs) = match sys::socketpair_raw() {
            Ok(p) => p,
            Err(e) => fail(err, Stage::Fork, 2, e),
        };
        let (execed_r, execed_w) = match sys::pipe_raw() {
            Ok(p) => p,
            Err(e) => fail(err, Stage::Fork, 1, e),
        };
        stamp("pid1-fork");
        // Only worth it when pid 1 has the network namespace to make meanwhile.
        let cpus = if plan.new_netns {
            CpuSpread::new()
        } else {
            None
        };
        let mut command_args = CommandArgs {
            plan,
            err,
            chan: theirs,
            close_in_command: [ours, execed_r],
            affinity: cpus.map(|c| c.original),
            bounding_dropped,
        };
        let command = match sys::clone_on_stack(
            libc::CLONE_VM | libc::CLONE_FS,
            stack,
            command_trampoline,
            (&mut command_args as *mut CommandArgs).cast(),
        ) {
            Ok(pid) => pid,
            Err(e) => fail(err, Stage::Fork, 0, e),
        };
        // From here until `execed` reports EOF: sys::direct only.
        if let Some(cpus) = cpus.as_ref().filter(|c| c.other_cpu_idle()) {
            cpus.move_away(command);
        }
        let _ = sys::direct::close(execed_w);
        let _ = sys::direct::close(theirs);
        let network = (|| {
            if plan.new_netns {
                let socket =
                    network::enter_new_namespace().map_err(|e| (Stage::NetNamespace, e))?;
                stamp("pid1-netns");
                let namespace =
                    network::namespace_of(socket).map_err(|e| (Stage::NetNamespace, e))?;
                sys::direct::send_fd(ours, namespace).map_err(|e| (Stage::NetNamespace, e))?;
                let _ = sys::direct::close(namespace);
                if plan.loopback {
                    network::bring_up_loopback(socket).map_err(|e| (Stage::Loopback, e))?;
                }
                let _ = sys::direct::close(socket);
            }
            sys::direct::sethostname(plan.hostname.as_bytes()).map_err(|e| (Stage::Hostname, e))
        })();
        stamp("pid1-network");
        // 5. pid 1 gives up what it no longer needs before the command may run anything: it
        // only reaps and forwards from here on. (errno-free: the command still shares it.)
        let dropped = network.and_then(|()| {
            drop_pid1_privileges(plan, bounding_dropped).map_err(|e| (Stage::Ids, e))
        });
        if let Err((stage, e)) = dropped {
            // The command must not run on without its network namespace or with a pid 1
            // that kept its privileges.
            let _ = sys::direct::kill(command, libc::SIGKILL);
            let _ = sys::direct::wait(command);
            fail(err, stage, 0, e);
        }
        let _ = sys::direct::send(ours, b"l");
        let _ = sys::direct::close(ours);
        let mut byte = [0u8; 1];
        while let Ok(1) = sys::direct::read(execed_r, &mut byte) {}
        let _ = sys::direct::close(execed_r);
        stamp("pid1-command-execed");
        // The command runs: pid 1 keeps only its status pipe and becomes init.
        close_fds_except(&[fds.status_write, crate::trace::raw_fd()]);
        init::run(command, fds.status_write)
    }
}

/// pid 1, once the network is set up: a root caller's pid 1 leaves uid 0 for the command's
/// ids (see `IdMapping::setup_as_root`), then every capability goes, no_new_privs is set and
/// the parent-death signal (cleared by the id change) is set again. errno-free throughout.
///
/// # Safety
/// Child only: raw syscalls.
unsafe fn drop_pid1_privileges(
    plan: &Plan,
    bounding_dropped: bool,
) -> std::result::Result<(), Errno> {
    let set_ids = |nr: libc::c_long, id: u32| {
        let id = id as usize;
        // SAFETY: setresuid/setresgid on integers, this thread only.
        unsafe { sys::direct::syscall4(nr, [id, id, id, 0]) }.map(drop)
    };
    // SAFETY: forwarded contract: raw syscalls on prepared data.
    unsafe {
        if plan.ids.setup_as_root {
            capabilities::keep_across_setuid()?;
            set_ids(libc::SYS_setresgid, plan.ids.inside_gid)?;
            set_ids(libc::SYS_setresuid, plan.ids.inside_uid)?;
        }
        capabilities::apply(&plan.capabilities, bounding_dropped)?;
        let prctl = |option: libc::c_int, arg: libc::c_int| {
            sys::direct::syscall6(libc::SYS_prctl, [option as usize, arg as usize, 0, 0, 0, 0])
        };
        prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
        prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL)?;
    }
    Ok(())
}

/// The stack the command runs on until it execs (it shares pid 1's memory).
const CHILD_STACK_SIZE: usize = 256 * 1024;

/// What pid 1 hands to the command it clones onto [`Plan::child_stack`].
struct CommandArgs<'a> {
    plan: &'a Plan,
    err: RawFd,
    /// The command's end of pid 1's socket pair (see `child_main`).
    chan: RawFd,
    /// pid 1's ends of the sync pipes, inherited by the clone: closed at once.
    close_in_command: [RawFd; 2],
    /// The CPU affinity to restore before exec (see [`CpuSpread`]).
    affinity: Option<libc::cpu_set_t>,
    /// pid 1 emptied the bounding set (but for kept capabilities) before the clone.
    bounding_dropped: bool,
}

/// The scheduler places a freshly cloned task next to its parent and leaves it queued there
/// while the parent keeps the CPU (for pid 1: ~0.4 ms inside `unshare(CLONE_NEWNET)`, longer
/// when a cpu cgroup is set), although the other CPU is idle. pid 1 therefore moves the
/// command off its own CPU right after the clone, and the command restores the original
/// affinity once pid 1 reports loopback up (which it does after the move, so the two cannot
/// race): the program it execs sees the caller's affinity unchanged.
///
/// Only while a CPU is idle: when every allowed CPU is busy (launches in parallel), the move
/// queues the command behind another task instead, and pid 1 and the command, which share
/// memory, then run on two CPUs and pay for cross-CPU wake-ups and TLB shootdowns; keeping
/// the launch on one CPU measured ~5% more launches per second with 2 in flight
/// (bench/README.md).
#[derive(Clone, Copy)]
struct CpuSpread {
    original: libc::cpu_set_t,
    elsewhere: libc::cpu_set_t,
}

impl CpuSpread {
    /// pid 1, errno-free, right after cloning the command: whether a CPU is likely idle for
    /// it. `/proc/loadavg`'s fourth field counts the runnable tasks of the whole host right now,
    /// pid 1 and the queued command included; on an otherwise idle host that is 2, fewer than
    /// or as many as the CPUs pid 1 may use. (Read in the parent, ~0.2 ms earlier, the count
    /// often still included the previous launch's network-namespace cleanup.) When it cannot
    /// be read, assume so.
    fn other_cpu_idle(&self) -> bool {
        let mut text = [0u8; 128];
        let read = sys::open(c"/proc/loadavg", libc::O_RDONLY | libc::O_CLOEXEC, 0).map(|fd| {
            let n = sys::direct::read(fd, &mut text);
            let _ = sys::direct::close(fd);
            n
        });
        let Ok(Ok(n)) = read else { return true };
        // SAFETY: CPU_COUNT reads a cpu_set_t.
        let allowed = unsafe { libc::CPU_COUNT(&self.original) } as usize;
        running_tasks(&text[..n]).is_none_or(|running| running <= allowed)
    }

    /// `None` when only this CPU is allowed (nothing to spread to).
    fn new() -> Option<CpuSpread> {
        // SAFETY: cpu_set_t is plain data filled by sched_getaffinity; sched_getcpu reads the vDSO.
        unsafe {
            let mut original: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut original) < 0 {
                return None;
            }
            let here = libc::sched_getcpu();
            // CPU_CLR indexes a fixed-size set: never panic in the child over a huge CPU number.
            if here < 0 || here as usize >= libc::CPU_SETSIZE as usize {
                return None;
            }
            let mut elsewhere = original;
            libc::CPU_CLR(here as usize, &mut elsewhere);
            (libc::CPU_COUNT(&elsewhere) > 0).then_some(CpuSpread {
                original,
                elsewhere,
            })
        }
    }

    /// pid 1, errno-free: let `pid` run on any allowed CPU but this one.
    fn move_away(&self, pid: libc::pid_t) {
        // SAFETY: sched_setaffinity reads the set; failures only cost the parallelism.
        let _ = unsafe {
            sys::direct::syscall4(
                libc::SYS_sched_setaffinity,
                [
                    pid as usize,
                    std::mem::size_of::<libc::cpu_set_t>(),
                    &self.elsewhere as *const libc::cpu_set_t as usize,
                    0,
                ],
            )
        };
    }
}

/// The runnable tasks in `/proc/loadavg` (`0.31 0.20 0.12 2/345 6789`: the fourth field's
/// first number).
fn running_tasks(loadavg: &[u8]) -> Option<usize> {
    let field = loadavg.split(|b| *b == b' ').nth(3)?;
    let count = field.split(|b| *b == b'/').next()?;
    std::str::from_utf8(count).ok()?.parse().ok()
}

/// The command, cloned by pid 1 sharing its memory: builds the mounts, then runs
/// [`command_main`]; never returns (execs or exits).
extern "C" fn command_trampoline(arg: *mut libc::c_void) -> libc::c_int {
    stamp("cmd-start");
    // SAFETY: pid 1 keeps CommandArgs alive until we exec or exit (it waits for `execed`);
    // the rest is the command's raw-syscall setup on the prepared plan.
    unsafe {
        let args = &*(arg as *const CommandArgs);
        for fd in args.close_in_command {
            if fd >= 0 {
                libc::close(fd);
            }
        }
        init::reset_signals();
        // 6. The mount plan: a private tree, the new root, pivot_root (while pid 1 makes the
        // network namespace).
        if let Some(m) = &args.plan.mounts {
            if let Err((i, e)) = mounts::apply(m) {
                fail(args.err, Stage::Mount, i as u32, e);
            }
        }
        stamp("cmd-mounted");
        command_main(
            args.plan,
            args.err,
            args.chan,
            args.affinity.as_ref(),
            args.bounding_dropped,
        )
    }
}

/// Command steps 7–14: no_new_privs, Landlock, the network namespace, ids, working
/// directory, rlimits, capabilities, seccomp, exec.
///
/// `chan`: in namespaces mode, the socket on which pid 1 sends the new network namespace (if
/// any) and then one byte once it is done and the command may exec; -1 otherwise.
///
/// # Safety
/// As [`child_main`].
unsafe fn command_main(
    plan: &Plan,
    err: RawFd,
    chan: RawFd,
    affinity: Option<&libc::cpu_set_t>,
    bounding_dropped: bool,
) -> ! {
    // SAFETY: raw syscalls on the plan's prepared data throughout.
    unsafe {
        // 7. no_new_privs: setuid binaries gain nothing; required by Landlock and seccomp.
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 {
            fail(err, Stage::NoNewPrivs, 0, Errno::last());
        }
        // 8. Landlock, after every mount (a restricted thread may not mount); it does not
        // restrict the setns/setresuid below. The ruleset is taken out of the plan bitwise
        // (restrict_self consumes it) and never dropped: the process execs or exits.
        let mut landlock: std::mem::ManuallyDrop<LandlockPlan> =
            std::mem::ManuallyDrop::new(std::ptr::read(&plan.landlock));
        if let Err(e) = landlock::apply(&mut landlock) {
            fail(err, Stage::Landlock, 0, e);
        }
        stamp("cmd-landlock");
        // 9. Join the network namespace pid 1 made, while CAP_SYS_ADMIN is still effective.
        if chan >= 0 && plan.new_netns {
            match sys::recv_fd(chan) {
                Ok(Some(fd)) => {
                    if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                        fail(err, Stage::NetNamespace, 2, Errno::last());
                    }
                    libc::close(fd);
                }
                // pid 1 failed and reported it; it is about to end the sandbox.
                Ok(None) => sys::exit(125),
                Err(e) => fail(err, Stage::NetNamespace, 3, e),
            }
        }
        stamp("cmd-netns");
        // 10. The policy's uid/gid (a root caller becomes nobody). KEEPCAPS: leaving uid 0
        // would otherwise empty the permitted set before step 12 can drop the bounding set
        // (which needs CAP_SETPCAP).
        let _ = capabilities::keep_across_setuid();
        if plan.isolation == Isolation::Namespaces || libc::geteuid() == 0 {
            let (uid, gid) = (plan.ids.inside_uid, plan.ids.inside_gid);
            if libc::geteuid() == 0 && plan.isolation == Isolation::Landlock {
                if let Err(e) = sys::clear_groups() {
                    fail(err, Stage::Groups, 0, e);
                }
            }
            if let Err(e) = sys::setresgid(gid) {
                fail(err, Stage::Ids, 0, e);
            }
            if let Err(e) = sys::setresuid(uid) {
                fail(err, Stage::Ids, 1, e);
            }
        }
        stamp("cmd-ids");
        // 11. The working directory, as the command's own ids and under Landlock.
        if libc::chdir(plan.cwd.as_ptr()) < 0 {
            fail(err, Stage::Chdir, 0, Errno::last());
        }
        if let Err(e) = limits::apply(&plan.cgroup.rlimits) {
            fail(err, Stage::Rlimits, 0, e);
        }
        // 12. Every capability set emptied (bounding first: it needs CAP_SETPCAP).
        if let Err(e) = capabilities::apply(&plan.capabilities, bounding_dropped) {
            fail(err, Stage::Capabilities, 0, e);
        }
        stamp("cmd-caps");
        // pid 1 must be done before the command runs: loopback up, its own privileges given
        // up. It says so after it has moved us off its CPU, so restoring the caller's affinity
        // now cannot race with that move.
        if chan >= 0 {
            let mut byte = [0u8; 1];
            if !matches!(sys::read_full(chan, &mut byte), Ok(1)) {
                sys::exit(125);
            }
        }
        if let Some(original) = affinity {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), original) < 0 {
                fail(err, Stage::Affinity, 0, Errno::last());
            }
        }
        // Every inherited fd closes at exec; the error pipe stays usable until then.
        let _ = sys::close_range(3, libc::CLOSE_RANGE_CLOEXEC);
        // 13. seccomp last, so the filter never has to allow the setup syscalls above.
        if let Err(e) = seccomp::apply(&plan.seccomp) {
            fail(err, Stage::Seccomp, 0, e);
        }
        stamp("cmd-exec");
        // 14. execve, trying each PATH candidate like execvp.
        let mut last = Errno::ENOENT;
        for candidate in &plan.exec_candidates {
            libc::execve(
                candidate.as_ptr(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            );
            let e = Errno::last();
            // Keep the most telling error: EACCES beats ENOENT from a later PATH entry.
            let missing = e == Errno::ENOENT || e == Errno::ENOTDIR;
            if !missing || (last == Errno::ENOENT && e != Errno::ENOTDIR) {
                last = e;
            }
        }
        fail(err, Stage::Exec, 0, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_private_tmp_dirs_of_dead_supervisors_go() {
        assert_eq!(stale_tmp_owner("sandbox-tmp-1234-0"), Some(1234));
        assert_eq!(stale_tmp_owner("sandbox-tmp-1234-x"), None);
        assert_eq!(stale_tmp_owner("sandbox-tmp-1-0"), None);
        assert_eq!(stale_tmp_owner("other-1234-0"), None);

        let base = tempfile::tempdir().unwrap();
        // A pid that cannot exist (above pid_max's ceiling), and our own, which is alive.
        let dead = base.path().join("sandbox-tmp-4194305-0");
        let alive = base
            .path()
            .join(format!("sandbox-tmp-{}-7", std::process::id()));
        let other = base.path().join("unrelated-4194305-0");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("f"), "x").unwrap();
        }
        sweep_private_tmp(base.path());
        assert!(!dead.exists(), "the dead supervisor's directory stays");
        assert!(
            alive.exists() && other.exists(),
            "a live or unrelated directory went"
        );
    }

    #[test]
    fn running_tasks_from_loadavg() {
        assert_eq!(running_tasks(b"0.31 0.20 0.12 2/345 6789\n"), Some(2));
        assert_eq!(running_tasks(b"0.00 0.01 0.05 1/87 42"), Some(1));
        assert_eq!(running_tasks(b"0.00 0.01 0.05"), None);
        assert_eq!(running_tasks(b"0.00 0.01 0.05 x/87 42"), None);
        assert_eq!(running_tasks(b""), None);
        // This machine's own file parses, and counts at least the reader.
        let own = std::fs::read("/proc/loadavg").unwrap();
        assert!(running_tasks(&own).is_some_and(|n| n >= 1), "{own:?}");
    }
}
