//! cgroups: memory, CPU and process limits (v2, delegated v2, v1), usage and teardown.
//!
//! Three backends, chosen by probing once per process ([`cgroup_probe`] shows the result):
//! - **cgroup v2** (`/sys/fs/cgroup` is cgroup2), as root or in a subtree delegated to an
//!   ordinary user (`systemd-run --user --scope -p Delegate=yes`): the supervisor moves into
//!   `<own>/supervisor` (the no-internal-processes rule), the controllers the launch needs are
//!   enabled in `<own>/cgroup.subtree_control` if the parent offers them, and each launch
//!   gets `<own>/sandbox-<pid>-<n>`, entered with `clone3(CLONE_INTO_CGROUP)`.
//! - **cgroup v1 / hybrid**, as root: one directory per hierarchy (`memory`, `pids`, `cpu`,
//!   plus `freezer` and `cpuacct` in landlock mode) under our own cgroup of each. The
//!   controller-less cgroup2 mount of a hybrid host (`/sys/fs/cgroup/unified`) is ignored.
//! - **none**: a policy with `memory`, `cpus` or `pids` fails with a [`CgroupError`] naming
//!   the cause and the fix, unless `[limits] best_effort = true`, which falls back to
//!   rlimits ([`crate::limits`]) and says so in the [`LimitsReport`].
//!
//! Every limit is read back after it is written; a difference is an error.
//!
//! # Why not cgroups-rs
//! This module reads and writes the cgroup files directly (std::fs + libc) instead of using
//! cgroups-rs 0.5, because of gaps measured or read in its source: a hybrid host is treated
//! as v1 only; the v2 OOM counters (`memory.events`) are not read; errors enabling v2
//! controllers are ignored and the controller list is taken from the root, not from the
//! delegated parent; the no-internal-processes rule is not handled; an absolute path
//! replaces the cgroupfs mount point; v2 assumes root. It would also add 91 crates (zbus
//! and an async runtime) and about three minutes to a clean build, for a few hundred lines.
//!
//! # Cost
//! The probe runs once (cached in a `OnceLock`), the v2 supervisor setup once per process.
//! A launch costs one `mkdir` per hierarchy and a write + read per limit: no directory walk.
//! On v1 the kernel makes the first `cgroup.procs` write after an idle second wait for an
//! RCU grace period (milliseconds); v2 avoids the move with `CLONE_INTO_CGROUP`.

// The launcher (issue 2) calls this layer; until it is wired in, the non-test build sees it unused.

mod fsio;
mod host;
mod v1;
mod v2;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use serde::Serialize;

use crate::limits::{self, RlimitPlan};
use crate::policy::Limits;
use host::{Ctrl, Ctrls, Layout};

pub use host::Unusable;

/// Where cgroupfs is mounted.
const ROOT: &str = "/sys/fs/cgroup";
/// rmdir attempts in [`Cgroup::remove`] (≈ 0.25 s in all) and in `Drop` (≈ 4 ms).
const REMOVE_TRIES: u32 = 12;
const DROP_TRIES: u32 = 4;
/// How long [`Cgroup::kill`] keeps killing before it gives up.
const KILL_DEADLINE: Duration = Duration::from_secs(2);

/// A cgroup problem.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CgroupError {
    /// The policy sets memory, cpus or pids and this host gives us no cgroups.
    #[error("cgroup limits are not available: {why}; hint: {hint}")]
    Unavailable {
        /// Why.
        why: Unusable,
        /// The fix.
        hint: &'static str,
    },
    /// A limit needs a controller the host (or the delegating parent) does not offer.
    #[error(
        "the {controller} controller is not available in cgroup {cgroup} (available: {offered}); hint: {hint}"
    )]
    MissingController {
        /// `memory`, `pids` or `cpu`.
        controller: &'static str,
        /// The cgroup (v2) or cgroupfs root (v1) that lacks it.
        cgroup: PathBuf,
        /// What is offered, space-separated (`none` when nothing).
        offered: String,
        /// The fix.
        hint: &'static str,
    },
    /// v2: moving this process into its leaf cgroup failed.
    #[error(
        "move the supervisor into {leaf} (cgroup v2 allows no processes beside child cgroups): {errno}; hint: {}",
        host::HINT_DELEGATE
    )]
    MoveSupervisor {
        /// The leaf cgroup.
        leaf: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// v2: enabling a controller for the sandbox cgroups failed.
    #[error(
        "enable the {controller} controller in {path}: {errno}; hint: EBUSY means other processes live in this cgroup: start sandbox in its own scope (systemd-run --user --scope -p Delegate=yes sandbox run …)"
    )]
    EnableController {
        /// The controller.
        controller: &'static str,
        /// The `cgroup.subtree_control` file.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// Creating a cgroup directory failed.
    #[error("create cgroup {path}: {errno}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// Opening the cgroup directory for `CLONE_INTO_CGROUP` failed.
    #[error("open cgroup {path}: {errno}")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// Writing a cgroup file failed.
    #[error("write {value:?} to {path}: {errno}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What we wrote.
        value: String,
        /// The OS error.
        errno: Errno,
    },
    /// Reading a cgroup file failed.
    #[error("read {path}: {errno}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// A limit reads back differently from what was written: it is not in force as asked.
    #[error("{path}: wrote {wrote:?} but read back {read:?}")]
    ReadBack {
        /// The file.
        path: PathBuf,
        /// What we wrote.
        wrote: String,
        /// What the kernel reports.
        read: String,
    },
    /// Moving the sandbox's first process into its cgroup failed.
    #[error("move pid {pid} into cgroup {path}: {errno}")]
    Attach {
        /// The process.
        pid: libc::pid_t,
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// Processes survived killing the cgroup.
    #[error("{remaining} processes are still in {path} after killing for {}s", KILL_DEADLINE.as_secs())]
    KillIncomplete {
        /// A `cgroup.procs` file that still lists processes.
        path: PathBuf,
        /// How many processes were left.
        remaining: usize,
    },
    /// Removing a cgroup directory failed.
    #[error("remove cgroup {path}: {errno}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        errno: Errno,
    },
    /// The memory limit is below one page.
    #[error("limits.memory = {bytes} is below one page ({page} bytes)")]
    MemoryTooSmall {
        /// The limit.
        bytes: u64,
        /// The page size.
        page: u64,
    },
    /// The CPU limit is below the smallest quota the kernel accepts.
    #[error("limits.cpus = {cpus} is below the smallest cpu quota the kernel accepts (0.01)")]
    CpusTooSmall {
        /// The limit.
        cpus: f64,
    },
}

impl CgroupError {
    fn attach(self, pid: libc::pid_t) -> CgroupError {
        match self {
            CgroupError::Write { path, errno, .. } => CgroupError::Attach { pid, path, errno },
            e => e,
        }
    }

    /// A refusal by the host to let us use cgroups (not a failure while using them):
    /// `best_effort` degrades to rlimits on these.
    fn is_host_refusal(&self) -> bool {
        matches!(
            self,
            CgroupError::Unavailable { .. }
                | CgroupError::MissingController { .. }
                | CgroupError::MoveSupervisor { .. }
                | CgroupError::EnableController { .. }
        )
    }
}

/// How one limit is enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)] // `NotEnforced` reads better than any synonym
pub enum Enforced {
    /// Written to a cgroup file and read back.
    Cgroup {
        /// The file (`memory.max`, `pids.max`, …).
        file: &'static str,
        /// The value in force, as the kernel reads it back.
        value: String,
    },
    /// An rlimit (soft = hard), set in the child before execve.
    Rlimit {
        /// `RLIMIT_NOFILE`, `RLIMIT_AS`, …
        resource: &'static str,
        /// The limit.
        value: u64,
        /// How a fallback rlimit is weaker than the cgroup limit it stands in for.
        caveat: Option<&'static str>,
    },
    /// Asked for, not enforced (only with `best_effort`).
    NotEnforced {
        /// Why.
        why: String,
    },
}

impl Enforced {
    fn cgroup(file: &'static str, value: String) -> Enforced {
        Enforced::Cgroup { file, value }
    }
    fn not(why: &str) -> Enforced {
        Enforced::NotEnforced {
            why: why.to_owned(),
        }
    }
}

/// Which limit of a launch is enforced, and how. `None`: the policy does not set it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsReport {
    /// `"cgroup2"`, `"cgroup1"`, `"rlimit"` (best-effort fallback) or `"none"` (no limit
    /// needed a cgroup).
    pub backend: &'static str,
    /// The launch's cgroup directory (v1: the first hierarchy's).
    pub cgroup: Option<PathBuf>,
    /// `limits.memory`.
    pub memory: Option<Enforced>,
    /// Swap off, with a memory limit.
    pub swap: Option<Enforced>,
    /// `limits.cpus`.
    pub cpus: Option<Enforced>,
    /// `limits.pids`.
    pub pids: Option<Enforced>,
    /// `limits.open_files`.
    pub open_files: Option<Enforced>,
    /// `limits.file_size`.
    pub file_size: Option<Enforced>,
    /// `limits.core` (always set, 0 by default).
    pub core: Option<Enforced>,
    /// With `best_effort`: why cgroups were not (fully) used.
    pub degraded: Option<String>,
}

impl LimitsReport {
    fn new(backend: &'static str) -> LimitsReport {
        LimitsReport {
            backend,
            cgroup: None,
            memory: None,
            swap: None,
            cpus: None,
            pids: None,
            open_files: None,
            file_size: None,
            core: None,
            degraded: None,
        }
    }

    /// Fill the entries the cgroup did not: from the rlimit plan, or as not enforced.
    fn fill_rlimits(&mut self, limits: &Limits, plan: &RlimitPlan) {
        let rl = |name: &str| {
            plan.get(name).map(|e| Enforced::Rlimit {
                resource: e.name,
                value: e.value,
                caveat: RlimitPlan::caveat(e.name),
            })
        };
        self.open_files = rl("RLIMIT_NOFILE");
        self.file_size = rl("RLIMIT_FSIZE");
        self.core = rl("RLIMIT_CORE");
        if limits.memory.is_some() && self.memory.is_none() {
            self.memory = Some(rl("RLIMIT_AS").unwrap_or_else(|| Enforced::not("no cgroup")));
            self.swap = Some(Enforced::not("only a memory cgroup limits swap"));
        }
        if limits.pids.is_some() && self.pids.is_none() {
            self.pids = Some(rl("RLIMIT_NPROC").unwrap_or_else(|| Enforced::not("no cgroup")));
        }
        if limits.cpus.is_some() && self.cpus.is_none() {
            self.cpus = Some(rl("RLIMIT_CPU").unwrap_or_else(|| {
                Enforced::not("cpus is a rate and no rlimit limits a rate (set a timeout to cap cpu seconds with RLIMIT_CPU)")
            }));
        }
    }
}

/// Resource usage of a sandbox's cgroup. `None`: the kernel does not report it here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CgroupUsage {
    /// Peak memory (`memory.peak`, v1 `memory.max_usage_in_bytes`).
    pub memory_peak_bytes: Option<u64>,
    /// OOM kills in the cgroup (`memory.events` / v1 `memory.oom_control` `oom_kill`).
    pub oom_kills: Option<u64>,
    /// At least one process was killed by the OOM killer.
    pub oom_killed: bool,
    /// Peak number of processes (`pids.peak`, kernel 6.1+ on v2).
    pub pids_peak: Option<u64>,
    /// Processes now (`pids.current`).
    pub pids_current: Option<u64>,
    /// User CPU time in µs (`cpu.stat` / v1 `cpuacct.usage_user`).
    pub cpu_user_usec: Option<u64>,
    /// System CPU time in µs (`cpu.stat` / v1 `cpuacct.usage_sys`).
    pub cpu_system_usec: Option<u64>,
}

/// What this host offers, for `sandbox doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupProbe {
    /// `"v2"`, `"v1 hybrid"`, `"v1"` or `"none"`.
    pub version: &'static str,
    /// This process's cgroup (v2), or its memory cgroup (v1).
    pub own_cgroup: Option<PathBuf>,
    /// The controllers we could use (`memory`, `cpu`, `pids`; on v1 also `cpuacct`, `freezer`).
    pub controllers: Vec<&'static str>,
    /// Whether memory, cpu and pids limits all work for this process.
    pub usable: bool,
    /// Why not.
    pub why_not: Option<String>,
    /// The fix.
    pub hint: Option<&'static str>,
}

/// What a launch needs from this layer: the cgroup (if any), the rlimits for the child, and
/// the report.
pub(crate) struct CgroupSetup {
    /// The launch's cgroup; `None` when no memory/cpus/pids limit is set or cgroups are
    /// unusable under `best_effort`.
    pub cgroup: Option<Cgroup>,
    /// rlimits for the child.
    pub rlimits: RlimitPlan,
    /// Which limit is enforced how.
    pub enforcement: LimitsReport,
}

/// One launch's cgroup. Dropping it tries to remove it; [`Cgroup::remove`] reports failures.
#[derive(Debug)]
pub(crate) struct Cgroup {
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    V2(v2::V2Cgroup),
    V1(v1::V1Cgroup),
}

static LAYOUT: OnceLock<Layout> = OnceLock::new();
static V2_BASE: Mutex<Option<v2::V2Base>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The host's layout, probed once.
fn layout() -> &'static Layout {
    LAYOUT.get_or_init(|| {
        // One read where `read_to_string` made five, each generating the file afresh under
        // the kernel's cgroup mutex (which the other launches' cgroup work also takes).
        let text = fsio::read_text(Path::new("/proc/self/cgroup")).unwrap_or_default();
        host::decide(&host::Host {
            root: Path::new(ROOT),
            self_cgroup: &text,
            euid: nix::unistd::geteuid().as_raw(),
            egid: nix::unistd::getegid().as_raw(),
        })
    })
}

fn needed(limits: &Limits) -> Ctrls {
    let mut c = Ctrls::NONE;
    if limits.memory.is_some() {
        c = c.with(Ctrl::Memory);
    }
    if limits.pids.is_some() {
        c = c.with(Ctrl::Pids);
    }
    if limits.cpus.is_some() {
        c = c.with(Ctrl::Cpu);
    }
    c
}

/// Parent: create the launch's cgroup and write its limits, before the child exists; and
/// compile its rlimits. Without a memory/cpus/pids limit no cgroup is made.
///
/// `no_pid_namespace` (landlock mode): on v1, also join the freezer hierarchy, which
/// [`Cgroup::kill`] uses to stop a tree that could fork while being killed, and cpuacct, for
/// the CPU time of processes nobody waited for. With a pid namespace, pid 1 reaps every
/// process and killing it takes the rest of the sandbox with it.
///
/// The cgroups that SIGKILLed supervisors left are swept by [`sweep_stale`], which the
/// caller runs off its launch's critical path (a launch does once its command has started).
pub(crate) fn prepare(limits: &Limits, no_pid_namespace: bool) -> Result<CgroupSetup, CgroupError> {
    if needed(limits).is_empty() {
        return Ok(without_cgroup("none", limits, None));
    }
    prepare_with(
        layout(),
        &V2_BASE,
        limits,
        std::process::id(),
        no_pid_namespace,
    )
}

/// Remove, once per process, what the launches of dead supervisors left (see `sweep_once`).
pub(crate) fn sweep_stale() {
    sweep_once(layout());
}

/// Remove, once per process, the empty cgroups that sandboxes of dead supervisors left in
/// our base directories. A supervisor killed with SIGKILL cannot remove its launch's cgroup
/// (its processes die with it, the empty directory stays), and cgroupfs has no release agent
/// on v2: the next launch cleans up instead. Only `sandbox-<pid>-<n>` directories whose
/// `<pid>` no longer exists are touched, and `rmdir` refuses a cgroup that still holds
/// processes or child cgroups, so a live sandbox is never removed. (A live supervisor in
/// another pid namespace sharing our cgroup could look dead for a moment between its
/// `mkdir` and its clone; its launch would then fail cleanly with an attach error.)
fn sweep_once(layout: &Layout) {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::Relaxed) {
        return;
    }
    let bases: Vec<PathBuf> = match layout {
        Layout::V2(h) => vec![h.base.clone()],
        Layout::V1(h) => h.hierarchies.iter().map(|x| x.own.clone()).collect(),
        Layout::Unusable { .. } => Vec::new(),
    };
    for base in bases {
        // Raw getdents64: `read_dir`'s `opendir` would set up musl's heap for its `DIR`.
        let Ok(names) = crate::sys::read_dir_names(&base) else {
            continue;
        };
        for name in names {
            let Some(pid) = stale_owner(&name.to_string_lossy()) else {
                continue;
            };
            if crate::sys::pid_is_gone(pid) {
                // Failure (still busy, not ours to remove) leaves it for a later sweep.
                let _ = std::fs::remove_dir(base.join(name));
            }
        }
    }
}

/// The supervisor pid in a launch cgroup's name `sandbox-<pid>-<n>`.
fn stale_owner(name: &str) -> Option<u32> {
    crate::sys::owner_pid(name, "sandbox-")
}

fn without_cgroup(backend: &'static str, limits: &Limits, degraded: Option<String>) -> CgroupSetup {
    let rlimits = limits::prepare(limits, degraded.is_some());
    let mut enforcement = LimitsReport::new(backend);
    enforcement.fill_rlimits(limits, &rlimits);
    enforcement.degraded = degraded;
    CgroupSetup {
        cgroup: None,
        rlimits,
        enforcement,
    }
}

fn prepare_with(
    layout: &Layout,
    v2_state: &Mutex<Option<v2::V2Base>>,
    limits: &Limits,
    pid: u32,
    no_pid_namespace: bool,
) -> Result<CgroupSetup, CgroupError> {
    let needed = needed(limits);
    if needed.is_empty() {
        return Ok(without_cgroup("none", limits, None));
    }
    let fallback = |why: String| Ok(without_cgroup("rlimit", limits, Some(why)));
    let (offered, backend, where_) = match layout {
        Layout::Unusable { why, .. } if limits.best_effort => return fallback(why.to_string()),
        Layout::Unusable { why, .. } => {
            return Err(CgroupError::Unavailable {
                why: why.clone(),
                hint: why.hint(),
            })
        }
        Layout::V2(h) => (h.offered, "cgroup2", h.base.clone()),
        Layout::V1(h) => (h.offered(), "cgroup1", PathBuf::from(ROOT)),
    };
    let missing = needed.minus(offered);
    let degraded = match missing.iter().next() {
        None => None,
        Some(ctrl) => {
            let err = CgroupError::MissingController {
                controller: ctrl.name(),
                cgroup: where_,
                offered: match offered.and(Ctrls::LIMITS).names().join(" ") {
                    s if s.is_empty() => "none".to_owned(),
                    s => s,
                },
                hint: host::HINT_DELEGATE,
            };
            if !limits.best_effort {
                return Err(err);
            }
            Some(err.to_string())
        }
    };
    let usable = needed.and(offered);
    if usable.is_empty() {
        return fallback(degraded.unwrap_or_default());
    }

    let mut report = LimitsReport::new(backend);
    let v2_base = match layout {
        Layout::V2(h) => match v2::ensure_base(h, usable, v2_state, pid) {
            Ok(base) => Some(base),
            Err(e) if limits.best_effort && e.is_host_refusal() => return fallback(e.to_string()),
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let mut attempt = 0;
    let inner = loop {
        let name = format!("sandbox-{pid}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let made = match (layout, &v2_base) {
            (_, Some(base)) => v2::create(base, &name, limits, usable, &mut report).map(Inner::V2),
            (Layout::V1(h), _) => {
                v1::create(h, &name, limits, usable, no_pid_namespace, &mut report).map(Inner::V1)
            }
            _ => unreachable_layout(),
        };
        attempt += 1;
        match made {
            // A leftover of an earlier process with our pid: take the next name.
            Err(CgroupError::Create {
                errno: Errno::EEXIST,
                ..
            }) if attempt < 3 => continue,
            made => break made?,
        }
    };
    let cgroup = Cgroup { inner };
    report.cgroup = Some(cgroup.path().to_path_buf());
    let rlimits = limits::prepare(
        &Limits {
            memory: limits.memory.filter(|_| !usable.has(Ctrl::Memory)),
            pids: limits.pids.filter(|_| !usable.has(Ctrl::Pids)),
            cpus: limits.cpus.filter(|_| !usable.has(Ctrl::Cpu)),
            ..limits.clone()
        },
        degraded.is_some(),
    );
    report.fill_rlimits(limits, &rlimits);
    report.degraded = degraded;
    Ok(CgroupSetup {
        cgroup: Some(cgroup),
        rlimits,
        enforcement: report,
    })
}

/// `prepare_with` only creates cgroups for the two usable layouts.
fn unreachable_layout() -> Result<Inner, CgroupError> {
    Err(CgroupError::Unavailable {
        why: Unusable::NoCgroupFs {
            root: PathBuf::from(ROOT),
        },
        hint: host::HINT_DELEGATE,
    })
}

impl Cgroup {
    /// The cgroup directory (v1: the first hierarchy's).
    pub(crate) fn path(&self) -> &Path {
        match &self.inner {
            Inner::V2(c) => c.dir(),
            Inner::V1(c) => c.dirs().next().unwrap_or(Path::new(ROOT)),
        }
    }

    /// v2: the cgroup's directory fd (`O_DIRECTORY`), for `clone3` with `CLONE_INTO_CGROUP`;
    /// `None` on v1, where the parent calls [`Cgroup::attach`] before releasing the child.
    pub(crate) fn clone_into_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.inner {
            Inner::V2(c) => c.fd(),
            Inner::V1(_) => None,
        }
    }

    /// Move `pid` (the sandbox's first process, not yet released) into the cgroup, in every
    /// hierarchy.
    pub(crate) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V2(c) => c.attach(pid),
            Inner::V1(c) => c.attach(pid),
        }
    }

    /// Kill every process in the cgroup and wait until it is empty (at most 2 s).
    pub(crate) fn kill(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V2(c) => c.kill(),
            Inner::V1(c) => c.kill(),
        }
    }

    /// Peak memory, OOM kills, processes and CPU time, as the kernel accounts them.
    pub(crate) fn usage(&self) -> CgroupUsage {
        match &self.inner {
            Inner::V2(c) => c.usage(),
            Inner::V1(c) => c.usage(),
        }
    }

    /// Remove the cgroup (every hierarchy), retrying briefly while its processes drain.
    pub(crate) fn remove(mut self) -> Result<(), CgroupError> {
        match &mut self.inner {
            Inner::V2(c) => c.remove(REMOVE_TRIES),
            Inner::V1(c) => c.remove(REMOVE_TRIES),
        }
    }
}

/// SIGKILL each pid (never pid 0/1 or ourselves: a safety net against a bad list).
fn kill_pids(pids: &[libc::pid_t]) {
    let me = std::process::id() as libc::pid_t;
    for &pid in pids {
        if pid > 1 && pid != me {
            // Ignoring ESRCH: the process is already gone.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Repeat `step` until no `cgroup.procs` file in `procs` lists a process, for at most
/// [`KILL_DEADLINE`].
fn wait_until_empty(
    label: &Path,
    procs: &[PathBuf],
    mut step: impl FnMut() -> Result<(), CgroupError>,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(100);
    loop {
        let remaining: usize = procs.iter().map(|p| fsio::pids(p).len()).sum();
        if remaining == 0 {
            return Ok(());
        }
        if start.elapsed() > KILL_DEADLINE {
            return Err(CgroupError::KillIncomplete {
                path: label.to_path_buf(),
                remaining,
            });
        }
        step()?;
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(10));
    }
}

/// The memory limit as the kernel stores it: whole pages (it rounds down).
fn memory_bytes(bytes: u64) -> Result<u64, CgroupError> {
    let page = page_size();
    match bytes / page * page {
        0 => Err(CgroupError::MemoryTooSmall { bytes, page }),
        rounded => Ok(rounded),
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096).max(1)
}

/// CPU bandwidth: (quota, period) in µs, period 100 ms. The kernel's minimum quota is 1 ms.
fn cpu_quota(cpus: f64) -> Result<(u64, u64), CgroupError> {
    const PERIOD: u64 = 100_000;
    let quota = (cpus * PERIOD as f64).round();
    if !quota.is_finite() || quota < 1000.0 {
        return Err(CgroupError::CpusTooSmall { cpus });
    }
    Ok((quota as u64, PERIOD))
}

/// For `sandbox doctor`: the cgroup version, the controllers this process could use, and
/// why limits would not work.
///
/// ```no_run
/// let probe = sandbox_core::cgroup_probe();
/// println!("cgroup {}: {}", probe.version, probe.controllers.join(" "));
/// ```
pub fn cgroup_probe() -> CgroupProbe {
    probe_of(layout())
}

fn probe_of(layout: &Layout) -> CgroupProbe {
    let version = layout.version();
    let (own, offered, base) = match layout {
        Layout::Unusable { why, .. } => {
            return CgroupProbe {
                version,
                own_cgroup: None,
                controllers: Vec::new(),
                usable: false,
                why_not: Some(why.to_string()),
                hint: Some(why.hint()),
            }
        }
        Layout::V2(h) => (Some(h.own.clone()), h.offered, h.base.clone()),
        Layout::V1(h) => {
            let memory = h.hierarchies.iter().find(|x| x.ctrls.has(Ctrl::Memory));
            (
                memory.map(|x| x.own.clone()),
                h.offered(),
                PathBuf::from(ROOT),
            )
        }
    };
    let missing = Ctrls::LIMITS.minus(offered);
    CgroupProbe {
        version,
        own_cgroup: own,
        controllers: offered.names(),
        usable: missing.is_empty(),
        why_not: (!missing.is_empty()).then(|| {
            format!(
                "{} does not offer the {} controller(s)",
                base.display(),
                missing.names().join(", ")
            )
        }),
        hint: (!missing.is_empty()).then_some(host::HINT_DELEGATE),
    }
}

#[cfg(test)]
mod tests;

/// Validate a launch's limits against this host without creating anything (`policy check`):
/// the same errors as [`prepare`] for an unusable host, no cgroup directory made.
pub(crate) fn check(limits: &Limits) -> Result<CgroupSetup, CgroupError> {
    if needed(limits).is_empty() {
        return Ok(without_cgroup("none", limits, None));
    }
    match layout() {
        Layout::Unusable { why, .. } if limits.best_effort => {
            Ok(without_cgroup("rlimit", limits, Some(why.to_string())))
        }
        Layout::Unusable { why, .. } => Err(CgroupError::Unavailable {
            why: why.clone(),
            hint: why.hint(),
        }),
        _ => Ok(without_cgroup("none", limits, None)),
    }
}
