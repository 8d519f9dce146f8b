//! cgroup v2: as root or in a delegated subtree.
//!
//! Once per process: move the supervisor into `<own>/supervisor` (no internal processes),
//! then enable in `<own>/cgroup.subtree_control` the controllers a launch needs, if the
//! parent offers them. Per launch: `mkdir <base>/sandbox-<pid>-<n>`, write and read back
//! the limits, open the directory for `clone3(CLONE_INTO_CGROUP)`.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;

use super::fsio::{self, errno_of};
use super::host::{Ctrl, Ctrls, Leaf, V2Host};
use super::{kill_pids, wait_until_empty, CgroupError, CgroupUsage, Enforced, LimitsReport};
use crate::policy::Limits;

/// The supervisor's setup, done once per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct V2Base {
    /// Where sandbox cgroups are created.
    pub(super) dir: PathBuf,
    /// Controllers enabled in `<dir>/cgroup.subtree_control`.
    pub(super) enabled: Ctrls,
}

/// Set up the base once (moving this process into its leaf), and enable `wanted`
/// (a subset of what the parent offers) in its `cgroup.subtree_control`.
pub(super) fn ensure_base(
    host: &V2Host,
    wanted: Ctrls,
    state: &Mutex<Option<V2Base>>,
    pid: u32,
) -> Result<V2Base, CgroupError> {
    // A poisoned lock only means another launch panicked; the state is still a plain value.
    let mut guard = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut moved = None;
    if guard.is_none() {
        if let Leaf::Move(leaf) = &host.leaf {
            move_into_leaf(leaf, pid)?;
            moved = Some(leaf);
        }
    }
    let result = enable(&mut guard, host, wanted);
    if let (Err(_), Some(leaf)) = (&result, moved) {
        // The setup failed (typically EBUSY: other processes share our cgroup): undo the
        // move so that no `supervisor` leaf is left behind, and let a later launch start over.
        if fsio::write(&host.own.join("cgroup.procs"), &pid.to_string()).is_ok() {
            let _ = std::fs::remove_dir(leaf);
        }
        *guard = None;
    }
    result
}

/// Record the base on first use and enable `wanted` in its `cgroup.subtree_control`.
fn enable(state: &mut Option<V2Base>, host: &V2Host, wanted: Ctrls) -> Result<V2Base, CgroupError> {
    let base = match state {
        Some(base) => base,
        None => {
            let control = host.base.join("cgroup.subtree_control");
            let enabled = Ctrls::parse(&fsio::read(&control)?);
            state.insert(V2Base {
                dir: host.base.clone(),
                enabled,
            })
        }
    };
    let control = base.dir.join("cgroup.subtree_control");
    for ctrl in wanted.minus(base.enabled).iter() {
        let value = format!("+{}", ctrl.name());
        match fsio::write(&control, &value) {
            Ok(()) => base.enabled = base.enabled.with(ctrl),
            Err(CgroupError::Write { errno, .. }) => {
                return Err(CgroupError::EnableController {
                    controller: ctrl.name(),
                    path: control,
                    errno,
                })
            }
            Err(e) => return Err(e),
        }
    }
    Ok(base.clone())
}

/// The no-internal-processes rule: a cgroup with controllers enabled for its children may
/// hold no process itself, so the supervisor (this whole process) moves into a leaf first.
fn move_into_leaf(leaf: &Path, pid: u32) -> Result<(), CgroupError> {
    match fsio::mkdir(leaf) {
        Ok(())
        | Err(CgroupError::Create {
            errno: Errno::EEXIST,
            ..
        }) => {}
        Err(CgroupError::Create { errno, .. }) | Err(CgroupError::Write { errno, .. }) => {
            return Err(CgroupError::MoveSupervisor {
                leaf: leaf.to_path_buf(),
                errno,
            })
        }
        Err(e) => return Err(e),
    }
    fsio::write(&leaf.join("cgroup.procs"), &pid.to_string()).map_err(|e| match e {
        CgroupError::Write { errno, .. } => CgroupError::MoveSupervisor {
            leaf: leaf.to_path_buf(),
            errno,
        },
        e => e,
    })
}

/// One launch's v2 cgroup.
#[derive(Debug)]
pub(super) struct V2Cgroup {
    dir: PathBuf,
    fd: Option<OwnedFd>,
    usage_files: fsio::UsageFiles,
    removed: bool,
}

/// Create `<base>/<name>` with the limits of `ctrls`, filling their entries of `report`.
pub(super) fn create(
    base: &V2Base,
    name: &str,
    limits: &Limits,
    ctrls: Ctrls,
    report: &mut LimitsReport,
) -> Result<V2Cgroup, CgroupError> {
    let dir = base.dir.join(name);
    fsio::mkdir(&dir)?;
    // From here on, dropping `cg` removes the directory.
    let mut cg = V2Cgroup {
        dir,
        fd: None,
        usage_files: fsio::UsageFiles::default(),
        removed: false,
    };
    write_limits(&cg.dir, limits, ctrls, report)?;
    let fd = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(&cg.dir)
        .map_err(|e| CgroupError::Open {
            path: cg.dir.clone(),
            errno: errno_of(&e),
        })?;
    cg.fd = Some(fd.into());
    cg.usage_files.open(
        &cg.dir,
        &[
            "memory.events",
            "memory.peak",
            "pids.peak",
            "pids.current",
            "cpu.stat",
        ],
    );
    Ok(cg)
}

/// Write (and read back) the limits of `ctrls` into the cgroup `dir`.
pub(super) fn write_limits(
    dir: &Path,
    limits: &Limits,
    ctrls: Ctrls,
    report: &mut LimitsReport,
) -> Result<(), CgroupError> {
    if let (true, Some(bytes)) = (ctrls.has(Ctrl::Memory), limits.memory) {
        let bytes = super::memory_bytes(bytes)?.to_string();
        fsio::write_checked(&dir.join("memory.max"), &bytes, &bytes)?;
        report.memory = Some(Enforced::cgroup("memory.max", bytes));
        let swap = dir.join("memory.swap.max");
        report.swap = Some(if swap.exists() {
            fsio::write_checked(&swap, "0", "0")?;
            Enforced::cgroup("memory.swap.max", "0".to_owned())
        } else {
            Enforced::not("memory.swap.max is missing: swap accounting is off in this kernel")
        });
    }
    if let (true, Some(n)) = (ctrls.has(Ctrl::Pids), limits.pids) {
        let n = n.to_string();
        fsio::write_checked(&dir.join("pids.max"), &n, &n)?;
        report.pids = Some(Enforced::cgroup("pids.max", n));
    }
    if let (true, Some(cpus)) = (ctrls.has(Ctrl::Cpu), limits.cpus) {
        let (quota, period) = super::cpu_quota(cpus)?;
        let value = format!("{quota} {period}");
        fsio::write_checked(&dir.join("cpu.max"), &value, &value)?;
        report.cpus = Some(Enforced::cgroup("cpu.max", value));
    }
    Ok(())
}

impl V2Cgroup {
    /// The cgroup directory.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory fd for `clone3(CLONE_INTO_CGROUP)`.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|fd| fd.as_fd())
    }

    /// Move `pid` into the cgroup.
    pub(super) fn attach(&self, pid: libc::pid_t) -> Result<(), CgroupError> {
        fsio::write(&self.dir.join("cgroup.procs"), &pid.to_string()).map_err(|e| e.attach(pid))
    }

    /// Kill every process: `cgroup.kill` (5.14+), else freeze, SIGKILL each, thaw; then
    /// wait until the cgroup is empty.
    pub(super) fn kill(&self) -> Result<(), CgroupError> {
        let procs = self.dir.join("cgroup.procs");
        match fsio::write(&self.dir.join("cgroup.kill"), "1") {
            Ok(()) => wait_until_empty(&procs, std::slice::from_ref(&procs), || Ok(())),
            Err(CgroupError::Write {
                errno: Errno::ENOENT,
                ..
            }) => {
                let freeze = self.dir.join("cgroup.freeze");
                wait_until_empty(&procs, std::slice::from_ref(&procs), || {
                    fsio::write(&freeze, "1")?;
                    kill_pids(&fsio::pids(&procs));
                    fsio::write(&freeze, "0")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Peak memory, OOM kills, pids, CPU time.
    pub(super) fn usage(&self) -> CgroupUsage {
        let (d, files) = (&self.dir, &self.usage_files);
        let [oom_kills] = files.keys(d, "memory.events", ["oom_kill"]);
        let [cpu_user_usec, cpu_system_usec] =
            files.keys(d, "cpu.stat", ["user_usec", "system_usec"]);
        CgroupUsage {
            memory_peak_bytes: files.u64(d, "memory.peak"),
            oom_kills,
            oom_killed: oom_kills.is_some_and(|n| n > 0),
            pids_peak: files.u64(d, "pids.peak"),
            pids_current: files.u64(d, "pids.current"),
            cpu_user_usec,
            cpu_system_usec,
        }
    }

    /// Remove the directory, retrying `tries` times while processes drain.
    pub(super) fn remove(&mut self, tries: u32) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        self.fd = None;
        self.usage_files = fsio::UsageFiles::default();
        fsio::rmdir_retry(&self.dir, tries)?;
        self.removed = true;
        Ok(())
    }
}

impl Drop for V2Cgroup {
    fn drop(&mut self) {
        let _ = self.remove(super::DROP_TRIES);
    }
}
